import { setTimeout as sleep } from 'node:timers/promises';
import { insertEmails } from '../db/emails';
import { findSend, type SendRow } from '../db/sends';
import { HttpError } from '../errors';
import { queuedHistory } from './history';
import type { SenderParts } from './parts';
import { acceptedAnswer, emailIdsOf, type SendPayload, type StoredResponse } from './records';
import { deliver, resultOf, runSend } from './steps';

/** Longest pause between two tries of an accepted send's delivery (Resend failing, or out of turns). */
const ACCEPTED_RETRY_MAX_MS = 10_000;

/**
 * A send this instance holds, answered once it is paid and queued (202, MailKit's ids,
 * `Prefer: respond-async`): its emails enter the history as queued, and its delivery goes on in
 * the background (below). `room`: the places among the accepted emails its request holds, given
 * back when it settles. Resolves to the 202 as soon as it is paid.
 */
export function acceptSend(
  parts: SenderParts,
  row: SendRow,
  fingerprint: string,
  payload: SendPayload,
  payloadText: string,
  room: number,
): Promise<StoredResponse> {
  const { ctx } = parts;
  const count = payload.emails.length;
  let answer!: (r: StoredResponse) => void;
  let refuse!: (err: unknown) => void;
  const accepted = new Promise<StoredResponse>((resolve, reject) => {
    answer = resolve;
    refuse = reject;
  });
  let paidOnce = false;
  const onPaid = async (paid: SendRow) => {
    if (paidOnce) return;
    paidOnce = true;
    const ids = emailIdsOf(paid.id, paid.nonce, count);
    // Its fate is visible from now on. Should this fail, the emails are recorded when they settle.
    await insertEmails(ctx.database.db, queuedHistory(paid, ids, payload.emails), ctx.now()).catch((err: unknown) =>
      ctx.log?.warn({ sendId: paid.id, err }, 'could not record queued emails yet'),
    );
    answer(acceptedAnswer(paid.id, paid.nonce, payload));
  };
  const run = parts.runs.track(row.id, fingerprint, row, false, (r) => deliverAccepted(parts, r, payloadText, onPaid), accepted);
  void run.then(answer, refuse).finally(() => parts.room.free(row.customerId, room));
  return accepted;
}

/**
 * The delivery of an accepted send: tried until Resend answers for good. A refusal that proves
 * nothing was sent (no turn, Resend's 429) sends it in a later flight; an outcome in doubt, or
 * Resend refusing MailKit's key, is asked again under the same key (steps.ts). At shutdown the
 * send is left to the reconciler, on this instance or another.
 */
async function deliverAccepted(
  parts: SenderParts,
  row: SendRow,
  payloadText: string,
  onPaid: (row: SendRow) => Promise<void>,
): Promise<StoredResponse> {
  const { ctx, stopping } = parts;
  let paid = false;
  const paying = async (r: SendRow) => {
    paid = true;
    await onPaid(r);
  };
  /** Resend refused MailKit's key last time: the next try is under the same key (sending/README.md). */
  let sameKey = false;
  for (let pause = 1_000; ; pause = Math.min(pause * 2, ACCEPTED_RETRY_MAX_MS)) {
    try {
      // Refused with nothing sent: its next try is a fresh one, in the next flight.
      if (paid && !sameKey && row.state === 'delivering' && !row.inDoubt && !row.flightId) return await deliver(ctx, row, true);
      return await runSend(ctx, row, payloadText, paying);
    } catch (err) {
      if (!paid || stopping.now || !(err instanceof HttpError) || err.status === 409) throw err;
      sameKey = err.code === 'email_sending_paused';
      const retryAfter = Number(err.headers['Retry-After']) * 1_000 || 0;
      await sleep(Math.max(pause, retryAfter), undefined, { signal: stopping.signal }).catch(() => undefined);
      if (stopping.now) throw err;
      const again = await findSend(ctx.database, row.id);
      if (!again || again.owner !== ctx.owner) throw err;
      if (again.state === 'done') return resultOf(again);
      row = again;
    }
  }
}
