import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { assertSameCustomer, customerOf } from '../auth/middleware';
import type { OutgoingEmail } from '../mail/mailer';
import type { Sender, SendOutcome } from '../sending/sender';
import { customerIdField, emailFields, idempotencyKeyHeader, LIMITS, parse } from './validate';

const sendBody = z.strictObject({ ...emailFields, customer_id: customerIdField });
const batchBody = z.strictObject({
  emails: z
    .array(z.strictObject(emailFields))
    .min(1, 'needs at least one email')
    .max(LIMITS.batchItems, `at most ${LIMITS.batchItems} emails per batch`),
  customer_id: customerIdField,
});

const toEmail = (e: { to: string | string[]; subject: string; html: string }): OutgoingEmail => ({
  to: Array.isArray(e.to) ? e.to : [e.to],
  subject: e.subject,
  html: e.html,
});

/**
 * POST /send and POST /send/batch: authenticate, validate, then hand over to the sender,
 * which reserves credits, delivers and settles (see src/sending/README.md).
 */
export function sendRoutes(deps: { sender: Sender; auth: RequestHandler }): Router {
  const router = Router();
  const reply = (res: Parameters<RequestHandler>[1], outcome: SendOutcome) => {
    res.set(outcome.headers).status(outcome.status).json(outcome.body);
  };

  router.post('/send', deps.auth, async (req, res) => {
    const key = parse(idempotencyKeyHeader, req.get('idempotency-key'), 'Idempotency-Key');
    const body = parse(sendBody, req.body);
    assertSameCustomer(req, body.customer_id);
    reply(res, await deps.sender.send(customerOf(req), toEmail(body), key));
  });

  router.post('/send/batch', deps.auth, async (req, res) => {
    const key = parse(idempotencyKeyHeader, req.get('idempotency-key'), 'Idempotency-Key');
    const body = parse(batchBody, req.body);
    assertSameCustomer(req, body.customer_id);
    reply(res, await deps.sender.sendBatch(customerOf(req), body.emails.map(toEmail), key));
  });

  return router;
}
