import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Billing } from '../billing/billing';
import type { Database } from '../db/index';
import { acquireSend, findSend, insertOrGetSend, LostClaim, pruneSends, putPayload, releasedByTransition, releaseSend, renewClaims, unsettledSends, type SendRow } from '../db/sends';
import { HttpError } from '../errors';
import { recipientCount, type Mailer, type OutgoingEmail } from '../mail/mailer';
import type { Logger } from '../logger';
import { fingerprintOf, KEY_RETENTION_MS, sendIdFor, type SendPayload, type StoredResponse } from './records';
import { createDispatcher } from './dispatcher';
import { createLeases, type LeaseOptions, type Leases } from './leases';
import { pruneLeases } from '../db/leases';
import { pruneFlights } from '../db/flights';
import { finishRefund, redeliver, resultOf, runSend, voidReservation, type StepContext } from './steps';

/** What the route writes back: status, body, and the headers that let a client retry safely. */
export interface SendOutcome extends StoredResponse {
  headers: Record<string, string>;
}

/** One item of a batch as the route validated it. */
export type BatchItem = OutgoingEmail;

/** The send itself: idempotency claim → reserve → deliver → settle. */
export interface Sender {
  send(customerId: string, email: OutgoingEmail, clientKey: string | undefined): Promise<SendOutcome>;
  sendBatch(customerId: string, emails: BatchItem[], clientKey: string | undefined): Promise<SendOutcome>;
  /**
   * One pass of the reconciler (it also runs on its own every `intervalMs`): claims every send
   * left reserving, delivering or refunding, untouched for `graceMs` and held by nobody, drives
   * it to its end, and prunes settled sends past the key retention window. Resolves to the
   * sends it settled.
   */
  reconcile(): Promise<number>;
  /**
   * Returns every credit lease's unspent credits to Dodo now (any instance's), so Dodo's own
   * balance and grants show exactly what was spent: before reading Dodo directly, or adjusting
   * a balance by hand. Sending goes on; later sends take new leases.
   */
  returnLeases(): Promise<void>;
  /** Stops the reconciler; resolves once every send in flight in this process has finished (graceful shutdown). */
  drain(): Promise<void>;
}

/** When the reconciler looks, and how long a send is left to its own client first. */
export interface ReconcileOptions {
  /** Between two passes (default 30 s; 0: only when reconcile() is called). */
  intervalMs?: number;
  /** A send is the reconciler's only once untouched this long (default 60 s): the client's own retry, told to come back in 2 s, normally wins. */
  graceMs?: number;
}

/** How long an instance's claim on a send holds without renewal; renewed every third of it while the send runs. */
const DEFAULT_CLAIM_MS = 30_000;
/** How long a request waits for the same key running on another instance before answering 409. */
const WAIT_FOR_OTHER_MS = 10_000;
/** Closed leases are kept this long: the usage chart (up to 90 days) reads what each one spent. */
const LEASE_RETENTION_MS = 100 * 86_400_000;

export function createSender(opts: {
  billing: Billing;
  mailer: Mailer;
  database: Database;
  log?: Logger;
  now?: () => Date;
  reconcile?: ReconcileOptions;
  /** This instance's name in claims (default host:pid:random). */
  instanceId?: string;
  /** How long a claim holds without renewal (default 30 s; tests shorten it to play a dead instance). */
  claimMs?: number;
  /** false: one Resend call per send instead of shared flights (default true). */
  dispatch?: boolean;
  /** false: one Dodo debit per send instead of credit leases (default true). */
  leases?: boolean;
  /** Lease sizing and idle time (tests shorten them). */
  leaseOptions?: LeaseOptions;
}): Sender {
  const { database, mailer, log } = opts;
  const now = () => (opts.now ? opts.now().getTime() : Date.now());
  const graceMs = opts.reconcile?.graceMs ?? 60_000;
  const intervalMs = opts.reconcile?.intervalMs ?? 30_000;
  const claimMs = opts.claimMs ?? DEFAULT_CLAIM_MS;
  const owner = opts.instanceId ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  // First tries of every send share Resend batch calls (flights); see dispatcher.ts.
  const dispatcher = opts.dispatch === false ? undefined : createDispatcher({ database, mailer, log, owner });
  // Sends are paid from credit leases (leases.ts): a Dodo debit per lease, not per send.
  const leases: Leases | undefined =
    opts.leases === false ? undefined : createLeases({ database, billing: opts.billing, owner, now, claimMs, log, options: opts.leaseOptions });
  const ctx: StepContext = { database, billing: opts.billing, mailer, dispatcher, leases, log, owner, now };
  /** Runs in this process by send id: a request for the same send joins it. `reconciler` marks the reconciler's own. */
  const running = new Map<string, { fingerprint: string; promise: Promise<StoredResponse>; reconciler: boolean }>();
  let stopping = false;
  let reconciling: Promise<number> | null = null;
  const timer = intervalMs > 0 ? setInterval(() => void sender.reconcile().catch((err: unknown) => log?.error({ err }, 'reconcile pass failed')), intervalMs) : null;
  // Claims on the sends this process runs are renewed while they run; a process that dies lets them expire.
  const renewer = setInterval(() => {
    void renewClaims(database, owner, [...running.keys()], now() + claimMs).catch((err: unknown) => log?.warn({ err }, 'could not renew send claims'));
  }, claimMs / 3);
  // Neither must keep a finished test or CLI process alive.
  timer?.unref();
  renewer.unref();

  /** Claims the key (one atomic insert), joins or waits for a run of the same send, replays a finished one, or runs it. */
  async function begin(customerId: string, clientKey: string | undefined, body: unknown, payload: SendPayload): Promise<SendOutcome> {
    // Without a client key every request is a new send; the generated key is returned so the
    // client can still retry an ambiguous outcome safely.
    const key = clientKey ?? randomUUID();
    const sendId = sendIdFor(customerId, key);
    const fingerprint = fingerprintOf(body);
    const headers: Record<string, string> = { 'Idempotency-Key': key };
    const replayed = (r: StoredResponse): SendOutcome => ({ ...r, headers: { ...headers, 'Idempotent-Replayed': 'true' } });
    const payloadText = JSON.stringify(payload);
    const waitUntil = now() + WAIT_FOR_OTHER_MS;

    try {
      for (;;) {
        const local = running.get(sendId);
        if (local) {
          assertSameBody(local.fingerprint, fingerprint);
          // A client's run: answer what it answers. The reconciler's: let it finish, then look again.
          if (!local.reconciler) return replayed(await local.promise);
          await local.promise.catch(() => undefined);
          continue;
        }
        const t = now();
        const credits = payload.emails.reduce((n, e) => n + recipientCount(e), 0);
        const { created, row: existing } = await insertOrGetSend(database, newRow(customerId, key, sendId, fingerprint, credits, t, owner, t + claimMs, leases ? 'lease' : 'debit'), payloadText);
        if (!existing) continue; // deleted between two statements: claim again
        if (created) return { ...(await track(sendId, fingerprint, existing, false)), headers };
        assertSameBody(existing.fingerprint, fingerprint);
        if (existing.state === 'done') return replayed(resultOf(existing));
        const mine = await acquireSend(database, sendId, owner, t, t + claimMs);
        if (mine) {
          if (mine.state === 'done') {
            await releaseSend(database, sendId, owner);
            return replayed(resultOf(mine));
          }
          // A retry re-supplies the payload; one already stored (an attempt in doubt) wins.
          await putPayload(database, sendId, payloadText);
          return { ...(await track(sendId, fingerprint, mine, false, (r) => runSend(ctx, r, payloadText))), headers };
        }
        // Running on another instance: wait for it, then replay its answer or take over.
        if (now() >= waitUntil) {
          throw new HttpError(409, 'idempotency_key_in_use', 'A request with this Idempotency-Key is still being processed. Retry after the Retry-After delay to get its result.', {
            'Retry-After': '2',
          });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (err) {
      if (err instanceof HttpError) Object.assign(err.headers, headers);
      throw err;
    }
  }

  /**
   * Runs a send this instance holds, registered so that a request for the same send joins it;
   * lets go of the claim at the end, unless the run's last transition did (`done` commits with
   * the claim let go: db/sends.ts releasedByTransition).
   */
  async function track(sendId: string, fingerprint: string, row: SendRow, reconciler: boolean, step: (row: SendRow) => Promise<StoredResponse | void> = (r) => runSend(ctx, r)): Promise<StoredResponse> {
    releasedByTransition(database, sendId, owner); // nothing from an earlier run counts
    const promise = (async () => {
      try {
        return (await step(row)) as StoredResponse;
      } catch (err) {
        if (err instanceof LostClaim) {
          // Another instance took the send over (this one stalled past its claim): its run answers.
          log?.warn({ sendId }, 'send claim lost mid-run');
          throw new HttpError(409, 'idempotency_key_in_use', 'This send is being completed by another request. Retry after the Retry-After delay to get its result.', { 'Retry-After': '2' });
        }
        throw err;
      } finally {
        if (!releasedByTransition(database, sendId, owner)) await releaseSend(database, sendId, owner).catch((err: unknown) => log?.warn({ sendId, err }, 'could not release a send claim (it expires by itself)'));
      }
    })();
    running.set(sendId, { fingerprint, promise, reconciler });
    try {
      return await promise;
    } finally {
      running.delete(sendId);
    }
  }

  /** The reconciler's step for one claimed row. */
  const settleAlone = (row: SendRow) =>
    row.state === 'refunding' ? finishRefund(ctx, row).then(() => undefined) : row.state === 'reserving' ? voidReservation(ctx, row) : redeliver(ctx, row);

  async function reconcilePass(): Promise<number> {
    await pruneSends(database, now() - KEY_RETENTION_MS);
    // A flight's body is kept while one of its sends is still delivering, a minute at least.
    await pruneFlights(database, now() - 60_000, now() - KEY_RETENTION_MS);
    // Closed leases are kept as long as the usage chart looks back (it reads what each spent).
    await pruneLeases(database, now() - LEASE_RETENTION_MS);
    // Leases: idle ones returned, and calls a dead instance left unfinished settled.
    await leases?.sweep().catch((err: unknown) => log?.warn({ err }, 'lease sweep failed'));
    let settled = 0;
    for (;;) {
      if (stopping) break;
      const t = now();
      const batch = await unsettledSends(database, t - graceMs, t, 50);
      let progressed = false;
      for (const candidate of batch) {
        if (stopping) break;
        if (running.has(candidate.id)) continue;
        const row = await acquireSend(database, candidate.id, owner, now(), now() + claimMs);
        if (!row || !['reserving', 'delivering', 'refunding'].includes(row.state)) {
          if (row) await releaseSend(database, row.id, owner);
          continue; // another reconciler took it, or it settled meanwhile
        }
        try {
          await track(row.id, row.fingerprint, row, true, settleAlone);
        } catch (err) {
          log?.warn({ sendId: row.id, err }, 'reconciler could not settle a send yet');
        }
        const after = await findSend(database, row.id);
        if (!after || !['reserving', 'delivering', 'refunding'].includes(after.state)) {
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

  const sender: Sender = {
    send(customerId, email, clientKey) {
      return begin(customerId, clientKey, email, { batch: false, from: mailer.from, emails: [email] });
    },
    sendBatch(customerId, emails, clientKey) {
      return begin(customerId, clientKey, emails, { batch: true, from: mailer.from, emails });
    },
    reconcile() {
      // One pass at a time in this process; a pass asked for during one joins it.
      reconciling ??= reconcilePass().finally(() => {
        reconciling = null;
      });
      return reconciling;
    },
    async returnLeases() {
      await leases?.returnAll();
    },
    async drain() {
      stopping = true;
      if (timer) clearInterval(timer);
      await reconciling?.catch(() => undefined);
      await Promise.allSettled([...running.values()].map((r) => r.promise));
      // Then every lease this instance took goes back (what another instance still spends from
      // is taken again there, as needed).
      await leases?.drain().catch((err: unknown) => log?.warn({ err }, 'could not return every lease at shutdown'));
      clearInterval(renewer);
    },
  };
  return sender;
}

/** A new send, claimed by `owner` from the start: the insert is the claim. */
function newRow(customerId: string, clientKey: string, id: string, fingerprint: string, credits: number, at: number, owner: string, claimedUntil: number, funding: 'lease' | 'debit'): SendRow {
  return {
    id,
    customerId,
    clientKey,
    fingerprint,
    credits,
    state: 'reserving',
    attempt: 0,
    nonce: randomBytes(9).toString('base64url'),
    inDoubt: 0,
    refundCredits: null,
    refundReason: null,
    refundRetryable: null,
    resultStatus: null,
    resultBody: null,
    owner,
    claimedUntil,
    createdAt: at,
    updatedAt: at,
    deliveringSince: null,
    flightId: null,
    flightOffset: null,
    funding,
    leaseId: null,
  };
}

function assertSameBody(expected: string, actual: string) {
  if (expected !== actual) {
    throw new HttpError(422, 'idempotency_key_reused', 'This Idempotency-Key was already used with a different request body. Use a new key for a new email.');
  }
}
