import type { RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit, type Options } from 'express-rate-limit';
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
 * Fixed one-minute windows in memory (one process; a fleet would share a store). Over the
 * limit: 429 in the app's error envelope with Retry-After, plus the IETF RateLimit headers.
 */
function limiter(limit: number, what: string, extra: Partial<Options>): RequestHandler {
  return rateLimit({
    windowMs: WINDOW_MS,
    limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    handler: (req, res, next) => {
      const resetTime = (req as { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
      const seconds = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + WINDOW_MS) - Date.now()) / 1000));
      next(
        new HttpError(429, 'rate_limited', `Too many requests: at most ${limit} per minute ${what}. Retry after ${seconds} s.`, {
          'Retry-After': String(seconds),
        }),
      );
    },
    ...extra,
  });
}

const clientIp = (req: { ip?: string }) => ipKeyGenerator(req.ip ?? 'unknown');

export function createRateLimiters(limits: RateLimits) {
  return {
    /** After requireCustomer: keyed by the customer the key resolved to. */
    perKey: limiter(limits.perKey, 'per API key', {
      keyGenerator: (req) => `cus:${req.customerId ?? 'none'}`,
    }),
    publicPerIp: limiter(limits.publicPerIp, 'from one address', { keyGenerator: clientIp }),
    /** Run only when authentication failed: every call is one failure. */
    authFailuresPerIp: limiter(limits.authFailuresPerIp, 'with a missing or invalid API key from one address', {
      keyGenerator: clientIp,
    }),
  };
}

/**
 * The customer gate of every customer route: authenticate, then count the request against
 * the customer's limit. A failed authentication counts against the client's address and
 * answers 401, or 429 once that address has failed too often; a valid key is never held
 * back by other clients' failures from the same address.
 */
export function customerGate(requireKey: RequestHandler, limiters: ReturnType<typeof createRateLimiters>): RequestHandler {
  return (req, res, next) => {
    try {
      requireKey(req, res, (err?: unknown) => (err ? next(err) : limiters.perKey(req, res, next)));
    } catch (authError) {
      if (!(authError instanceof HttpError) || authError.status !== 401) return next(authError);
      // The limiter either answers 429 through its handler or lets the 401 through.
      void limiters.authFailuresPerIp(req, res, (err?: unknown) => next(err ?? authError));
    }
  };
}
