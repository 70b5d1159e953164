import type { Resend } from 'resend';
import { QuotaExhausted, type Budget } from '../quotas';

/** One email as MailKit hands it to Resend. */
export interface OutgoingEmail {
  to: string[];
  subject: string;
  html?: string;
  text?: string;
  // Optional fields (issue 14), passed to Resend as they are; absent ones are left out.
  cc?: string[];
  bcc?: string[];
  replyTo?: string[];
  tags?: Array<{ name: string; value: string }>;
  headers?: Record<string, string>;
}

/** Resend counts every To, Cc and Bcc recipient as one email: MailKit charges one credit each. */
export const recipientCount = (e: OutgoingEmail): number => e.to.length + (e.cc?.length ?? 0) + (e.bcc?.length ?? 0);

/** The Resend request body of one email (the SDK maps replyTo to reply_to). */
const resendBody = (e: OutgoingEmail, from: string) =>
  ({ from, to: e.to, subject: e.subject, html: e.html, text: e.text, cc: e.cc, bcc: e.bcc, replyTo: e.replyTo, tags: e.tags, headers: e.headers }) as never;

/**
 * What became of a delivery attempt. The distinction matters for money:
 * - `sent`: Resend accepted it.
 * - `rejected`: Resend answered with an error, so nothing was sent; `retryable` when a
 *   later try may succeed (5xx, rate limit, concurrent use of the key), not when the
 *   email itself is invalid.
 * - `unknown`: no answer (timeout, connection reset): it may or may not have been sent.
 */
export type Delivery =
  | { kind: 'sent'; id: string }
  | { kind: 'rejected'; retryable: boolean; status: number; name: string; message: string; retryAfterSec?: number }
  | { kind: 'unknown'; message: string };

export type BatchDelivery =
  | { kind: 'sent'; ids: Array<string | null>; errors: Array<{ index: number; message: string }> }
  | Exclude<Delivery, { kind: 'sent' }>;

/** The Resend side of MailKit: deliver one email or a batch, honouring rate limits. */
export interface Mailer {
  /** The configured sender (MAIL_FROM). */
  readonly from: string;
  /**
   * One email; `from` overrides the configured sender (a retry repeats the first try's).
   * `priority`: MailKit's own emails take Resend's turns before customers' flights.
   * `tokenTaken`: the caller already took this call's turn (a send flying alone: the
   * dispatcher took it); its retries take their own.
   */
  deliver(email: OutgoingEmail, idempotencyKey: string, from?: string, opts?: { priority?: boolean; tokenTaken?: boolean }): Promise<Delivery>;
  /** One Resend batch call in permissive mode: valid items are sent, invalid ones reported by index. `tokenTaken` as for deliver. */
  deliverBatch(emails: OutgoingEmail[], idempotencyKey: string, from?: string, opts?: { tokenTaken?: boolean }): Promise<BatchDelivery>;
  /**
   * One Resend batch call for a flight (emails of several sends, each with its own sender).
   * `tokenTaken`: the caller already took this call's turn from the budget (the dispatcher
   * takes it before it packs the flight); its retries take their own.
   */
  deliverFlight(items: Array<{ email: OutgoingEmail; from: string }>, idempotencyKey: string, opts?: { tokenTaken?: boolean }): Promise<BatchDelivery>;
  /** Resend's shared quota, for the dispatcher. */
  readonly budget?: Budget;
}

export interface MailerOptions {
  resend: Resend;
  from: string;
  /** Per-call timeout; past it the outcome is unknown (default 15 s). */
  timeoutMs?: number;
  /** Bounded retries on 429 and 5xx with the same idempotency key (default 3). */
  maxRetries?: number;
  /** Longest single wait we accept from a Retry-After before giving up (default 5 s). */
  maxBackoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Resend's request quota, shared by every instance: each call takes a token first. */
  budget?: Budget;
}

type ResendError = { statusCode?: number | null; name?: string; message?: string };

export function createMailer(opts: MailerOptions): Mailer {
  const { resend, from } = opts;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const maxRetries = opts.maxRetries ?? 3;
  const maxBackoffMs = opts.maxBackoffMs ?? 5_000;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));

  /**
   * Runs one Resend call, retrying retryable rejections with backoff. Retrying with the
   * same idempotency key is what makes this safe: Resend answers a repeat with the first result.
   */
  async function withRetries<T>(
    call: (signal: AbortSignal) => Promise<{ data: T | null; error: ResendError | null; headers: Record<string, string> | null }>,
    tokenTaken = false,
    priority = false,
  ): Promise<{ ok: T } | { failed: Exclude<Delivery, { kind: 'sent' }> }> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (attempt > 0 || !tokenTaken) await opts.budget?.take({ priority });
      } catch (err) {
        if (!(err instanceof QuotaExhausted)) throw err;
        // Never sent: as definite as Resend's own 429.
        return { failed: { kind: 'rejected', retryable: true, status: 429, name: 'quota_exhausted', message: err.message, retryAfterSec: err.retryAfterSeconds } };
      }
      let result;
      try {
        result = await call(AbortSignal.timeout(timeoutMs));
      } catch (err) {
        return { failed: { kind: 'unknown', message: `Resend did not answer: ${(err as Error).name}` } };
      }
      if (result.data && !result.error) return { ok: result.data };
      const failed = classify(result.error ?? {}, result.headers);
      // Resend's own 429: every instance holds back for as long as it asks.
      if (failed.kind === 'rejected' && failed.status === 429 && failed.name !== 'concurrent_idempotent_requests') void opts.budget?.penalize(failed.retryAfterSec ?? 1);
      if (failed.kind === 'rejected' && failed.retryable && attempt < maxRetries) {
        const wait = Math.min(maxBackoffMs, failed.retryAfterSec !== undefined ? failed.retryAfterSec * 1000 : backoff(attempt));
        if (failed.retryAfterSec === undefined || failed.retryAfterSec * 1000 <= maxBackoffMs) {
          await sleep(wait);
          continue;
        }
      }
      // Another request holds this key (another instance, or a client retrying in parallel): it
      // may still succeed, so this is not a rejection we could refund on.
      if (failed.kind === 'rejected' && failed.name === 'concurrent_idempotent_requests') {
        return { failed: { kind: 'unknown', message: 'Another request with the same idempotency key is still being delivered.' } };
      }
      return { failed };
    }
  }

  return {
    from,
    async deliver(email, idempotencyKey, sender = from, deliverOpts = {}) {
      const r = await withRetries(
        (signal) =>
          resend.emails.send(resendBody(email, sender), {
            idempotencyKey,
            signal,
          }),
        deliverOpts.tokenTaken ?? false,
        deliverOpts.priority ?? false,
      );
      return 'ok' in r ? { kind: 'sent', id: (r.ok as { id: string }).id } : r.failed;
    },

    deliverBatch(emails, idempotencyKey, sender = from, callOpts = {}) {
      return batchCall(emails.map((e) => resendBody(e, sender)), idempotencyKey, callOpts.tokenTaken ?? false);
    },

    deliverFlight(items, idempotencyKey, callOpts = {}) {
      return batchCall(items.map((i) => resendBody(i.email, i.from)), idempotencyKey, callOpts.tokenTaken ?? false);
    },
    budget: opts.budget,
  };

  /** One permissive batch call, its answer as one id (or null) per item, in order. */
  async function batchCall(bodies: never[], idempotencyKey: string, tokenTaken: boolean): Promise<BatchDelivery> {
    const r = await withRetries((signal) => resend.batch.send(bodies, { idempotencyKey, batchValidation: 'permissive', signal }), tokenTaken);
    if (!('ok' in r)) return r.failed;
    const ok = r.ok as { data: Array<{ id: string }>; errors?: Array<{ index: number; message: string }> };
    // Permissive mode returns ids for the accepted items in order; failed indexes are listed apart.
    const errors = ok.errors ?? [];
    const failedIdx = new Set(errors.map((e) => e.index));
    const ids: Array<string | null> = [];
    let next = 0;
    for (let i = 0; i < bodies.length; i++) ids.push(failedIdx.has(i) ? null : (ok.data[next++]?.id ?? null));
    return { kind: 'sent', ids, errors };
  }
}

function classify(error: ResendError, headers: Record<string, string> | null): Exclude<Delivery, { kind: 'sent' }> {
  const status = error.statusCode ?? null;
  const message = error.message ?? 'Resend returned an error.';
  const name = error.name ?? 'application_error';
  // The SDK reports a failed fetch (refused, reset, aborted) as statusCode null: no answer, outcome unknown.
  if (status === null) return { kind: 'unknown', message };
  const retryAfter = Number(headers?.['retry-after']);
  const retryAfterSec = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
  if (status === 429) return { kind: 'rejected', retryable: true, status, name, message, retryAfterSec: retryAfterSec ?? 1 };
  // Another request with this key is still being processed: it may yet succeed.
  if (status === 409 && name === 'concurrent_idempotent_requests') return { kind: 'rejected', retryable: true, status, name, message, retryAfterSec: retryAfterSec ?? 1 };
  if (status >= 500) return { kind: 'rejected', retryable: true, status, name, message, retryAfterSec };
  return { kind: 'rejected', retryable: false, status, name, message };
}

function backoff(attempt: number): number {
  return Math.min(2000, 100 * 2 ** attempt) + Math.floor(Math.random() * 50);
}
