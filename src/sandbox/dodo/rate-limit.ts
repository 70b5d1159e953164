import type { Request, RequestHandler, Response } from 'express';
import type { DodoRateLimit, DodoRateLimitState } from '../contracts';
import type { DodoErrorBody } from './errors';

/**
 * Dodo's default tier ("Tier 0"): 240 requests a minute sustained, bursts of 40 a second
 * (docs.dodopayments.com/api-reference/introduction, "Rate Limits").
 */
export const DODO_TIER_0 = { perMinute: 240, burst: 40 } as const;

/** Keeps a limit's arithmetic within exact integers (see UNIT). */
const MAX_SETTING = 1_000_000;
/** A token, in the bucket's units: refilling at `perMinute` units a millisecond adds one token every 60000 / perMinute ms. */
const UNIT = 60_000;

/** One request counted against the quota. `resetAt` is Unix seconds when the bucket is full again. */
export interface QuotaDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  resetAt: number;
}

/** The business's quota: a token bucket; `take` returns null while there is none. */
export interface DodoRateLimiter {
  set(limit: DodoRateLimit | undefined): void;
  take(): QuotaDecision | null;
  state(): DodoRateLimitState | null;
  /** What a 429 says when the bucket has just run dry (for an injected 429; tier 0 while there is no quota). */
  exhausted(): QuotaDecision;
}

/** Whether a request carries `Authorization: Bearer <non-empty>` (the sandbox accepts any key). */
export function hasBearerToken(req: Request): boolean {
  return /^Bearer\s+\S+/i.test(req.get('authorization') ?? '');
}

/**
 * A token bucket holding `burst` requests, refilled at `perMinute` a minute, full at the start.
 * Dodo documents its limit as two windows (40 a second, 240 a minute) without the algorithm;
 * one bucket is the usual reading of "sustained rate plus burst" (see the README for how the two
 * differ). Hand-written (twenty lines) rather than taken from `limiter` or
 * `rate-limiter-flexible`: those read the system clock and do not say when the bucket is full
 * again, while tests here drive an injected clock and the headers need that time. Integer
 * arithmetic, so "one token every 250 ms" is exact.
 */
export function createDodoRateLimiter(initial: DodoRateLimit | undefined, now: () => number): DodoRateLimiter {
  let settings: { perMinute: number; burst: number } | null = null;
  let level = 0; // in UNITs
  let last = 0;
  let limited = 0;

  const refill = (t: number) => {
    if (!settings || t <= last) return; // a clock that steps back refills nothing
    const capacity = settings.burst * UNIT;
    level = Math.min(capacity, level + Math.min(t - last, capacity) * settings.perMinute);
    last = t;
  };
  const decision = (s: { perMinute: number; burst: number }, allowed: boolean, t: number): QuotaDecision => {
    const msToFull = Math.ceil((s.burst * UNIT - level) / s.perMinute);
    return { allowed, limit: s.burst, remaining: Math.floor(level / UNIT), resetAt: Math.ceil((t + msToFull) / 1000) };
  };

  const limiter: DodoRateLimiter = {
    set(limit) {
      const clamp = (n: number) => Math.min(MAX_SETTING, Math.max(1, Math.floor(n)));
      settings = limit && limit.perMinute > 0 ? { perMinute: clamp(limit.perMinute), burst: clamp(limit.burst ?? DODO_TIER_0.burst) } : null;
      level = settings ? settings.burst * UNIT : 0;
      last = now();
      limited = 0;
    },
    take() {
      if (!settings) return null;
      const t = now();
      refill(t);
      const allowed = level >= UNIT;
      if (allowed) level -= UNIT;
      else limited += 1;
      return decision(settings, allowed, t);
    },
    state() {
      if (!settings) return null;
      const t = now();
      refill(t);
      const d = decision(settings, true, t);
      return { perMinute: settings.perMinute, burst: settings.burst, remaining: d.remaining, resetAt: d.resetAt, limited };
    },
    exhausted() {
      const s = settings ?? DODO_TIER_0;
      return { allowed: false, limit: s.burst, remaining: 0, resetAt: Math.ceil((now() + Math.ceil((s.burst * UNIT) / s.perMinute)) / 1000) };
    },
  };
  limiter.set(initial);
  return limiter;
}

/** The three headers Dodo documents ("Rate Limit Headers"), on every answer while a quota is set. */
export function setQuotaHeaders(res: Response, d: QuotaDecision): void {
  res.set({
    'X-RateLimit-Limit': String(d.limit),
    'X-RateLimit-Remaining': String(d.remaining),
    'X-RateLimit-Reset': String(d.resetAt),
  });
}

/**
 * The quota step, first in the API router (before faults): like a gateway it answers 429 at
 * once, before injected latency, and a refused request never reaches the routes or the
 * request counts. Unauthenticated requests pass uncounted (the auth step answers them 401;
 * Dodo limits those per IP, which the sandbox does not model).
 */
export function createRateLimitStep(limiter: DodoRateLimiter, log?: (entry: Record<string, unknown>) => void): RequestHandler {
  return (req, res, next) => {
    if (!hasBearerToken(req)) return next();
    const d = limiter.take();
    if (!d) return next();
    setQuotaHeaders(res, d);
    if (d.allowed) return next();
    log?.({ msg: 'dodo.rate_limited', limit: d.limit, resetAt: d.resetAt });
    const s = limiter.state()!;
    // No Retry-After: Dodo documents only the X-RateLimit-* headers and "exponential backoff".
    res.status(429).json({
      code: 'TOO_MANY_REQUESTS',
      message: `Rate limit exceeded: ${s.perMinute} requests a minute, bursts of ${s.burst}. Back off and retry.`,
    } satisfies DodoErrorBody);
  };
}

/** Wraps the fault step so an injected 429 carries a real one's headers (and, like it, no Retry-After). */
export function withQuotaHeaders(faults: RequestHandler, limiter: DodoRateLimiter): RequestHandler {
  return (req, res, next) => {
    const json = res.json.bind(res);
    res.json = ((body: unknown) => {
      if (res.statusCode === 429) {
        res.removeHeader('retry-after');
        setQuotaHeaders(res, limiter.exhausted());
      }
      return json(body);
    }) as Response['json'];
    faults(req, res, next);
  };
}
