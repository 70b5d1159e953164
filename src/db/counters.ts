import type BetterSqlite3 from 'better-sqlite3';
import { RateLimiterPostgres, RateLimiterSQLite } from 'rate-limiter-flexible';
import type { Database } from './index';

/** rate-limiter-flexible's table (migration 002): counts of MailKit's own limits and of the vendors' budgets. */
export const COUNTER_TABLE = 'rate_limits';

/**
 * A rate-limiter-flexible store in MailKit's database (the `rate_limits` table of migration
 * 002; the library issues no DDL at run time), shared by every instance on that database:
 * RateLimiterSQLite on the better-sqlite3 handle, RateLimiterPostgres on the pg pool.
 */
export function sqlCounterStore(
  database: Database,
  opts: { keyPrefix: string; points: number; durationSeconds: number; inMemoryBlockOnConsumed?: number },
): RateLimiterSQLite | RateLimiterPostgres {
  const common = {
    keyPrefix: opts.keyPrefix,
    points: opts.points,
    duration: opts.durationSeconds,
    tableName: COUNTER_TABLE,
    tableCreated: true,
    // Dead rows are deleted by rate-limits.ts's pruner: the library's timer would outlive the
    // database on close, and on SQLite its failure would be an unhandled rejection.
    clearExpiredByTimeout: false,
    ...(opts.inMemoryBlockOnConsumed ? { inMemoryBlockOnConsumed: opts.inMemoryBlockOnConsumed } : {}),
  };
  const native = database.native;
  if (native.engine === 'sqlite')
    return new RateLimiterSQLite({ ...common, storeClient: countingConnection(native.sqlite, native.prepare), storeType: 'better-sqlite3' });
  return new RateLimiterPostgres({ ...common, storeClient: native.pool, storeType: 'pool' });
}

/**
 * The better-sqlite3 handle as RateLimiterSQLite uses it (`prepare`, `transaction`), with each
 * count committed under synchronous=NORMAL instead of the connection's FULL: an fsync per
 * request would cost about 4 ms of blocked event loop each (measured on this project's VM,
 * against 0.16 ms), and a count lost to a power cut is harmless. In WAL mode NORMAL still
 * survives a process crash. The connection's own setting is put back at once; inside a
 * transaction already open on the connection (SQLite refuses the pragma there) the count joins
 * that transaction and is committed with it.
 */
function countingConnection(sqlite: BetterSqlite3.Database, prepare: (sql: string) => BetterSqlite3.Statement) {
  // The connection's own level, read once: nothing but this sets it after the database opens.
  // (A PRAGMA cannot be kept prepared, so each one is compiled anew: one fewer per request.)
  let connectionLevel: number | undefined;
  return {
    prepare,
    transaction<A extends unknown[], R>(fn: (...args: A) => R) {
      const run = sqlite.transaction(fn);
      return (...args: A): R => {
        if (sqlite.inTransaction) return run(...args);
        const level = (connectionLevel ??= sqlite.pragma('synchronous', { simple: true }) as number);
        sqlite.pragma('synchronous = NORMAL');
        try {
          return run(...args);
        } finally {
          sqlite.pragma(`synchronous = ${level}`);
        }
      };
    },
  };
}
