import express, { Router } from 'express';
import type { Resend } from 'resend';
import { z } from 'zod';
import type { Database } from '../db/index';
import { EVENT_STATUS, forgetOrphanEventsBefore, recordEmailEvent, type NewEmailEvent } from '../db/emails';
import { HttpError } from '../errors';
import type { Logger } from '../logger';

/** The part of Resend's email event MailKit reads (`OutboundEmailEventData` in Resend's spec); the rest is ignored. */
const emailEvent = z.object({
  type: z.string().min(1),
  created_at: z.iso.datetime({ offset: true }),
  data: z.looseObject({
    email_id: z.string().min(1).max(100),
    to: z.array(z.string()).optional(),
    bounce: z.looseObject({ type: z.string(), message: z.string().optional(), diagnosticCode: z.array(z.string()).optional() }).optional(),
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
 * The addresses an event puts on the sender's suppression list: a permanent bounce (the
 * recipients the diagnostics name, else every recipient the event lists), a complaint, or
 * Resend's own suppression. A transient bounce suppresses nothing.
 */
export function suppressedBy(event: EmailEvent): string[] {
  const listed = (event.data.to ?? []).map(bare);
  if (event.type === 'email.bounced') {
    if (event.data.bounce?.type !== 'Permanent') return [];
    const named = (event.data.bounce.diagnosticCode ?? []).flatMap((d) => /<([^<>\s]+@[^<>\s]+)>/.exec(d)?.[1]?.toLowerCase() ?? []);
    return named.length ? named : listed;
  }
  if (event.type === 'email.complained' || event.type === 'email.suppressed') return listed;
  return [];
}

/** A short reason worth showing with the event, never the email's content. */
function detailOf(event: EmailEvent): string | null {
  const d = event.data;
  const text = d.bounce ? `${d.bounce.type} bounce: ${d.bounce.message ?? ''}` : d.failed ? d.failed.reason : d.suppressed ? (d.suppressed.message ?? d.suppressed.reason ?? null) : null;
  return text === null ? null : text.trim().slice(0, DETAIL_CHARS);
}

/**
 * POST /webhooks/resend: raw body → Svix signature and timestamp check (the `resend` SDK's
 * `webhooks.verify`; 401 when it fails) → shape check (400) → dedupe by `svix-id` → the
 * email's status and the customer's suppression list. Mount BEFORE express.json().
 */
export function createResendWebhookRouter(opts: { resend: Resend; secret: string; database: Database; log: Logger; now?: () => number }): Router {
  const { resend, secret, database, log } = opts;
  const now = opts.now ?? Date.now;
  let recordedCount = 0;
  const router = Router();

  router.post('/', express.raw({ type: () => true, limit: '1mb' }), async (req, res) => {
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
    if (typeof type === 'string' && !EVENT_STATUS[type]) {
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
      void forgetOrphanEventsBefore(database, now() - ORPHAN_AFTER_MS).catch((err: unknown) => log.warn({ err }, 'could not forget orphan email events'));
    }
    log.debug({ svixId: headers.id, eventType: event.type, emailId: record.emailId, duplicate: !recorded }, 'resend email event');
    res.json(recorded ? { received: true } : { received: true, duplicate: true });
  });

  return router;
}
