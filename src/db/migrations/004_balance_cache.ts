import type { Kysely } from 'kysely';

/**
 * What MailKit knows of each customer's balance and usage, shared by every instance, so that
 * polling dashboards do not spend Dodo's request budget (240 a minute, all calls together).
 */
export async function up(db: Kysely<any>): Promise<void> {
  // One row per customer: the newest balance Dodo gave, by Dodo's own time of that fact.
  await db.schema
    .createTable('balance_cache')
    .addColumn('customer_id', 'text', (c) => c.primaryKey())
    // A decimal string, exactly as Dodo wrote it.
    .addColumn('balance', 'text', (c) => c.notNull())
    // Dodo's time of the fact, in microseconds since the epoch (Dodo writes microseconds).
    .addColumn('as_of_us', 'bigint', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    // MailKit's clock (epoch ms): when this value was written, and when Dodo last answered
    // MailKit directly with the balance (a read, or one of its own debits or refunds).
    .addColumn('recorded_at', 'bigint', (c) => c.notNull())
    .addColumn('confirmed_at', 'bigint')
    .execute();

  // The dashboard's usage chart, folded, per customer and window length.
  await db.schema
    .createTable('usage_cache')
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('days', 'integer', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('fetched_at', 'bigint', (c) => c.notNull())
    // The balance_cache.as_of_us it was folded beside: a newer balance means newer entries.
    .addColumn('balance_as_of_us', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('usage_cache_pk', ['customer_id', 'days'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['usage_cache', 'balance_cache']) await db.schema.dropTable(t).execute();
}
