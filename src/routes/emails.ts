import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { customerOf } from '../auth/middleware';
import type { Database } from '../db/index';
import { EMAIL_STATUSES, findEmail, listEmails, type EmailEventRow, type EmailRow, type Recipients } from '../db/emails';
import { HttpError } from '../errors';
import { decodeCursor, encodeCursor, pageQuery } from './pagination';
import { parse } from './validate';

const status = z.enum(EMAIL_STATUSES as [string, ...string[]]);

export const emailsQuery = pageQuery.extend({ status: status.optional() });
/** Email ids are UUIDs (Resend's, or MailKit's own for a send answered once queued); anything else cannot be one of the customer's emails. */
export const emailIdParam = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be an email id as POST /send returned it');

/** One email in the history. `status` only moves forward: queued → sent → delivered, or bounced, complained… */
export const emailSummary = z.object({
  id: z
    .string()
    .describe("The email's id, as POST /send returned it: Resend's, or MailKit's own for a send answered once queued (Prefer: respond-async)"),
  provider_id: z.string().nullable().describe("Resend's id for it, once Resend accepted it (null while queued, or when Resend refused it)"),
  status: status.describe(
    'queued: accepted, no event yet; then the latest of sent, delivery_delayed, delivered, bounced, failed, suppressed, complained',
  ),
  to: z.array(z.string()),
  cc: z.array(z.string()),
  bcc: z.array(z.string()),
  subject: z.string(),
  credits: z.number().int().describe('What it cost: one credit per recipient (to, cc and bcc)'),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
});
export const emailEvent = z.object({
  type: z.string().describe('email.sent, email.delivered, email.bounced, …'),
  at: z.iso.datetime().describe('When Resend says it happened'),
  detail: z.string().nullable().describe('A bounce or failure reason, when the event gives one'),
});
export const emailDetail = emailSummary.extend({ events: z.array(emailEvent) });
export const emailList = z.object({ data: z.array(emailSummary), has_more: z.boolean(), next_cursor: z.string().nullable() });

const iso = (ms: number) => new Date(ms).toISOString();
function summary(e: EmailRow): z.infer<typeof emailSummary> {
  const r = JSON.parse(e.recipients) as Recipients;
  return {
    id: e.id,
    provider_id: e.providerId,
    status: e.status,
    to: r.to,
    cc: r.cc,
    bcc: r.bcc,
    subject: e.subject,
    credits: e.credits,
    created_at: iso(e.createdAt),
    updated_at: iso(e.updatedAt),
  };
}
const event = (e: EmailEventRow): z.infer<typeof emailEvent> => ({ type: e.type, at: iso(e.occurredAt), detail: e.detail });

/** GET /emails (the key's own, newest first, cursor-paginated, by status) and GET /emails/:id. */
export function emailRoutes(deps: { database: Database; auth: RequestHandler }): Router {
  const router = Router();

  router.get('/emails', deps.auth, async (req, res) => {
    const q = parse(emailsQuery, req.query, 'query');
    const after = q.cursor ? decodeCursor(q.cursor) : undefined;
    const rows = await listEmails(deps.database, customerOf(req), {
      limit: q.limit + 1,
      status: q.status as never,
      after: after && { createdAt: after.at, id: after.key },
    });
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    const more = rows.length > q.limit;
    res.set('Cache-Control', 'no-store');
    res.json({ data: page.map(summary), has_more: more, next_cursor: more && last ? encodeCursor(last.createdAt, last.id) : null });
  });

  router.get('/emails/:id', deps.auth, async (req, res) => {
    const id = parse(emailIdParam, req.params.id, 'id').toLowerCase();
    const found = await findEmail(deps.database, customerOf(req), id);
    // Another customer's email is indistinguishable from one that does not exist.
    if (!found) throw new HttpError(404, 'not_found', 'No email with this id among yours.');
    res.set('Cache-Control', 'no-store');
    res.json({ ...summary(found.email), events: found.events.map(event) });
  });

  return router;
}
