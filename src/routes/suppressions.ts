import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { customerOf } from '../auth/middleware';
import type { Database } from '../db/index';
import { listSuppressions, removeSuppression, type SuppressionRow } from '../db/suppressions';
import { HttpError } from '../errors';
import { decodeCursor, encodeCursor, pageQuery } from './pagination';
import { emailAddress, parse } from './validate';

/** One entry of the list, as the API shows it. */
export const suppressionObject = z.object({
  email: z.email(),
  reason: z
    .enum(['bounced', 'complained', 'suppressed'])
    .describe('bounced: a permanent bounce; complained: a spam complaint; suppressed: Resend refused it (on its own suppression list)'),
  email_id: z.string().nullable().describe('The email whose event put the address on the list'),
  created_at: z.iso.datetime(),
});
export const suppressionList = z.object({ data: z.array(suppressionObject), has_more: z.boolean(), next_cursor: z.string().nullable() });
export const suppressionsQuery = pageQuery;
export const suppressionParam = emailAddress;
export const suppressionDeleted = z.object({ email: z.email(), deleted: z.literal(true) });

const toApi = (r: SuppressionRow): z.infer<typeof suppressionObject> => ({
  email: r.address,
  reason: r.reason as z.infer<typeof suppressionObject>['reason'],
  email_id: r.emailId,
  created_at: new Date(r.createdAt).toISOString(),
});

/** GET /suppressions and DELETE /suppressions/:email: the key's own suppression list. */
export function suppressionRoutes(deps: { database: Database; auth: RequestHandler }): Router {
  const router = Router();

  router.get('/suppressions', deps.auth, async (req, res) => {
    const q = parse(suppressionsQuery, req.query, 'query');
    const after = q.cursor ? decodeCursor(q.cursor) : undefined;
    const rows = await listSuppressions(deps.database, customerOf(req), {
      limit: q.limit + 1,
      after: after && { createdAt: after.at, address: after.key },
    });
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    res.set('Cache-Control', 'no-store');
    res.json({
      data: page.map(toApi),
      has_more: rows.length > q.limit,
      next_cursor: rows.length > q.limit && last ? encodeCursor(last.createdAt, last.address) : null,
    });
  });

  router.delete('/suppressions/:email', deps.auth, async (req, res) => {
    const address = parse(suppressionParam, req.params.email, 'email');
    if (!(await removeSuppression(deps.database, customerOf(req), address))) {
      throw new HttpError(404, 'not_found', `${address.toLowerCase()} is not on your suppression list.`);
    }
    res.json({ email: address.toLowerCase(), deleted: true });
  });

  return router;
}
