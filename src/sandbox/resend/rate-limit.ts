import type { ResendRateLimitState } from '../contracts';

/** The outcome of counting one request against the team's window. */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Whole seconds until the window resets (at least 1). */
  resetSeconds: number;
}

/** Fixed one-second windows shared by every API key; `take` returns null while the limit is off (0). */
export interface RateLimiter {
  set(perSecond: number): void;
  limit(): number;
  take(): RateLimitDecision | null;
  state(): ResendRateLimitState | null;
}

/**
 * Creates the limiter Resend applies: N requests a second *per team*, "across all API keys
 * associated with your team" (resend.com/docs/api-reference/rate-limit). The sandbox has no
 * accounts, so every key belongs to one team and shares one window. Hand-written (a counter
 * and a timestamp) rather than a library so tests can drive it with their own clock.
 */
export function createRateLimiter(perSecond: number, now: () => number): RateLimiter {
  let limit = Math.max(0, Math.floor(perSecond));
  let window: { start: number; count: number } | null = null;
  let limited = 0;

  const current = (t: number) => {
    if (!window || t - window.start >= 1000 || t < window.start) window = { start: t, count: 0 };
    return window;
  };
  const resetSeconds = (w: { start: number }, t: number) => Math.max(1, Math.ceil((w.start + 1000 - t) / 1000));

  return {
    set(n) {
      limit = Math.max(0, Math.floor(n));
      window = null;
      limited = 0;
    },
    limit: () => limit,
    take() {
      if (limit <= 0) return null;
      const t = now();
      const w = current(t);
      if (w.count >= limit) {
        limited += 1;
        return { allowed: false, limit, remaining: 0, resetSeconds: resetSeconds(w, t) };
      }
      w.count += 1;
      return { allowed: true, limit, remaining: limit - w.count, resetSeconds: resetSeconds(w, t) };
    },
    state() {
      if (limit <= 0) return null;
      const t = now();
      const w = current(t);
      return { limit, remaining: Math.max(0, limit - w.count), resetSeconds: resetSeconds(w, t), limited };
    },
  };
}
