import type { Kysely } from 'kysely';

/**
 * Flights: one Resend batch call carrying the emails of several sends. A flight is recorded
 * (its exact body, its key) and its sends tagged with it before it flies, so an outcome lost
 * in flight is retried with exactly the same body under the same key.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('flights')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('flights_created').on('flights').column('created_at').execute();
  await db.schema.alterTable('sends').addColumn('flight_id', 'text').execute();
  await db.schema.alterTable('sends').addColumn('flight_offset', 'integer').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sends').dropColumn('flight_offset').execute();
  await db.schema.alterTable('sends').dropColumn('flight_id').execute();
  await db.schema.dropTable('flights').execute();
}
