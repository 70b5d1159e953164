import { forgetEmailsBefore } from '../db/emails';
import { pruneFlights } from '../db/flights';
import { acquireSend, findSend, pruneSends, releaseSend, UNSETTLED_STATES, unsettledSends, type SendRow } from '../db/sends';
import type { SenderParts } from './parts';
import { KEY_RETENTION_MS } from './records';
import { finishRefund, redeliver, voidReservation } from './steps';

/** When the reconciler looks, and how long a send is left to its own client first. */
export interface ReconcileOptions {
  /** Between two passes (default 30 s; 0: only when reconcile() is called). */
  intervalMs?: number;
  /** A send is the reconciler's only once untouched this long (default 60 s): the client's own retry, told to come back in 2 s, normally wins. */
  graceMs?: number;
}

const unsettled = (state: string) => (UNSETTLED_STATES as readonly string[]).includes(state);

/**
 * One pass of the reconciler: prunes what retention lets go (settled sends, the email history
 * past `historyDays`, flights), then claims every send left reserving, delivering or refunding,
 * untouched for `graceMs` and held by nobody, and drives it to its end (sending/README.md, "The
 * reconciler"). Resolves to the sends it settled.
 */
export async function reconcilePass(parts: SenderParts, opts: { graceMs: number; historyDays?: number }): Promise<number> {
  const { ctx, runs, claimMs } = parts;
  const { database, owner, log, now } = ctx;
  await pruneSends(database, now() - KEY_RETENTION_MS);
  if (opts.historyDays) await forgetEmailsBefore(database, now() - opts.historyDays * 86_400_000);
  // A flight's body is kept while one of its sends is still delivering, a minute at least.
  await pruneFlights(database, now() - 60_000, now() - KEY_RETENTION_MS);
  let settled = 0;
  for (;;) {
    if (parts.stopping.now) break;
    const t = now();
    const batch = await unsettledSends(database, t - opts.graceMs, t, 50);
    let progressed = false;
    for (const candidate of batch) {
      if (parts.stopping.now) break;
      if (runs.byId.has(candidate.id)) continue;
      const row = await acquireSend(database, candidate.id, owner, now(), now() + claimMs);
      if (!row || !unsettled(row.state)) {
        if (row) await releaseSend(database, row.id, owner);
        continue; // another reconciler took it, or it settled meanwhile
      }
      try {
        await runs.track(row.id, row.fingerprint, row, true, (r) => settleAlone(parts, r));
      } catch (err) {
        log?.warn({ sendId: row.id, err }, 'reconciler could not settle a send yet');
      }
      const after = await findSend(database, row.id);
      if (!after || !unsettled(after.state)) {
        settled++;
        progressed = true;
        log?.info({ sendId: row.id, customerId: row.customerId, state: after?.state, status: after?.resultStatus }, 'reconciler settled a send');
      }
    }
    // Rows still unsettled were touched (updatedAt moved): they leave the window until the next pass.
    if (batch.length < 50 || !progressed) break;
  }
  return settled;
}

/** The reconciler's step for one claimed row. */
function settleAlone(parts: SenderParts, row: SendRow): Promise<void> {
  const { ctx } = parts;
  if (row.state === 'refunding') return finishRefund(ctx, row).then(() => undefined);
  if (row.state === 'reserving') return voidReservation(ctx, row);
  return redeliver(ctx, row);
}
