import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { CamelCasePlugin, Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration, type MigrationProvider } from 'kysely';
import * as m001 from './migrations/001_initial';
import * as m002 from './migrations/002_rate_limits_and_imports';
import * as m003 from './migrations/003_emails';
import * as m004 from './migrations/004_balance_cache';
import * as m005 from './migrations/005_flights';
import * as m006 from './migrations/006_leases';
import * as m007 from './migrations/007_email_provider_ids';
import * as m008 from './migrations/008_credit_balances';
import * as m009 from './migrations/009_email_retention';
import type { Tables } from './schema';
import { createPrivateFile, makePrivate, makePrivateDir } from '../lib/private-files';

export type { Tables } from './schema';

/** Which engine holds MailKit's state. */
export type Engine = 'sqlite' | 'postgres';

/** MailKit's database: typed SQL through Kysely, the same queries on either engine. */
export interface Database {
  readonly db: Kysely<Tables>;
  readonly engine: Engine;
  /** Where it lives, for logs: a file path, or the PostgreSQL host and database (never the password). */
  readonly where: string;
  /** The driver underneath, for a library that takes one (rate-limiter-flexible); queries go through `db`. */
  readonly native: NativeClient;
  /** One round trip: readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The connection Kysely runs on: the one better-sqlite3 handle, or the pg pool. On SQLite,
 * `prepare` is the handle's own with the prepared statements kept (statementCache below):
 * what Kysely runs on, and what a library given the handle should prepare with.
 */
export type NativeClient =
  { engine: 'sqlite'; sqlite: BetterSqlite3.Database; prepare: (sql: string) => BetterSqlite3.Statement } | { engine: 'postgres'; pool: pg.Pool };

export interface DatabaseOptions {
  /** A `postgres://` URL selects PostgreSQL; otherwise SQLite at `file`. */
  url?: string | null;
  /** SQLite file (`:memory:` for a throwaway database). */
  file?: string;
  /** SQLite: open only a file that exists (an operator's command), never create one. */
  mustExist?: boolean;
  /** PostgreSQL only: use (and create) this schema instead of `public`; tests isolate each stack in one. */
  schema?: string;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}

/**
 * Every migration, in order. Static imports rather than a folder scan, so the same list runs
 * under tsx, vitest and a bundler, and a fresh database and an old one end at the same schema.
 */
const migrations: Record<string, Migration> = {
  '001_initial': m001,
  '002_rate_limits_and_imports': m002,
  '003_emails': m003,
  '004_balance_cache': m004,
  '005_flights': m005,
  '006_leases': m006,
  '007_email_provider_ids': m007,
  '008_credit_balances': m008,
  '009_email_retention': m009,
};
const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Opens the database and brings its schema up to date (Kysely's Migrator: one lock, so several instances may boot at once). */
export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const database = opts.url ? await openPostgres(opts.url, opts) : openSqlite(opts.file ?? ':memory:', opts.mustExist === true);
  try {
    // Kysely looks for its migration tables by name across every schema it can see: without
    // naming the schema, another schema's kysely_migration_lock (public, a parallel test's)
    // passes for this one's and the migration fails. The schema was created just above.
    const migrationTableSchema = opts.url ? opts.schema : undefined;
    // 004 (the balance cache) landed after 005 (flights), from branches built side by side: a
    // database that already ran 005 runs 004 next. They touch different tables.
    const { error, results } = await new Migrator({
      db: database.db,
      provider,
      allowUnorderedMigrations: true,
      ...(migrationTableSchema ? { migrationTableSchema } : {}),
    }).migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName;
      throw new Error(`database migration ${failed ?? ''} failed on ${database.where}: ${(error as Error).message ?? error}`);
    }
  } catch (err) {
    await database.close().catch(() => undefined);
    throw err;
  }
  return database;
}

/**
 * SQLite through better-sqlite3 (12.x: 13.x needs Node 22). WAL lets readers (the key CLI)
 * work beside the server; synchronous=FULL fsyncs the WAL at every commit, so a commit that
 * returned survives a power loss, not only a process crash (docs/database.md's durability table).
 */
function openSqlite(file: string, mustExist: boolean): Database {
  if (file !== ':memory:' && !mustExist) {
    makePrivateDir(dirname(file));
    // SQLite creates the -wal and -shm files with the database file's own mode: a database
    // created 0600 here keeps all three private.
    createPrivateFile(file);
    makePrivate(file, `${file}-wal`, `${file}-shm`, `${file}-journal`);
  }
  const sqlite = new BetterSqlite3(file, { fileMustExist: mustExist });
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  // Another process (a second server on the same file, the key CLI) may hold the write lock briefly.
  sqlite.pragma('busy_timeout = 5000');
  const prepare = statementCache(sqlite);
  const db = new Kysely<Tables>({
    dialect: new SqliteDialect({ database: { prepare, close: () => sqlite.close() } }),
    plugins: [new CamelCasePlugin()],
  });
  return {
    db,
    engine: 'sqlite',
    where: file,
    native: { engine: 'sqlite', sqlite, prepare },
    async ping() {
      sqlite.prepare('select 1').get();
    },
    close: () => db.destroy(),
  };
}

/** Most statements kept prepared; MailKit runs a few dozen shapes (more only for `in (…)` lists of other lengths). */
const STATEMENTS_KEPT = 200;

/**
 * better-sqlite3 compiles a statement on every `prepare`, and Kysely's driver (like
 * rate-limiter-flexible) asks for one per query: parsing and planning the same SQL again made
 * up about a tenth of MailKit's CPU per email on SQLite. Statements are kept here by their SQL
 * text (Kysely passes values as parameters, so a query's text is its shape). One still being
 * iterated (a streamed query) is never handed out twice: that call gets a fresh statement. The
 * oldest shape is dropped past STATEMENTS_KEPT. A PRAGMA is never kept: SQLite applies one that
 * sets a value (and reads one that reads it) when it is prepared, not when it runs.
 */
function statementCache(sqlite: BetterSqlite3.Database): (sql: string) => BetterSqlite3.Statement {
  const kept = new Map<string, BetterSqlite3.Statement>();
  return (sql) => {
    if (/^\s*pragma\b/i.test(sql)) return sqlite.prepare(sql);
    const hit = kept.get(sql);
    if (hit) return hit.busy ? sqlite.prepare(sql) : hit;
    const stmt = sqlite.prepare(sql);
    if (kept.size >= STATEMENTS_KEPT) kept.delete(kept.keys().next().value!);
    kept.set(sql, stmt);
    return stmt;
  };
}

async function openPostgres(url: string, opts: DatabaseOptions): Promise<Database> {
  const parsed = new URL(url);
  const where = `postgres://${parsed.host}${parsed.pathname}${opts.schema ? ` (schema ${opts.schema})` : ''}`;
  const schema = opts.schema;
  if (schema && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid PostgreSQL schema name: ${schema}`);
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    // Times are epoch milliseconds in BIGINT columns: well inside a double, so read them as numbers.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === 20 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  // A client losing its server must not crash the process: the pool listens on its idle
  // clients, and this on the ones checked out (a transaction's, whose connection drops between
  // its queries, emits 'error' with nobody else listening). The query under way fails and is
  // answered 503; the pool drops the broken client and connects anew.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  if (schema) {
    const client = await pool.connect();
    try {
      await client.query(`create schema if not exists ${schema}`);
    } finally {
      client.release();
    }
  }
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }), plugins: [new CamelCasePlugin()] });
  return {
    db,
    engine: 'postgres',
    where,
    native: { engine: 'postgres', pool },
    async ping() {
      await pool.query('select 1');
    },
    close: () => db.destroy(),
  };
}

/**
 * True for failures of the database itself (unreachable, shutting down, out of connections,
 * locked for too long) rather than of a query: the request is answered 503 with Retry-After,
 * having changed nothing it did not commit.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  if (!e || typeof e !== 'object') return false;
  const code = e.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_FULL'].includes(code))
    return true;
  // PostgreSQL classes 08 (connection), 53 (resources), 57P (shutdown, cannot connect now).
  if (/^(08|53|57P)/.test(code)) return true;
  const message = e.message ?? '';
  return (
    /Connection terminated|not queryable|timeout exceeded when trying to connect/i.test(message) ||
    /Cannot use a pool after calling end|driver has already been destroyed/i.test(message)
  );
}
