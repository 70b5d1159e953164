import { createHash } from 'node:crypto';
import type { OutgoingEmail } from '../mail/mailer';

/**
 * A send's durable record. See README.md in this folder for the state machine.
 *
 * - `new`: nothing reserved under the current attempt yet.
 * - `unsure`: Dodo gave no answer to the debit: it may or may not exist. Nothing was sent;
 *   the same key's retry completes the send (409 → deliver), else the reconciler voids it.
 * - `delivering`: credits reserved (Dodo debit under `attempt`'s key); the email may or may not be out.
 * - `refunding`: Resend rejected the email; the credits are going back. Persisted (flushed)
 *   before the refund is issued, so a crash mid-refund resumes the refund, never skips it.
 * - `failed`: nothing in flight and nothing kept (the client was told so); a retry with the
 *   same key starts attempt `attempt` afresh.
 * - `done`: final; `result` is replayed to every retry with the same key.
 */
export interface SendRecord {
  customerId: string;
  fingerprint: string;
  /** Emails this send covers (1 for /send, N for /send/batch): the credits reserved per attempt. */
  credits: number;
  attempt: number;
  state: 'new' | 'unsure' | 'delivering' | 'refunding' | 'failed' | 'done';
  /** Set while refunding: how many credits go back and whether a fresh attempt may follow. */
  refund?: { credits: number; retryable: boolean; reason: string };
  result?: StoredResponse;
  createdAt: string;
  updatedAt: string;
}

/**
 * What a send delivers, kept (in its own collection, so record updates do not rewrite it)
 * from the start of a run until the send is done or failed: the reconciler redelivers an
 * unconfirmed send from it when its client does not come back.
 */
export interface SendPayload {
  batch: boolean;
  emails: OutgoingEmail[];
}

/** The HTTP answer a finished send gives, replayed verbatim for the same key. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

/** How long a client idempotency key is honoured: Resend keeps its keys for 24 hours. */
export const KEY_RETENTION_MS = 24 * 60 * 60 * 1000;

/**
 * The reconciler redelivers an unconfirmed send only while Resend still remembers its key,
 * with an hour to spare: past that, a redelivery could send the email a second time.
 */
export const REDELIVER_WITHIN_MS = KEY_RETENTION_MS - 60 * 60 * 1000;

/** Internal send id: the client's key scoped to the customer, so two customers' keys never collide. */
export function sendIdFor(customerId: string, clientKey: string): string {
  return `snd_${createHash('sha256').update(`${customerId}\u0000${clientKey}`).digest('hex').slice(0, 40)}`;
}

/** A stable digest of the request body: the same key with a different body is refused. */
export function fingerprintOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** Upstream idempotency keys for one attempt of a send: a refunded attempt's keys are never reused. */
export function upstreamKeys(sendId: string, attempt: number) {
  return {
    debit: `${sendId}:debit:${attempt}`,
    refund: `${sendId}:refund:${attempt}`,
    resend: `${sendId}:${attempt}`,
  };
}
