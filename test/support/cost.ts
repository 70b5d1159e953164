/**
 * What one request costs the server, seen from outside: how long it takes to answer, and the
 * slowest `/healthz` answer while it runs (the servers under test share this process's event
 * loop, so a request that blocks it delays `/healthz` by as much).
 *
 * These are comparisons, not speed targets: an adversarial input must answer within
 * `MARGIN_MS` of a normal one. The inputs they guard against cost seconds; the margin is many
 * times what a normal request takes here, so a busy machine does not make them flaky.
 */
export const MARGIN_MS = 100;

export interface Cost {
  /** From sending the request to its full answer. */
  ms: number;
  /** The slowest /healthz round trip started while the request ran. */
  healthzMs: number;
}

/** Runs `work` (one request) while `/healthz` at `origin` is polled back to back. */
export async function costOf(origin: string, work: () => Promise<unknown>): Promise<Cost> {
  let done = false;
  let healthzMs = 0;
  const poll = (async () => {
    while (!done) {
      const started = performance.now();
      const res = await fetch(`${origin}/healthz`);
      await res.arrayBuffer();
      healthzMs = Math.max(healthzMs, performance.now() - started);
    }
  })();
  const started = performance.now();
  try {
    await work();
  } finally {
    done = true;
  }
  const ms = performance.now() - started;
  await poll;
  return { ms, healthzMs };
}

/** The slowest of a few runs of `work`: the normal request an adversarial one is compared with. */
export async function normalCost(origin: string, work: () => Promise<unknown>, runs = 3): Promise<Cost> {
  let worst: Cost = { ms: 0, healthzMs: 0 };
  for (let i = 0; i < runs; i++) {
    const c = await costOf(origin, work);
    worst = { ms: Math.max(worst.ms, c.ms), healthzMs: Math.max(worst.healthzMs, c.healthzMs) };
  }
  return worst;
}

/**
 * The cheapest of a few runs of an adversarial `work`. For a load that is noisy by nature (many
 * clients at once on a shared machine): a server that spends seconds on the input spends them
 * on every run, so one run within the margin is enough to tell it does not.
 */
export async function leastCost(origin: string, work: () => Promise<unknown>, runs = 2): Promise<Cost> {
  let best: Cost = { ms: Infinity, healthzMs: Infinity };
  for (let i = 0; i < runs; i++) {
    const c = await costOf(origin, work);
    best = { ms: Math.min(best.ms, c.ms), healthzMs: Math.min(best.healthzMs, c.healthzMs) };
  }
  return best;
}

/** Times a synchronous call, in milliseconds. */
export function timeOf(fn: () => unknown): number {
  const started = performance.now();
  fn();
  return performance.now() - started;
}
