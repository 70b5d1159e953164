import type { Kysely } from 'kysely';

/** Email history, Resend's delivery events, and each customer's suppression list. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('emails')
    .addColumn('id', 'text', (c) => c.primaryKey()) // Resend's email id
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('send_id', 'text', (c) => c.notNull())
    .addColumn('recipients', 'text', (c) => c.notNull()) // JSON { to, cc, bcc }
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('credits', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('status_rank', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  // History: a customer's emails newest first (the id breaks ties within a batch), optionally by status.
  await db.schema.createIndex('emails_customer_created').on('emails').columns(['customer_id', 'created_at', 'id']).execute();
  await db.schema.createIndex('emails_customer_status_created').on('emails').columns(['customer_id', 'status', 'created_at', 'id']).execute();

  await db.schema
    .createTable('email_events')
    .addColumn('id', 'text', (c) => c.primaryKey()) // svix-id: the dedupe
    .addColumn('email_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('occurred_at', 'bigint', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .addColumn('detail', 'text')
    .addColumn('suppress', 'text') // JSON array of addresses this event puts on the suppression list
    .execute();
  await db.schema.createIndex('email_events_email').on('email_events').columns(['email_id', 'occurred_at']).execute();

  await db.schema
    .createTable('suppressions')
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull()) // lower-cased bare address
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('email_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('suppressions_pk', ['customer_id', 'address'])
    .execute();
  await db.schema.createIndex('suppressions_customer_created').on('suppressions').columns(['customer_id', 'created_at', 'address']).execute();

  // Which items of a keyed batch were refused as suppressed when it was first sent: a retry
  // with the same key refuses the same ones, so its body (and answer) stays the first one's.
  await db.schema
    .createTable('batch_refusals')
    .addColumn('send_id', 'text', (c) => c.primaryKey())
    .addColumn('refused', 'text', (c) => c.notNull()) // JSON array of item indexes
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('batch_refusals_created').on('batch_refusals').column('created_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['batch_refusals', 'suppressions', 'email_events', 'emails']) await db.schema.dropTable(t).execute();
}
