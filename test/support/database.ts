import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, it } from 'vitest';
import { openDatabase, type Database, type Engine } from '../../src/db';

/** PostgreSQL for the suites: set by .ci/run; unset, the PostgreSQL half of each suite is skipped (and says so). */
export const postgresUrl = process.env.TEST_DATABASE_URL || null;

/** The notice printed once per run (test/support/global-setup.ts) and named by each skipped test. */
export const POSTGRES_SKIPPED = 'PostgreSQL suite skipped: set TEST_DATABASE_URL=postgres://user:password@host:5432/database to run it';

/** One engine a suite runs on. */
export interface EngineUnderTest {
  engine: Engine;
  /** A fresh, empty, migrated database of its own (a temp SQLite file, or a new PostgreSQL schema); removed after the test. */
  open(): Promise<Database>;
  /** A second, independent connection to the same database as `database` (another instance of MailKit). */
  openAnother(database: Database): Promise<Database>;
}

/** The engines available here: SQLite always, PostgreSQL when TEST_DATABASE_URL is set. */
export const engines: Engine[] = postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];

/**
 * Runs `fn` in a describe block per engine (`name (sqlite)`, `name (postgres)`). Without
 * TEST_DATABASE_URL the PostgreSQL block holds one skipped test named POSTGRES_SKIPPED, so the
 * report shows what did not run.
 */
export function forEachEngine(name: string, fn: (under: EngineUnderTest) => void): void {
  for (const engine of ['sqlite', 'postgres'] as const) {
    describe(`${name} (${engine})`, () => {
      if (engine === 'postgres' && !postgresUrl) {
        it.skip(POSTGRES_SKIPPED, () => undefined);
        return;
      }
      const under = engineUnderTest(engine);
      afterEach(() => under.cleanUp());
      fn(under);
    });
  }
}

/** Where a database opened here lives, so another connection can open the same one. */
type Location = { file: string } | { schema: string };

function engineUnderTest(engine: Engine): EngineUnderTest & { cleanUp(): Promise<void> } {
  const opened: Database[] = [];
  const locations = new Map<Database, Location>();
  const dirs: string[] = [];
  const schemas: string[] = [];

  const connect = async (location: Location): Promise<Database> => {
    const database =
      'file' in location
        ? await openDatabase({ file: location.file })
        : await openTestDatabase({ url: postgresUrl, schema: location.schema, poolSize: 4 });
    opened.push(database);
    locations.set(database, location);
    return database;
  };

  return {
    engine,
    async open() {
      if (engine === 'sqlite') {
        const dir = mkdtempSync(join(tmpdir(), 'mailkit-db-'));
        dirs.push(dir);
        return connect({ file: join(dir, 'mailkit.sqlite') });
      }
      // Unique per process and call: test files run in parallel on one server.
      const schema = `test_${process.pid}_${randomBytes(6).toString('hex')}`;
      schemas.push(schema);
      return connect({ schema });
    },
    openAnother(database) {
      const location = locations.get(database);
      if (!location) throw new Error('openAnother: that database was not opened by this helper');
      return connect(location);
    },
    async cleanUp() {
      // Already closed by the test is fine.
      await Promise.all(opened.splice(0).map((d) => d.close().catch(() => undefined)));
      locations.clear();
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
      if (schemas.length > 0) await dropSchemas(schemas.splice(0));
    },
  };
}

/** Drops test schemas (and everything in them). */
export async function dropSchemas(schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl! });
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`drop schema if exists ${schema} cascade`);
  } finally {
    await client.end();
  }
}

/**
 * openDatabase, tried again when Kysely's migrator trips over another test's schema being
 * dropped at that moment (it lists tables across every schema it can see): a hazard of
 * parallel test files sharing one server, never of a deployment.
 */
export async function openTestDatabase(opts: Parameters<typeof openDatabase>[0]): Promise<Database> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await openDatabase(opts);
    } catch (err) {
      if (attempt >= 4 || !/schema "[^"]+" does not exist|relation "[^"]+" does not exist/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
    }
  }
}
