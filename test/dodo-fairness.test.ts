import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, startTestStack, subscribe } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * One customer's Dodo calls must not slow every other customer's: each gets a fair share of
 * MailKit's Dodo budget (Dodo's tier 0 here: 240 a minute, 40 at once), and creating checkouts
 * has a per-customer limit that fits in it. What is asserted is what customers see: statuses,
 * Retry-After, and a bound on the other customer's latency far above the target (under 1 s)
 * and far below what one customer's load used to cost the others (12.6 s).
 */
const GENEROUS_MS = 3_000;

const p99 = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.ceil(ms.length * 0.99) - 1]!;

/** Runs `loops` loops of `call` until `stop()`; the answers' statuses and Retry-After headers. */
function flood(loops: number, call: () => Promise<request.Response>) {
  let stopped = false;
  const answers: { status: number; retryAfter?: string; code?: string }[] = [];
  const done = Promise.all(
    Array.from({ length: loops }, async () => {
      while (!stopped) {
        const r = await call();
        answers.push({ status: r.status, retryAfter: r.headers['retry-after'], code: r.body?.error?.code });
      }
    }),
  );
  return {
    answers,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

/** Times `n` calls made one after another. */
async function timed(n: number, call: () => Promise<request.Response>): Promise<{ ms: number[]; statuses: number[] }> {
  const ms: number[] = [];
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const r = await call();
    ms.push(performance.now() - started);
    statuses.push(r.status);
  }
  return { ms, statuses };
}

describe("one customer's Dodo calls and the others'", () => {
  let stack: TestStack;
  let heavy: { key: string; customerId: string };

  beforeAll(async () => {
    stack = await startTestStack({ SANDBOX_DODO_RATE_LIMIT: '240', SANDBOX_DODO_BURST: '40' });
    heavy = await subscribe(stack, 'heavy@example.com', 'Heavy');
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("40 concurrent top-up loops from one customer: it gets 429s with Retry-After, and another customer's sends stay fast", async () => {
    const other = await subscribe(stack, 'other@example.com', 'Other');
    const loops = flood(40, () => request(stack.url).post('/checkout/topup').set(bearer(heavy.key)).send({}));
    // The line at Dodo's budget has formed (its burst allowance went in the first second).
    await new Promise((r) => setTimeout(r, 1_500));
    const sends = await timed(20, () =>
      request(stack.url).post('/send').set(bearer(other.key)).send({ to: 'delivered@resend.dev', subject: 'Hi', text: 'hi' }),
    );
    await loops.stop();

    expect(sends.statuses.every((s) => s === 200)).toBe(true);
    expect(p99(sends.ms)).toBeLessThan(GENEROUS_MS);
    const refused = loops.answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    for (const a of refused) expect(Number(a.retryAfter)).toBeGreaterThan(0);
    // Refused by the per-customer checkout limit, before any Dodo call: not by a spent budget.
    expect(refused.some((a) => a.code === 'rate_limited')).toBe(true);
    expect(loops.answers.filter((a) => a.status === 200).length).toBeLessThanOrEqual(10);
    expect(loops.answers.every((a) => a.status === 200 || a.status === 429)).toBe(true);
  }, 60_000);

  it(
    "a customer keeping Dodo's budget busy (40 concurrent GET /account loops) gets its share of it; " +
      "another customer's Dodo calls are not stuck behind its line",
    async () => {
      // A customer of its own: the first one spent its minute's requests above.
      const busy = await subscribe(stack, 'busy@example.com', 'Busy');
      const other = await subscribe(stack, 'other2@example.com', 'Other 2');
      const loops = flood(40, () => request(stack.url).get('/account').set(bearer(busy.key)));
      await new Promise((r) => setTimeout(r, 1_500));
      const reads = await timed(8, () => request(stack.url).get('/account').set(bearer(other.key)));
      await loops.stop();

      expect(reads.statuses.every((s) => s === 200)).toBe(true);
      expect(p99(reads.ms)).toBeLessThan(GENEROUS_MS);
      // The busy customer gets its share meanwhile (at least a turn for each of the other's),
      // and once its calls have waited their longest for a turn, a 429 with Retry-After.
      expect(loops.answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(reads.ms.length);
      for (const a of loops.answers.filter((x) => x.status !== 200))
        expect([a.status, a.code, Number(a.retryAfter) > 0]).toEqual([429, 'billing_rate_limited', true]);
    },
    60_000,
  );
});
