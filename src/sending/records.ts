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
  /**
   * Answered once paid and queued (`Prefer: respond-async`): the client holds MailKit's own ids
   * (emailIdsOf), and the send is delivered in the background, through outages, until Resend
   * answers for good. Absent: answered with Resend's ids once Resend accepted the emails.
   */
  async?: boolean;
}

/** The HTTP answer a finished send gives, replayed verbatim for the same key. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

/** What the route writes back: status, body, and the headers that let a client retry safely. */
export interface SendOutcome extends StoredResponse {
  headers: Record<string, string>;
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

/**
 * MailKit's own ids for the emails of a send answered once queued: UUID-shaped (like Resend's,
 * so GET /emails/:id takes either), derived from the row, so every answer and every retry of
 * the send names the same ids with nothing more stored.
 */
export function emailIdsOf(sendId: string, nonce: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    const h = createHash('sha256').update(`${sendId}.${nonce}:email:${i}`).digest('hex');
    // Version 8 (RFC 9562: custom), variant 10.
    return (
      `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-` +
      `${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`
    );
  });
}

/** The answer of a send accepted for background delivery (202), the same for every retry of its key. */
export function acceptedAnswer(sendId: string, nonce: string, payload: SendPayload): StoredResponse {
  const ids = emailIdsOf(sendId, nonce, payload.emails.length);
  if (!payload.batch) return { status: 202, body: { id: ids[0], status: 'queued' } };
  return { status: 202, body: { data: ids.map((id) => ({ id, status: 'queued' })), queued: ids.length, failed: 0 } };
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
