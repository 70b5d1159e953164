import type { Request, RequestHandler, Response } from 'express';
import {
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRes,
  RateLimiterSQLite,
  RLWrapperTimeouts,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import type { Database } from './db';
import { sqlCounterStore } from './db/counters';
import { HttpError } from './errors';

/** Requests per minute, from the RATE_LIMIT_* variables (defaults in src/config.ts, stated in the README). */
export interface RateLimits {
  /** Customer routes, per customer (all of its keys together), after authentication. */
  perKey: number;
  /** Public routes that cost an upstream call (POST /checkout/subscribe), per client IP. */
  publicPerIp: number;
  /** Failed authentications (401), per client IP: guessing keys gets slow fast. */
  authFailuresPerIp: number;
  /**
   * Checkouts a customer creates (POST /checkout/topup), per customer: each is a call to Dodo,
   * whose budget every customer shares. Default 10, not the 1,200 of perKey (Dodo takes 240).
   */
  checkoutsPerCustomer?: number;
}

/** The three limiters, as Express middleware. */
export interface RateLimiters {
  /** After requireCustomer: keyed by the customer the key resolved to. */
  perKey: RequestHandler;
  publicPerIp: RequestHandler;
  /** Run only when authentication failed: every call is one failure. */
  authFailuresPerIp: RequestHandler;
  /** After perKey, on the routes that create a Dodo checkout for the customer. */
  checkoutsPerCustomer: RequestHandler;
}

/** Knobs for tests and operators; production passes none. */
export interface RateLimiterOptions {
  /** The clock that picks the window (tests move it); the store's own expiry runs on Date.now. */
  now?: () => number;
  /** PostgreSQL: a count that takes longer than this is answered 503 (default 2,000 ms). */
  timeoutMs?: number;
}

const WINDOW_MS = 60_000;
/** The table migration 002 creates in rate-limiter-flexible's layout. */
/** Seconds a client is asked to wait when the limiter's database does not answer. */
const UNAVAILABLE_RETRY_SECONDS = 5;

/** What the middleware needs from a rate-limiter-flexible limiter. */
type Counter = Pick<RateLimiterAbstract, 'consume'>;

/**
 * The three limits, counted in the shared database through rate-limiter-flexible, so N
 * instances together allow each limit once, not N times: RateLimiterPostgres on the pg pool,
 * RateLimiterSQLite on the better-sqlite3 handle (several processes on one file share it too).
 * Both count with one atomic upsert … returning per request.
 *
 * Windows are fixed minutes of the clock, the same for every instance and every client (the
 * window's number is part of the key): `t=` in the RateLimit header is the time to the next
 * whole minute, as before the database. Without a database (a test app, one process), the
 * library's memory store counts the same way. Pass the database in production.
 */
export function createRateLimiters(limits: RateLimits, database?: Database, opts: RateLimiterOptions = {}): RateLimiters {
  const now = opts.now ?? Date.now;
  const byAddress = (req: Request) => clientAddressKey(req.ip);
  const counterFor = (limit: number, name: string): Counted =>
    database
      ? databaseCounter(database, limit, name, opts.timeoutMs ?? 2_000)
      : { counter: new RateLimiterMemory({ keyPrefix: name, points: limit, duration: WINDOW_MS / 1000 }), store: null };
  const customer = counterFor(limits.perKey, 'customer');
  const address = counterFor(limits.publicPerIp, 'address');
  const failures = counterFor(limits.authFailuresPerIp, 'auth-failures');
  const checkoutLimit = limits.checkoutsPerCustomer ?? 10;
  const checkouts = counterFor(checkoutLimit, 'checkouts');
  // The three share one table: one of them prunes it for all.
  const prune = customer.store ? pruner(customer.store, now) : () => undefined;
  const shared = { now, prune };
  return {
    perKey: limiter({
      ...shared,
      ...customer,
      limit: limits.perKey,
      name: 'customer',
      what: 'per API key',
      keyOf: (req) => req.customerId ?? 'none',
    }),
    publicPerIp: limiter({ ...shared, ...address, limit: limits.publicPerIp, name: 'address', what: 'from one address', keyOf: byAddress }),
    authFailuresPerIp: limiter({
      ...shared,
      ...failures,
      limit: limits.authFailuresPerIp,
      name: 'auth-failures',
      what: 'with a missing or invalid API key from one address',
      keyOf: byAddress,
    }),
    checkoutsPerCustomer: limiter({
      ...shared,
      ...checkouts,
      limit: checkoutLimit,
      name: 'checkouts',
      what: 'checkouts per customer',
      keyOf: (req) => req.customerId ?? 'none',
    }),
  };
}

/** What the middleware counts with, and the database store underneath it (null in memory). */
interface Counted {
  counter: Counter;
  store: Prunable | null;
}

/**
 * Both SQL stores have `clearExpired(ms)` (a DELETE of rows that expired before it), which the
 * package's type declarations leave out.
 */
interface Prunable {
  clearExpired(expire: number): Promise<void>;
}
const prunable = (store: RateLimiterSQLite | RateLimiterPostgres) => store as unknown as Prunable;

/**
 * One limiter in the database. The table comes from migration 002 (`tableCreated`: the
 * library issues no DDL at run time). `inMemoryBlockOnConsumed`: once a key is over its limit,
 * this instance refuses it from memory until the key's row expires, so a client hammering past
 * its limit costs no further database writes.
 */
function databaseCounter(database: Database, limit: number, name: string, timeoutMs: number): Counted {
  const store = sqlCounterStore(database, { keyPrefix: name, points: limit, durationSeconds: WINDOW_MS / 1000, inMemoryBlockOnConsumed: limit + 1 });
  // better-sqlite3 is synchronous: no timeout could interrupt it (busy_timeout bounds a lock
  // wait). A PostgreSQL server that stops answering must not hold requests for the TCP
  // timeout: 503 instead.
  const counter = database.native.engine === 'sqlite' ? store : new RLWrapperTimeouts({ limiter: store, timeoutMs });
  return { counter, store: prunable(store) };
}

/**
 * Deletes expired counter rows on the first request of each minute, rather than on a timer:
 * nothing to stop on close. A failure costs nothing but a bigger table until the next minute.
 */
function pruner(store: Prunable, now: () => number): () => void {
  let lastWindow = -1;
  return () => {
    const window = Math.floor(now() / WINDOW_MS);
    if (window === lastWindow) return;
    lastWindow = window;
    // The library writes `expire` from Date.now(): compare on that clock, a window late, so an
    // instance whose clock runs ahead never deletes a row another one still counts in.
    Promise.resolve()
      .then(() => store.clearExpired(Date.now() - WINDOW_MS))
      .catch(() => undefined);
  };
}

interface LimiterSpec {
  counter: Counter;
  limit: number;
  /** Names the limit in the RateLimit headers. */
  name: string;
  /** Ends "at most N per minute …" in the 429's message. */
  what: string;
  keyOf: (req: Request) => string;
  now: () => number;
  prune: () => void;
}

/**
 * A fixed one-minute window per key. Over the limit: 429 in the app's error envelope with
 * Retry-After. Every answer carries the IETF RateLimit headers (draft 8: `RateLimit-Policy`,
 * `RateLimit`); a 503 (the count could not be made) carries the policy only.
 */
function limiter({ counter, limit, name, what, keyOf, now, prune }: LimiterSpec): RequestHandler {
  const policy = `"${name}"; q=${limit}; w=${WINDOW_MS / 1000}`;
  return async (req, res, next) => {
    // Appended: a request some route counts against two limits (a checkout) names both.
    res.append('RateLimit-Policy', policy);
    const t = now();
    const window = Math.floor(t / WINDOW_MS);
    const seconds = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - t) / 1000));
    let used: number;
    try {
      used = (await counter.consume(`${window}:${keyOf(req)}`)).consumedPoints;
    } catch (rejection) {
      // The library rejects with a RateLimiterRes when the key is over its limit (counted in
      // the database, or refused from memory once over), and with an Error when it could not count.
      if (!(rejection instanceof RateLimiterRes)) return next(limiterUnavailable(rejection));
      used = Number.POSITIVE_INFINITY;
    }
    prune();
    res.append('RateLimit', `"${name}"; r=${Math.max(0, limit - used)}; t=${seconds}`);
    if (used <= limit) return next();
    next(
      new HttpError(429, 'rate_limited', `Too many requests: at most ${limit} per minute ${what}. Retry after ${seconds} s.`, {
        'Retry-After': String(seconds),
      }),
    );
  };
}

/**
 * The limiter's database failed (unreachable, locked, timed out): 503, never a pass. Letting
 * requests through uncounted would lift every limit exactly when the service is degraded,
 * and the request's own work needs the same database anyway. The cause is kept for the error
 * log (the error middleware logs every 5xx).
 */
function limiterUnavailable(cause: unknown): HttpError {
  const err = new HttpError(503, 'database_unavailable', 'MailKit cannot reach its database right now. Nothing was done; retry shortly.', {
    'Retry-After': String(UNAVAILABLE_RETRY_SECONDS),
  });
  err.cause = cause;
  return err;
}

/**
 * The client's address as a limiter key. IPv6 clients are grouped by /56, the smallest block
 * an ISP commonly hands one subscriber, so rotating through one's own addresses does not
 * multiply the budget.
 */
export function clientAddressKey(ip: string | undefined): string {
  const address = ip ?? 'unknown';
  if (!address.includes(':') || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address)) return address.replace(/^::ffff:/i, '');
  const [head, tail = ''] = address.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  const words = groups.map((g) => parseInt(g || '0', 16));
  // /56: the first three words and the high byte of the fourth.
  return `${words
    .slice(0, 3)
    .map((w) => w.toString(16))
    .join(':')}:${((words[3] ?? 0) & 0xff00).toString(16)}::/56`;
}

/**
 * The customer gate of every customer route: authenticate, then count the request against
 * the customer's limit. A failed authentication counts against the client's address and
 * answers 401, or 429 once that address has failed too often; a valid key is never held
 * back by other clients' failures from the same address. `requireKey` may be synchronous
 * (calls next or throws) or asynchronous (returns a promise: key verification reads the database).
 */
export function customerGate(requireKey: RequestHandler, limiters: RateLimiters): RequestHandler {
  return async (req, res, next) => {
    const authError = await outcomeOf(requireKey, req, res);
    if (authError === null) return limiters.perKey(req, res, next);
    if (!(authError instanceof HttpError) || authError.status !== 401) return next(authError);
    // The limiter either answers 429 (or 503) or lets the 401 through.
    return limiters.authFailuresPerIp(req, res, (err?: unknown) => next(err ?? authError));
  };
}

/**
 * Runs a middleware for its verdict only: null when it called next(), else the error it passed,
 * threw or rejected with. The route itself runs outside, after it.
 */
function outcomeOf(handler: RequestHandler, req: Request, res: Response): Promise<unknown> {
  return new Promise((resolve) => {
    let decided = false;
    const decide = (outcome: unknown) => {
      if (decided) return;
      decided = true;
      resolve(outcome);
    };
    try {
      const returned: unknown = handler(req, res, (err?: unknown) => decide(err ?? null));
      if (returned instanceof Promise) {
        returned.then(
          () => decide(new Error('requireKey finished without calling next()')),
          (err: unknown) => decide(err ?? new Error('requireKey rejected')),
        );
      } else if (!decided) {
        // A synchronous middleware either calls next or throws before it returns.
        decide(new Error('requireKey did not answer'));
      }
    } catch (err) {
      decide(err);
    }
  });
}
