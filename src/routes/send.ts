import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { assertSameCustomer, customerOf } from '../auth/middleware';
import type { Database } from '../db/index';
import type { OutgoingEmail } from '../mail/mailer';
import type { Sender, SendOutcome } from '../sending/sender';
import { batchRefusals, suppressionRefusal } from '../sending/suppression';
import { customerIdField, emailObject, idempotencyKeyHeader, LIMITS, parse } from './validate';

export const sendBody = emailObject({ customer_id: customerIdField });
export const batchBody = z.strictObject({
  emails: z.array(emailObject({})).min(1, 'needs at least one email').max(LIMITS.batchItems, `at most ${LIMITS.batchItems} emails per batch`),
  customer_id: customerIdField,
});

type EmailInput = z.infer<typeof sendBody>;

/**
 * `Prefer: respond-async` (RFC 7240): answer once the send is paid and queued, 202 with MailKit's
 * own ids, instead of once Resend accepted it. The email's fate is then read from GET /emails/:id.
 */
export function prefersAsync(prefer: string | undefined): boolean {
  return prefer !== undefined && prefer.split(',').some((p) => p.split(';')[0]!.trim().toLowerCase() === 'respond-async');
}
const list = (v: string | string[] | undefined) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

/** The validated request as MailKit hands it to Resend; absent fields stay absent (the idempotency fingerprint is unchanged for old clients). */
const toEmail = (e: Omit<EmailInput, 'customer_id'>): OutgoingEmail => ({
  to: list(e.to)!,
  subject: e.subject,
  html: e.html,
  text: e.text,
  cc: list(e.cc),
  bcc: list(e.bcc),
  replyTo: list(e.reply_to),
  tags: e.tags,
  headers: e.headers,
});

/**
 * POST /send and POST /send/batch: authenticate, validate, refuse suppressed recipients, then
 * hand over to the sender, which reserves credits, delivers and settles (src/sending/README.md).
 */
export function sendRoutes(deps: { sender: Sender; auth: RequestHandler; database: Database }): Router {
  const router = Router();
  const reply = (res: Parameters<RequestHandler>[1], outcome: SendOutcome) => {
    if (outcome.status === 202) {
      res.set('Preference-Applied', 'respond-async');
      const id = (outcome.body as { id?: unknown }).id;
      if (typeof id === 'string') res.location(`/emails/${id}`);
    }
    res.set(outcome.headers).status(outcome.status).json(outcome.body);
  };

  router.post('/send', deps.auth, async (req, res) => {
    const key = parse(idempotencyKeyHeader, req.get('idempotency-key'), 'Idempotency-Key');
    const body = parse(sendBody, req.body);
    assertSameCustomer(req, body.customer_id);
    const email = toEmail(body);
    const customerId = customerOf(req);
    // Before any credit is taken: a suppressed recipient refuses the whole email.
    const refusal = await suppressionRefusal(deps.database, customerId, email, key);
    if (refusal) throw refusal;
    reply(res, await deps.sender.send(customerId, email, key, { async: prefersAsync(req.get('prefer')) }));
  });

  router.post('/send/batch', deps.auth, async (req, res) => {
    const key = parse(idempotencyKeyHeader, req.get('idempotency-key'), 'Idempotency-Key');
    const body = parse(batchBody, req.body);
    assertSameCustomer(req, body.customer_id);
    const emails = body.emails.map(toEmail);
    const customerId = customerOf(req);
    const queued = prefersAsync(req.get('prefer'));
    // A suppressed item alone is refused (and costs nothing); the others go as one batch.
    const refusals = await batchRefusals(deps.database, customerId, emails, key);
    const sendable = emails.filter((_, i) => !refusals[i]);
    const refused = (i: number) => ({ error: { code: refusals[i]!.code, message: refusals[i]!.message } });
    if (sendable.length === 0) {
      res.status(200).json({ data: emails.map((_, i) => refused(i)), ...(queued ? { queued: 0 } : { sent: 0 }), failed: emails.length });
      return;
    }
    const outcome = await deps.sender.sendBatch(customerId, sendable, key, { async: queued });
    const answer = outcome.body as { data?: unknown[]; sent?: number; queued?: number; failed: number };
    if ((outcome.status !== 200 && outcome.status !== 202) || !Array.isArray(answer?.data) || sendable.length === emails.length)
      return reply(res, outcome);
    let next = 0;
    const data = emails.map((_, i) => (refusals[i] ? refused(i) : answer.data![next++]));
    const failed = answer.failed + (emails.length - sendable.length);
    const counts = outcome.status === 202 ? { queued: answer.queued } : { sent: answer.sent };
    reply(res, { ...outcome, body: { data, ...counts, failed } });
  });

  return router;
}
