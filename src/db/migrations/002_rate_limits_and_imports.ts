import type { Kysely } from 'kysely';

/** Shared rate-limit counters, and the record of a one-time import of an old `.data/` directory. */
export async function up(db: Kysely<any>): Promise<void> {
  // rate-limiter-flexible's own layout (RateLimiterSQLite / RateLimiterPostgres, created here
  // with `tableCreated: true` so the library never issues DDL at run time): one row per limiter
  // key, `expire` in epoch ms.
  await db.schema
    .createTable('rate_limits')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('points', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('expire', 'bigint')
    .execute();
  await db.schema.createIndex('rate_limits_expire').on('rate_limits').column('expire').execute();

  // Written in the same transaction as the imported rows: present means the import committed.
  await db.schema
    .createTable('journal_imports')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('imported_at', 'bigint', (c) => c.notNull())
    .addColumn('summary', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['journal_imports', 'rate_limits']) await db.schema.dropTable(t).execute();
}
