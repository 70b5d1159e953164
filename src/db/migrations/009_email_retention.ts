import type { Kysely } from 'kysely';

/** The email history is kept EMAIL_HISTORY_DAYS (src/db/emails.ts forgetEmailsBefore): found by age. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('emails_created').on('emails').column('created_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('emails_created').execute();
}
