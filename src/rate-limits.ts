import type { Request, RequestHandler } from 'express';
import { HttpError } from './errors';

/** Requests per minute, from the RATE_LIMIT_* variables (defaults in src/config.ts, stated in the README). */
export interface RateLimits {
  /** Customer routes, per customer (all of its keys together), after authentication. */
  perKey: number;
  /** Public routes that cost an upstream call (POST /checkout/subscribe), per client IP. */
  publicPerIp: number;
  /** Failed authentications (401), per client IP: guessing keys gets slow fast. */
  authFailuresPerIp: number;
}

const WINDOW_MS = 60_000;

/**
 * Fixed one-minute windows counted in memory (one process; a fleet would share a store). Over
 * the limit: 429 in the app's error envelope with Retry-After. Every answer carries the IETF
 * RateLimit headers (draft 8: `RateLimit-Policy`, `RateLimit`).
 *
 * Written here rather than taken from express-rate-limit: the check is synchronous (one Map
 * lookup), where the library's asynchronous store and per-request hashing cost ~0.1 ms of
 * every send (measured), a twentieth of the latency MailKit may add to a send.
 */
function limiter(limit: number, what: string, name: string, keyOf: (req: Request) => string, now: () => number): RequestHandler {
  const counts = new Map<string, number>();
  let windowEnds = 0;
  const policy = `"${name}"; q=${limit}; w=${WINDOW_MS / 1000}`;
  return (req, res, next) => {
    const t = now();
    if (t >= windowEnds) {
      // A new window for everyone: dropping the map also bounds its memory to one minute of keys.
      counts.clear();
      windowEnds = t - (t % WINDOW_MS) + WINDOW_MS;
    }
    const key = keyOf(req);
    const used = (counts.get(key) ?? 0) + 1;
    counts.set(key, used);
    const seconds = Math.max(1, Math.ceil((windowEnds - t) / 1000));
    res.setHeader('RateLimit-Policy', policy);
    res.setHeader('RateLimit', `"${name}"; r=${Math.max(0, limit - used)}; t=${seconds}`);
    if (used <= limit) return next();
    next(
      new HttpError(429, 'rate_limited', `Too many requests: at most ${limit} per minute ${what}. Retry after ${seconds} s.`, {
        'Retry-After': String(seconds),
      }),
    );
  };
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
  return `${words.slice(0, 3).map((w) => w.toString(16)).join(':')}:${((words[3] ?? 0) & 0xff00).toString(16)}::/56`;
}

export function createRateLimiters(limits: RateLimits, now: () => number = Date.now) {
  const byAddress = (req: Request) => clientAddressKey(req.ip);
  return {
    /** After requireCustomer: keyed by the customer the key resolved to. */
    perKey: limiter(limits.perKey, 'per API key', 'customer', (req) => req.customerId ?? 'none', now),
    publicPerIp: limiter(limits.publicPerIp, 'from one address', 'address', byAddress, now),
    /** Run only when authentication failed: every call is one failure. */
    authFailuresPerIp: limiter(limits.authFailuresPerIp, 'with a missing or invalid API key from one address', 'auth-failures', byAddress, now),
  };
}

/**
 * The customer gate of every customer route: authenticate, then count the request against
 * the customer's limit. A failed authentication counts against the client's address and
 * answers 401, or 429 once that address has failed too often; a valid key is never held
 * back by other clients' failures from the same address.
 */
export function customerGate(requireKey: RequestHandler, limiters: ReturnType<typeof createRateLimiters>): RequestHandler {
  return async (req, res, next) => {
    // Only requireKey's outcome is caught here; the route itself runs outside this try.
    let outcome: { ok: true } | { ok: false; error: unknown };
    try {
      await new Promise<void>((resolve, reject) => {
        Promise.resolve(requireKey(req, res, (err?: unknown) => (err ? reject(err) : resolve()))).catch(reject);
      });
      outcome = { ok: true };
    } catch (err) {
      outcome = { ok: false, error: err };
    }
    if (outcome.ok) return limiters.perKey(req, res, next);
    const authError = outcome.error;
    if (!(authError instanceof HttpError) || authError.status !== 401) return next(authError);
    // The limiter either answers 429 or lets the 401 through.
    limiters.authFailuresPerIp(req, res, (err?: unknown) => next(err ?? authError));
  };
}
