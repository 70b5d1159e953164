import { randomBytes, randomUUID } from 'node:crypto';
import { InsufficientCredits } from '../billing/billing';
import { findBalance } from '../db/credits';
import { acquireSend, findSend, insertOrGetSend, payloadOf, putPayload, releaseSend, type SendRow } from '../db/sends';
import { HttpError } from '../errors';
import { recipientCount } from '../mail/mailer';
import { acceptSend } from './accepted';
import type { SenderParts } from './parts';
import { acceptedAnswer, fingerprintOf, sendIdFor, type SendOutcome, type SendPayload, type StoredResponse } from './records';
import { resultOf, runSend } from './steps';

/** How long a request waits for the same key running on another instance before answering 409. */
const WAIT_FOR_OTHER_MS = 10_000;

/**
 * The front door of a send: claims its key (one atomic insert), joins or waits for a run of the
 * same send (in this process, or on another instance), replays a finished one, or runs it.
 * sending/README.md ("Several instances") has the rules.
 */
export async function beginSend(
  parts: SenderParts,
  customerId: string,
  clientKey: string | undefined,
  body: unknown,
  payload: SendPayload,
): Promise<SendOutcome> {
  const { ctx, runs, claimMs } = parts;
  const { database, owner, now } = ctx;
  // Without a client key every request is a new send; the generated key is returned so the
  // client can still retry an ambiguous outcome safely.
  const key = clientKey ?? randomUUID();
  const sendId = sendIdFor(customerId, key);
  const fingerprint = fingerprintOf(body);
  const headers: Record<string, string> = { 'Idempotency-Key': key };
  const replayed = (r: StoredResponse): SendOutcome => ({ ...r, headers: { ...headers, 'Idempotent-Replayed': 'true' } });
  const payloadText = JSON.stringify(payload);
  const waitUntil = now() + WAIT_FOR_OTHER_MS;
  const credits = payload.emails.reduce((n, e) => n + recipientCount(e), 0);
  if (!runs.byId.has(sendId) && (await cannotPay(parts, customerId, sendId, credits))) {
    const refused = new InsufficientCredits();
    Object.assign(refused.headers, headers);
    throw refused;
  }
  // A send to be answered once queued holds its room among the accepted emails before it is
  // claimed; without room it is refused with nothing recorded. A run that starts takes the
  // room over; anything else (a replay, a refusal) gives it back.
  let room = payload.async && !runs.byId.has(sendId) ? await holdRoom(parts, customerId, payload.emails.length, headers) : 0;
  const takeRoom = () => {
    const n = room;
    room = 0;
    return n;
  };

  try {
    for (;;) {
      const local = runs.byId.get(sendId);
      if (local) {
        assertSameBody(local.fingerprint, fingerprint);
        // A client's run: answer what it answers. The reconciler's: let it finish, then look again.
        if (!local.reconciler) return replayed(await (local.accepted ?? local.promise));
        await local.promise.catch(() => undefined);
        continue;
      }
      const t = now();
      const { created, row: existing } = await insertOrGetSend(
        database,
        newRow(customerId, key, sendId, fingerprint, credits, t, owner, t + claimMs),
        payloadText,
      );
      if (!existing) continue; // deleted between two statements: claim again
      if (created)
        return {
          ...(await (payload.async
            ? acceptSend(parts, existing, fingerprint, payload, payloadText, takeRoom())
            : runs.track(sendId, fingerprint, existing, false, (r) => runSend(ctx, r)))),
          headers,
        };
      assertSameBody(existing.fingerprint, fingerprint);
      if (existing.state === 'done') return replayed(resultOf(existing));
      const mine = await acquireSend(database, sendId, owner, t, t + claimMs);
      if (mine) {
        if (mine.state === 'done') {
          await releaseSend(database, sendId, owner);
          return replayed(resultOf(mine));
        }
        // A retry re-supplies the payload; one already stored (an attempt in doubt) wins, and
        // so does how it is answered.
        await putPayload(database, sendId, payloadText);
        const stored = await storedPayload(parts, sendId);
        if (stored?.async) return { ...(await acceptSend(parts, mine, fingerprint, stored, payloadText, takeRoom())), headers };
        return { ...(await runs.track(sendId, fingerprint, mine, false, (r) => runSend(ctx, r, payloadText))), headers };
      }
      // Accepted and paid, running on another instance: its answer is already known.
      if (existing.state === 'delivering' || existing.state === 'refunding') {
        const stored = await storedPayload(parts, sendId);
        if (stored?.async) return replayed(acceptedAnswer(existing.id, existing.nonce, stored));
      }
      // Running on another instance: wait for it, then replay its answer or take over.
      if (now() >= waitUntil) {
        throw new HttpError(
          409,
          'idempotency_key_in_use',
          'A request with this Idempotency-Key is still being processed. Retry after the Retry-After delay to get its result.',
          {
            'Retry-After': '2',
          },
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    if (err instanceof HttpError) Object.assign(err.headers, headers);
    throw err;
  } finally {
    if (room) parts.room.free(customerId, takeRoom());
  }
}

/**
 * Holds room among the accepted emails for a send to be answered once queued, or refuses it
 * (429 send_queue_full, nothing recorded or taken), its Retry-After counting the emails held
 * and waiting ahead against 5 s of Resend's quota (the room's size).
 */
async function holdRoom(parts: SenderParts, customerId: string, count: number, headers: Record<string, string>): Promise<number> {
  const { room, acceptLimit } = parts;
  if (await room.hold(customerId, count)) return count;
  const seconds = Math.max(1, Math.ceil(((room.held() + room.waiting() + count - acceptLimit) / acceptLimit) * 5));
  throw new HttpError(
    429,
    'send_queue_full',
    "MailKit is holding as many emails as the email provider's quota delivers in the next seconds. " +
      'Nothing was taken; retry after the Retry-After delay.',
    {
      'Retry-After': String(seconds),
      ...headers,
    },
  );
}

/**
 * A new send its customer's balance cannot pay: refused (402) with nothing written. Claimed, it
 * would be refused all the same, after two commits (the claim and its deletion), each an fsync
 * on SQLite: 200 sends at once on a balance run dry queued behind 300 of them. Two reads decide
 * it: the balance (a customer with none yet goes the long way, which seeds it), and no send
 * under this key (a retry of one already paid is answered from its row, whatever the balance).
 */
async function cannotPay(parts: SenderParts, customerId: string, sendId: string, credits: number): Promise<boolean> {
  const balance = await findBalance(parts.ctx.database, customerId);
  if (!balance || balance.available >= credits) return false;
  return !(await findSend(parts.ctx.database, sendId));
}

async function storedPayload(parts: SenderParts, sendId: string): Promise<SendPayload | undefined> {
  const text = await payloadOf(parts.ctx.database, sendId);
  return text ? (JSON.parse(text) as SendPayload) : undefined;
}

/** A new send, claimed by `owner` from the start: the insert is the claim. */
function newRow(
  customerId: string,
  clientKey: string,
  id: string,
  fingerprint: string,
  credits: number,
  at: number,
  owner: string,
  claimedUntil: number,
): SendRow {
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
    funding: 'balance',
    leaseId: null,
  };
}

function assertSameBody(expected: string, actual: string) {
  if (expected !== actual) {
    throw new HttpError(
      422,
      'idempotency_key_reused',
      'This Idempotency-Key was already used with a different request body. Use a new key for a new email.',
    );
  }
}
