import type { Resend } from 'resend';
import type { Logger } from '../logger';
import { observedQuota, QuotaExhausted, type Budget } from '../quotas';
import { reachCause } from '../lib/vendor-cause';

/** One email as MailKit hands it to Resend. */
export interface OutgoingEmail {
  to: string[];
  subject: string;
  html?: string;
  text?: string;
  // Optional fields, passed to Resend as they are; absent ones are left out.
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
  ({
    from,
    to: e.to,
    subject: e.subject,
    html: e.html,
    text: e.text,
    cc: e.cc,
    bcc: e.bcc,
    replyTo: e.replyTo,
    tags: e.tags,
    headers: e.headers,
  }) as never;

/**
 * What became of one Resend call. Only Resend's ids prove an email went out, and only a
 * validation error proves it did not (sending/README.md, "What Resend's answers prove"):
 * - `sent`: Resend accepted it (its ids).
 * - `rejected`: Resend answered before sending anything. `retryable`: its limiter (429) or
 *   MailKit's own budget refused the call, so a later try may work (under a new key if no
 *   earlier call under this one went unanswered); otherwise the email itself is invalid (400,
 *   422, 451), which settles it only under a key never in doubt.
 * - `unknown`: no answer, a 5xx (a gateway may answer 5xx after Resend sent it), or a key still
 *   in use: it may or may not have been sent; only the same key, asked again, can tell.
 * - `paused`: Resend refused MailKit's own credentials or endpoint (401, 403, 404, 405): a
 *   configuration problem, never the email's. Nothing is refunded or failed; sending pauses
 *   and the email goes out under the same key once Resend accepts the key again.
 */
export type Delivery =
  | { kind: 'sent'; id: string }
  | { kind: 'rejected'; retryable: boolean; status: number; name: string; message: string; retryAfterSec?: number }
  | { kind: 'unknown'; message: string; status?: number; retryAfterSec?: number; conflict?: boolean }
  | { kind: 'paused'; status: number; name: string; message: string; retryAfterSec: number };

export type BatchDelivery =
  { kind: 'sent'; ids: Array<string | null>; errors: Array<{ index: number; message: string }> } | Exclude<Delivery, { kind: 'sent' }>;

/** Sending paused because Resend refused MailKit's credentials: since when, and Resend's answer. */
export interface SendingPause {
  since: number;
  status: number;
  name: string;
  message: string;
}

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
  deliverFlight(
    items: Array<{ email: OutgoingEmail; from: string }>,
    idempotencyKey: string,
    opts?: { tokenTaken?: boolean },
  ): Promise<BatchDelivery>;
  /** Resend's shared quota, for the dispatcher. */
  readonly budget?: Budget;
  /** Set while Resend refuses MailKit's credentials (401/403): readiness says why. */
  paused(): SendingPause | null;
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
  /** While paused, one call every this long goes to Resend to see whether it accepts the key again (default 2 s). */
  pauseProbeMs?: number;
  /** Where the pause is logged (once as it starts, once as it ends). */
  log?: Logger;
  now?: () => number;
}

type ResendError = { statusCode?: number | null; name?: string; message?: string };

/**
 * Logs Resend going silent once, with where MailKit calls and why (the SDK keeps a failed
 * fetch's cause to itself: a TCP connect finds it), and once more when it answers again.
 */
function outageLog(baseUrl: string, log: Logger | undefined) {
  let silentSince: number | null = null;
  let host = baseUrl;
  try {
    host = new URL(baseUrl).host;
  } catch {
    // keep the configured text
  }
  return {
    unanswered() {
      if (silentSince !== null || !log) return;
      silentSince = Date.now();
      void reachCause(baseUrl).then((cause) => log.error({ vendor: 'Resend', host, cause }, `Resend did not answer: ${cause} (calling ${host})`));
    },
    answered() {
      if (silentSince === null) return;
      log?.info({ vendor: 'Resend', host, silentMs: Date.now() - silentSince }, `Resend answers again (${host})`);
      silentSince = null;
    },
  };
}

export function createMailer(opts: MailerOptions): Mailer {
  const { resend, from, log } = opts;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const maxRetries = opts.maxRetries ?? 3;
  const maxBackoffMs = opts.maxBackoffMs ?? 5_000;
  const probeMs = opts.pauseProbeMs ?? 2_000;
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  /** Per instance: each instance finds out for itself, at one probe call per `probeMs`. */
  let pause: (SendingPause & { nextProbeAt: number }) | null = null;

  const pausedAnswer = (p: SendingPause): Extract<Delivery, { kind: 'paused' }> => ({
    kind: 'paused',
    status: p.status,
    name: p.name,
    message: p.message,
    retryAfterSec: Math.max(1, Math.ceil(((pause?.nextProbeAt ?? now()) - now()) / 1000)),
  });

  const silence = outageLog(resend.baseUrl, log);

  /** Resend refused MailKit's key: sending pauses (logged once, as it starts). */
  function startPause(failed: Extract<Delivery, { kind: 'paused' }>) {
    if (!pause) {
      log?.error(
        { status: failed.status, name: failed.name, reason: failed.message },
        "Resend refused MailKit's API key: sending is paused. " +
          'Emails keep their credits and go out once Resend accepts the key again (check RESEND_API_KEY and the sending domain).',
      );
      pause = { since: now(), status: failed.status, name: failed.name, message: failed.message, nextProbeAt: now() + probeMs };
    } else pause.nextProbeAt = Math.max(pause.nextProbeAt, now() + probeMs);
  }

  /** A call Resend answered past its key check: the key works again. */
  function endPause() {
    if (!pause) return;
    log?.info({ pausedMs: now() - pause.since }, "Resend accepts MailKit's API key again: sending resumed");
    pause = null;
  }

  /**
   * Runs one Resend call, retrying under the same key with backoff while Resend's answer proves
   * nothing (its 429, a 5xx). Retrying with the same idempotency key is what makes this safe:
   * Resend answers a repeat with the first result. Once any try went unanswered or got a 5xx,
   * a later refusal proves nothing either: the outcome stays unknown.
   */
  async function withRetries<T>(
    call: (signal: AbortSignal) => Promise<{ data: T | null; error: ResendError | null; headers: Record<string, string> | null }>,
    tokenTaken = false,
    priority = false,
  ): Promise<{ ok: T } | { failed: Exclude<Delivery, { kind: 'sent' }> }> {
    let doubt: Extract<Delivery, { kind: 'unknown' }> | null = null;
    for (let attempt = 0; ; attempt++) {
      // While paused only the probe reaches Resend; the others are answered at once (nothing sent).
      if (pause) {
        if (now() < pause.nextProbeAt) return { failed: doubt ?? pausedAnswer(pause) };
        pause.nextProbeAt = now() + probeMs;
      }
      try {
        if (attempt > 0 || !tokenTaken) await opts.budget?.take({ priority });
      } catch (err) {
        if (!(err instanceof QuotaExhausted)) throw err;
        // Never sent: as definite as Resend's own 429, unless an earlier try is in doubt.
        return {
          failed: doubt ?? {
            kind: 'rejected',
            retryable: true,
            status: 429,
            name: 'quota_exhausted',
            message: err.message,
            retryAfterSec: err.retryAfterSeconds,
          },
        };
      }
      let result;
      try {
        result = await call(AbortSignal.timeout(timeoutMs));
      } catch (err) {
        silence.unanswered();
        return { failed: { kind: 'unknown', message: `Resend did not answer: ${(err as Error).name}` } };
      }
      // The SDK gives no headers exactly when its fetch failed: nothing came back.
      if (result.error && result.headers === null) silence.unanswered();
      else silence.answered();
      // Every answer says how much of Resend's quota is left: the budget paces by it.
      const quota = observedQuota(result.headers);
      if (quota) void opts.budget?.observe?.(quota);
      if (result.data && !result.error) {
        endPause();
        return { ok: result.data };
      }
      const failed = classify(result.error ?? {}, result.headers);
      if (failed.kind === 'paused') {
        startPause(failed);
        return { failed: doubt ?? pausedAnswer(pause!) };
      }
      if (failed.kind === 'rejected' && !failed.retryable) endPause();
      // Resend's own 429: every instance holds back for as long as it asks.
      if (failed.kind === 'rejected' && failed.status === 429) void opts.budget?.penalize(failed.retryAfterSec ?? 1);
      if (failed.kind === 'unknown') doubt = failed;
      const retryable =
        (failed.kind === 'rejected' && failed.retryable) || (failed.kind === 'unknown' && failed.status !== undefined && !failed.conflict);
      const retryAfterSec = 'retryAfterSec' in failed ? failed.retryAfterSec : undefined;
      if (retryable && attempt < maxRetries && (retryAfterSec === undefined || retryAfterSec * 1000 <= maxBackoffMs)) {
        await sleep(Math.min(maxBackoffMs, retryAfterSec !== undefined ? retryAfterSec * 1000 : backoff(attempt)));
        continue;
      }
      // After a try in doubt, a refusal says nothing about that try: the outcome stays unknown.
      if (doubt && failed.kind === 'rejected') return { failed: { ...doubt, retryAfterSec: failed.retryAfterSec ?? doubt.retryAfterSec } };
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
      return batchCall(
        emails.map((e) => resendBody(e, sender)),
        idempotencyKey,
        callOpts.tokenTaken ?? false,
      );
    },

    deliverFlight(items, idempotencyKey, callOpts = {}) {
      return batchCall(
        items.map((i) => resendBody(i.email, i.from)),
        idempotencyKey,
        callOpts.tokenTaken ?? false,
      );
    },
    budget: opts.budget,
    paused: () => (pause ? { since: pause.since, status: pause.status, name: pause.name, message: pause.message } : null),
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

/**
 * What one Resend error answer proves (sending/README.md has the table). Resend checks the API
 * key first, then its rate limit, then the idempotency key, then the body: a 401/403 or a 429
 * says nothing about the email, a validation error says it was not sent, and a 5xx (JSON or
 * not: a gateway's HTML 504 arrives here as `application_error`) may come after it was.
 */
function classify(error: ResendError, headers: Record<string, string> | null): Exclude<Delivery, { kind: 'sent' }> {
  const status = error.statusCode ?? null;
  const message = error.message ?? 'Resend returned an error.';
  const name = error.name ?? 'application_error';
  // The SDK reports a failed fetch (refused, reset, aborted) as statusCode null, and so does a
  // JSON error body that is not Resend's envelope: no answer we can read, outcome unknown.
  if (status === null || !Number.isInteger(status)) return { kind: 'unknown', message };
  const retryAfter = Number(headers?.['retry-after']);
  const retryAfterSec = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
  if (status === 429) return { kind: 'rejected', retryable: true, status, name, message, retryAfterSec: retryAfterSec ?? 1 };
  if (status >= 500) return { kind: 'unknown', message, status, retryAfterSec };
  // Another request with this key is still being processed (it may yet succeed), or this key
  // was used for another body (what it sent is unknown to this call).
  if (status === 409)
    return { kind: 'unknown', message, status, retryAfterSec: retryAfterSec ?? 1, conflict: name !== 'concurrent_idempotent_requests' };
  // MailKit's credentials or endpoint, not the email: 401/403 (key invalid, restricted, a domain
  // not verified), 404/405 (a wrong RESEND_BASE_URL), 400 invalid_idempotency_key (MailKit's key).
  if (status === 401 || status === 403 || status === 404 || status === 405 || name === 'invalid_idempotency_key') {
    return { kind: 'paused', status, name, message, retryAfterSec: 2 };
  }
  return { kind: 'rejected', retryable: false, status, name, message };
}

function backoff(attempt: number): number {
  return Math.min(2000, 100 * 2 ** attempt) + Math.floor(Math.random() * 50);
}
