import type { Database } from './index';

/**
 * The stored secret of that name, created the first time. Insert-or-ignore then read: when
 * several instances boot at once on one database, all of them end with the first one's value.
 */
export async function generatedSecret(database: Database, name: string, make: () => string): Promise<string> {
  const { db } = database;
  await db
    .insertInto('secrets')
    .values({ name, value: make() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('secrets').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return row.value;
}
