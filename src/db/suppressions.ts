import type { Selectable } from 'kysely';
import type { Database } from './index';
import { prepared } from './prepared';
import type { SuppressionsTable } from './schema';

export type SuppressionRow = Selectable<SuppressionsTable>;

/** Puts addresses on a customer's suppression list; one already there keeps its first reason and time. */
export async function addSuppressions(
  db: Database['db'],
  customerId: string,
  addresses: string[],
  reason: string,
  emailId: string | null,
  at: number,
): Promise<void> {
  const unique = [...new Set(addresses.map((a) => a.toLowerCase()))];
  if (unique.length === 0) return;
  await db
    .insertInto('suppressions')
    .values(unique.map((address) => ({ customerId, address, reason, emailId, createdAt: at })))
    .onConflict((oc) => oc.columns(['customerId', 'address']).doNothing())
    .execute();
}

/** Which of `addresses` (compared lower-cased) are on the customer's list. */
export async function suppressedAmong(database: Database, customerId: string, addresses: string[]): Promise<SuppressionRow[]> {
  const unique = [...new Set(addresses.map((a) => a.toLowerCase()))];
  if (unique.length === 0) return [];
  // Every send asks, most often for one address: that query is compiled once (db/prepared.ts).
  if (unique.length === 1) return oneSuppressed.run(database.db, { customerId, address: unique[0]! });
  return database.db.selectFrom('suppressions').selectAll().where('customerId', '=', customerId).where('address', 'in', unique).execute();
}

const oneSuppressed = prepared((db, v: { customerId: string; address: string }) =>
  db.selectFrom('suppressions').selectAll().where('customerId', '=', v.customerId).where('address', '=', v.address),
);

/** A page of the customer's list, newest first; `after` is the last row of the previous page. */
export async function listSuppressions(
  database: Database,
  customerId: string,
  opts: { limit: number; after?: { createdAt: number; address: string } },
): Promise<SuppressionRow[]> {
  let q = database.db.selectFrom('suppressions').selectAll().where('customerId', '=', customerId);
  const after = opts.after;
  if (after) {
    q = q.where((eb) =>
      eb.or([eb('createdAt', '<', after.createdAt), eb.and([eb('createdAt', '=', after.createdAt), eb('address', '<', after.address)])]),
    );
  }
  return q.orderBy('createdAt', 'desc').orderBy('address', 'desc').limit(opts.limit).execute();
}

/** Takes an address off the customer's list; false when it was not on it. */
export async function removeSuppression(database: Database, customerId: string, address: string): Promise<boolean> {
  const gone = await database.db
    .deleteFrom('suppressions')
    .where('customerId', '=', customerId)
    .where('address', '=', address.toLowerCase())
    .executeTakeFirst();
  return Number(gone.numDeletedRows) > 0;
}

/** The batch items refused when the send under this id first ran; undefined if none were recorded. */
export async function refusedItems(database: Database, sendId: string): Promise<number[] | undefined> {
  const row = await database.db.selectFrom('batchRefusals').select('refused').where('sendId', '=', sendId).executeTakeFirst();
  return row ? (JSON.parse(row.refused) as number[]) : undefined;
}

/** Records (or, for a send starting afresh, replaces) the refused items of a keyed batch; forgets those older than `forgetBefore`. */
export async function rememberRefusedItems(database: Database, sendId: string, refused: number[], at: number, forgetBefore: number): Promise<void> {
  await database.db
    .insertInto('batchRefusals')
    .values({ sendId, refused: JSON.stringify(refused), createdAt: at })
    .onConflict((oc) => oc.column('sendId').doUpdateSet({ refused: JSON.stringify(refused), createdAt: at }))
    .execute();
  await database.db.deleteFrom('batchRefusals').where('createdAt', '<', forgetBefore).execute();
}
