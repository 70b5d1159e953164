import type { Kysely } from 'kysely';

/**
 * The balance MailKit keeps (replacing credit leases and the balance cache): one row
 * per customer that every send is paid from in its own transaction, a mirror of the customer's
 * Dodo grants, the settlements that debit Dodo in arrears for what was spent, and the daily
 * movements the usage chart is drawn from. The balance and usage caches of Dodo's reads go.
 * The `leases` table stays until the open leases it may hold are settled with Dodo, which the
 * running app does at startup before it drops the table (src/billing/legacy-leases.ts): a
 * migration cannot call Dodo.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('credit_balances')
    .addColumn('customer_id', 'text', (c) => c.primaryKey())
    .addColumn('available', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('held', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('unsettled', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('settling', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('prepaid', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('grants', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('next_check', 'bigint')
    .addColumn('synced_at', 'bigint')
    .addColumn('needs_sync', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('owner', 'text')
    .addColumn('owner_until', 'bigint')
    .addColumn('last_settled_at', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('last_spent_at', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('credit_balances_due').on('credit_balances').columns(['last_settled_at']).execute();

  await db.schema
    .createTable('settlements')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('credits', 'bigint', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('in_doubt', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('partial', 'bigint')
    .addColumn('paid', 'bigint')
    .addColumn('balance_after', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('settlements_customer_state').on('settlements').columns(['customer_id', 'state']).execute();
  await db.schema.createIndex('settlements_state_updated').on('settlements').columns(['state', 'updated_at']).execute();

  await db.schema
    .createTable('credit_days')
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('day', 'text', (c) => c.notNull())
    .addColumn('emails', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('adjusted', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('expired', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('credits', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('credit_days_pk', ['customer_id', 'day'])
    .execute();

  // Dodo's ledger entries already counted in credit_days (a webhook handled twice counts once).
  await db.schema
    .createTable('dodo_entries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('recorded_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.dropTable('usage_cache').execute();
  await db.schema.dropTable('balance_cache').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['dodo_entries', 'credit_days', 'settlements', 'credit_balances']) await db.schema.dropTable(t).execute();
}
