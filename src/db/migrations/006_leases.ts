import type { Kysely } from 'kysely';

/**
 * Credit leases (replaced by the balance MailKit keeps, migration 008): a block of a customer's credits debited from Dodo ahead, spent by
 * sends locally with no Dodo call, its unspent part credited back when the customer goes idle.
 * A lease is recorded before its debit is asked for, so no crash can lose one. `sends.lease_id`
 * names the lease that paid a send; `sends.funding` says how the current attempt is paid
 * ('lease', or 'debit': one Dodo debit per send, as every send before this migration).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('leases')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('nonce', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('credits', 'integer', (c) => c.notNull())
    .addColumn('spent', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('return_credits', 'integer')
    .addColumn('return_expires_at', 'text')
    .addColumn('emails_ahead', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('in_doubt', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('owner', 'text')
    .addColumn('claimed_until', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('leases_customer_state').on('leases').columns(['customer_id', 'state']).execute();
  await db.schema.createIndex('leases_state_used').on('leases').columns(['state', 'last_used_at']).execute();
  await db.schema.alterTable('sends').addColumn('lease_id', 'text').execute();
  await db.schema
    .alterTable('sends')
    .addColumn('funding', 'text', (c) => c.notNull().defaultTo('debit'))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sends').dropColumn('funding').execute();
  await db.schema.alterTable('sends').dropColumn('lease_id').execute();
  await db.schema.dropTable('leases').execute();
}
