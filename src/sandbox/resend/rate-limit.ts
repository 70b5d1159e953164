/** The outcome of counting one request against its API key's window. */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Whole seconds until the window resets (at least 1). */
  resetSeconds: number;
}

/** Fixed one-second windows per API key; `take` returns null while the limit is off (0). */
export interface RateLimiter {
  set(perSecond: number): void;
  limit(): number;
  take(apiKey: string): RateLimitDecision | null;
}

/** Creates the per-key limiter Resend applies (its default is 2 requests per second). */
export function createRateLimiter(perSecond: number, now: () => number): RateLimiter {
  let limit = Math.max(0, Math.floor(perSecond));
  const windows = new Map<string, { start: number; count: number }>();

  return {
    set(n) {
      limit = Math.max(0, Math.floor(n));
      windows.clear();
    },
    limit: () => limit,
    take(apiKey) {
      if (limit <= 0) return null;
      const t = now();
      let window = windows.get(apiKey);
      if (!window || t - window.start >= 1000) {
        // Forget stale keys now and then so a benchmark with many keys does not grow the map forever.
        if (windows.size > 1000) for (const [key, w] of windows) if (t - w.start >= 1000) windows.delete(key);
        window = { start: t, count: 0 };
        windows.set(apiKey, window);
      }
      const resetSeconds = Math.max(1, Math.ceil((window.start + 1000 - t) / 1000));
      if (window.count >= limit) return { allowed: false, limit, remaining: 0, resetSeconds };
      window.count += 1;
      return { allowed: true, limit, remaining: limit - window.count, resetSeconds };
    },
  };
}
