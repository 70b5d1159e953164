import { createHash } from 'node:crypto';
import type { OutgoingEmail } from '../mail/mailer';

/**
 * What a send delivers: the exact Resend request bodies, sender included, kept from the send's
 * first run until it settles. A retry of an attempt whose outcome is unknown sends these bytes
 * again under the same Resend key, even if MAIL_FROM changed meanwhile (Resend would refuse a
 * different body for the key, and a refusal there says nothing about the first try).
 */
export interface SendPayload {
  batch: boolean;
  from: string;
  emails: OutgoingEmail[];
}

/** The HTTP answer a finished send gives, replayed verbatim for the same key. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

/** How long a client idempotency key is honoured after its send last changed: Resend keeps its keys for 24 hours. */
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

/**
 * Upstream idempotency keys for one attempt of one send row. The row's random nonce makes them
 * unique to the row, not only to the client's key: a key reused after its row was pruned gets
 * a new row and new upstream keys, so it can never land on an old debit or an old email. A
 * refunded attempt's keys are never reused either: the next attempt gets new ones.
 */
export function upstreamKeys(sendId: string, nonce: string, attempt: number) {
  // A row imported from the journal store (empty nonce) keeps the keys that store derived.
  if (!nonce) return { debit: `${sendId}:debit:${attempt}`, refund: `${sendId}:refund:${attempt}`, resend: `${sendId}:${attempt}` };
  const base = `${sendId}.${nonce}`;
  return {
    debit: `${base}:debit:${attempt}`,
    refund: `${base}:refund:${attempt}`,
    resend: `${base}:${attempt}`,
  };
}
