import { sql, type Kysely } from 'kysely';

/**
 * An email's id in MailKit and its id at Resend become two columns (sends answered once queued carry MailKit's own id).
 * A send answered once it is paid and queued (`Prefer: respond-async`) returns MailKit's own id
 * for each email before Resend has given one; `provider_id` is Resend's, set when Resend accepts
 * the email, and it is what Resend's events name. Every email recorded before this migration
 * was recorded under Resend's id, so both columns hold it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('emails').addColumn('provider_id', 'text').execute();
  await sql`update emails set provider_id = id`.execute(db);
  await db.schema.createIndex('emails_provider_id').unique().on('emails').column('provider_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('emails_provider_id').execute();
  await db.schema.alterTable('emails').dropColumn('provider_id').execute();
}
