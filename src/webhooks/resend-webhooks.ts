import { Router } from 'express';
import type { Resend } from 'resend';
import { z } from 'zod';
import type { Database } from '../db/index';
import { eventStatus, forgetOrphanEventsBefore, recordEmailEvent, type NewEmailEvent } from '../db/emails';
import { HttpError } from '../errors';
import type { Logger } from '../logger';
import { signedWebhookBody } from './signed-body';

/** The part of Resend's email event MailKit reads (`OutboundEmailEventData` in Resend's spec); the rest is ignored. */
const emailEvent = z.object({
  type: z.string().min(1),
  created_at: z.iso.datetime({ offset: true }),
  data: z.looseObject({
    email_id: z.string().min(1).max(100),
    to: z.array(z.string()).optional(),
    bounce: z.looseObject({ type: z.string(), message: z.string().optional() }).optional(),
    failed: z.looseObject({ reason: z.string() }).optional(),
    suppressed: z.looseObject({ reason: z.string().optional(), message: z.string().optional() }).optional(),
  }),
});
type EmailEvent = z.infer<typeof emailEvent>;

const DETAIL_CHARS = 500;
/** An event whose email is still unknown after a day never will be: Resend retries for about a day. */
const ORPHAN_AFTER_MS = 24 * 60 * 60 * 1000;
const bare = (mailbox: string) => (/<([^<>]+)>\s*$/.exec(mailbox)?.[1] ?? mailbox).trim().toLowerCase();

/**
 * The address an event puts on the sender's suppression list: the one recipient the event is
 * about, as Resend names it in `data.to` (since Resend's per-recipient events, "each email event
 * is connected to a single recipient" and `to` holds only that one). A permanent bounce, a
 * complaint and Resend's own suppression suppress it; a transient bounce suppresses nothing.
 *
 * Never an address parsed from free text: a bounce's `diagnosticCode` and `message` are written
 * by the remote mail server, which could otherwise put any address on the customer's list. An
 * event whose `to` names several recipients (an older payload, or a complaint about an email to
 * several people) does not say which of them bounced or complained: it suppresses none, and its
 * detail says so (see noneSuppressed). Blocking mail to a customer's other recipients on a guess
 * would hurt more than one more email to an address that complained.
 */
export function suppressedBy(event: EmailEvent): string[] {
  if (!suppresses(event)) return [];
  const named = namedRecipients(event);
  return named.length === 1 ? named : [];
}

function suppresses(event: EmailEvent): boolean {
  if (event.type === 'email.bounced') return event.data.bounce?.type === 'Permanent';
  return event.type === 'email.complained' || event.type === 'email.suppressed';
}

const namedRecipients = (event: EmailEvent) => [...new Set((event.data.to ?? []).map(bare).filter((a) => a.includes('@')))];

/** Why an event that would suppress its recipient suppressed nobody, or null. */
function noneSuppressed(event: EmailEvent): string | null {
  if (!suppresses(event)) return null;
  const n = namedRecipients(event).length;
  return n === 1 ? null : `names ${n} recipients: none suppressed (the event does not say which one)`;
}

/** A short reason worth showing with the event, never the email's content. */
function detailOf(event: EmailEvent): string | null {
  const d = event.data;
  const text = d.bounce
    ? `${d.bounce.type} bounce: ${d.bounce.message ?? ''}`
    : d.failed
      ? d.failed.reason
      : d.suppressed
        ? (d.suppressed.message ?? d.suppressed.reason ?? null)
        : null;
  const note = noneSuppressed(event);
  // The note first: a long bounce message must not cut it off.
  const parts = [note, text?.trim() || null].filter((p): p is string => p !== null);
  return parts.length ? parts.join('; ').slice(0, DETAIL_CHARS) : null;
}

/**
 * POST /webhooks/resend: raw body → Svix signature and timestamp check (the `resend` SDK's
 * `webhooks.verify`; 401 when it fails) → shape check (400) → dedupe by `svix-id` → the
 * email's status and the customer's suppression list. Mount BEFORE express.json().
 */
export function createResendWebhookRouter(opts: {
  resend: Resend;
  secret: string | null;
  database: Database;
  log: Logger;
  now?: () => number;
}): Router {
  const { resend, secret, database, log } = opts;
  const now = opts.now ?? Date.now;
  let recordedCount = 0;
  const router = Router();
  if (secret === null) {
    // Live without RESEND_WEBHOOK_SECRET (the tutorial has no Resend webhook): nothing can be
    // verified, so nothing is taken; Resend's retries come back once the secret is set.
    router.post('/', (_req, res) => {
      res
        .status(503)
        .set({ 'Retry-After': '3600', Connection: 'close' })
        .json({
          error: {
            code: 'webhook_not_configured',
            message: 'RESEND_WEBHOOK_SECRET is not set on this MailKit: Resend events cannot be verified yet.',
          },
        });
    });
    return router;
  }

  const body = signedWebhookBody({
    headers: { id: 'svix-id', timestamp: 'svix-timestamp', signature: 'svix-signature' },
    log,
    what: 'resend webhook',
  });
  router.post('/', ...body, async (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
    const headers = { id: req.get('svix-id') ?? '', timestamp: req.get('svix-timestamp') ?? '', signature: req.get('svix-signature') ?? '' };
    let payload: unknown;
    try {
      // HMAC over the raw bytes; refuses a timestamp more than 5 minutes away (a replay of an old capture).
      payload = resend.webhooks.verify({ payload: raw, headers, webhookSecret: secret });
    } catch (err) {
      if (err instanceof SyntaxError) throw new HttpError(400, 'malformed_payload', 'The webhook body is not valid JSON.');
      log.warn({ svixId: headers.id || undefined, reason: (err as Error).message }, 'resend webhook signature rejected');
      throw new HttpError(401, 'invalid_signature', 'The webhook signature, or its timestamp, did not verify.');
    }
    const type = (payload as { type?: unknown } | null)?.type;
    if (typeof type === 'string' && !eventStatus(type)) {
      // Opens, clicks, contacts, domains…: not part of an email's delivery status.
      log.info({ svixId: headers.id, eventType: type }, 'resend webhook acknowledged (no handler for this type)');
      res.json({ received: true });
      return;
    }
    const parsed = emailEvent.safeParse(payload);
    if (!parsed.success) throw new HttpError(400, 'malformed_payload', 'The webhook payload is not a Resend email event.');
    const event = parsed.data;
    const record: NewEmailEvent = {
      id: headers.id,
      emailId: event.data.email_id,
      type: event.type,
      occurredAt: Date.parse(event.created_at),
      detail: detailOf(event),
      suppress: suppressedBy(event),
    };
    const recorded = await recordEmailEvent(database, record, now());
    if (recorded && ++recordedCount % 1000 === 0) {
      void forgetOrphanEventsBefore(database, now() - ORPHAN_AFTER_MS).catch((err: unknown) =>
        log.warn({ err }, 'could not forget orphan email events'),
      );
    }
    log.debug({ svixId: headers.id, eventType: event.type, emailId: record.emailId, duplicate: !recorded }, 'resend email event');
    res.json(recorded ? { received: true } : { received: true, duplicate: true });
  });

  return router;
}
