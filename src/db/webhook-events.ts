import type { Database } from './index';

/** True when this webhook id was processed already. */
export async function webhookSeen(database: Database, id: string): Promise<boolean> {
  const row = await database.db.selectFrom('webhookEvents').select('id').where('id', '=', id).executeTakeFirst();
  return row !== undefined;
}

/**
 * Records a processed webhook id: a unique insert. False when another request (on any
 * instance) recorded it first: that one ran the same (idempotent) handlers.
 */
export async function recordWebhook(database: Database, id: string, at: number): Promise<boolean> {
  const result = await database.db
    .insertInto('webhookEvents')
    .values({ id, receivedAt: at })
    .onConflict((oc) => oc.column('id').doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** Forgets ids processed before `cutoff` (one indexed delete; Dodo stops redelivering long before). */
export async function forgetWebhooksBefore(database: Database, cutoff: number): Promise<number> {
  const result = await database.db.deleteFrom('webhookEvents').where('receivedAt', '<', cutoff).executeTakeFirst();
  return Number(result.numDeletedRows);
}
