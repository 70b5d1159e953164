import type { Kysely } from 'kysely';

/** The first schema: what the journal store held, as tables. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sends')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('client_key', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('credits', 'integer', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('nonce', 'text', (c) => c.notNull())
    .addColumn('in_doubt', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('refund_credits', 'integer')
    .addColumn('refund_reason', 'text')
    .addColumn('refund_retryable', 'integer')
    .addColumn('result_status', 'integer')
    .addColumn('result_body', 'text')
    .addColumn('owner', 'text')
    .addColumn('claimed_until', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('delivering_since', 'bigint')
    .execute();
  // The reconciler's work list and the pruner's: both read by state and age.
  await db.schema.createIndex('sends_state_updated').on('sends').columns(['state', 'updated_at']).execute();

  await db.schema
    .createTable('send_payloads')
    .addColumn('send_id', 'text', (c) => c.primaryKey())
    .addColumn('body', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('webhook_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('webhook_events_received').on('webhook_events').column('received_at').execute();

  await db.schema
    .createTable('api_key_epochs')
    .addColumn('customer_id', 'text', (c) => c.primaryKey())
    .addColumn('epoch', 'integer', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('secrets')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['secrets', 'api_key_epochs', 'webhook_events', 'send_payloads', 'sends']) await db.schema.dropTable(t).execute();
}
