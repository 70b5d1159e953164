import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { createBudget, QuotaExhausted } from '../src/quotas';
import { dodoBurstPool } from '../src/stack';
import { forEachEngine } from './support/database';
import { balanceOf, bearer, customerWith, outboxTo, startTestStack } from './support/stack';

forEachEngine('a vendor budget shared by two instances', (under) => {
  it('lets the quota through once across both, and refuses the rest promptly', async () => {
    const database = await under.open();
    const other = await under.openAnother(database);
    const windows = [{ points: 1, seconds: 60 }];
    const a = createBudget({ name: 'Test', database, windows, maxWaitMs: 200 });
    const b = createBudget({ name: 'Test', database: other, windows, maxWaitMs: 200 });
    const started = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).take()));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refusals = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refusals).toHaveLength(9);
    for (const r of refusals) expect(r.reason).toBeInstanceOf(QuotaExhausted);
    // Refused at once: the next token is a minute away, far past the 200 ms a caller may wait.
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("a vendor's 429 seen by one instance holds back the other", async () => {
    const database = await under.open();
    const other = await under.openAnother(database);
    const windows = [{ points: 100, seconds: 1 }];
    const a = createBudget({ name: 'Held', database, windows, maxWaitMs: 100 });
    const b = createBudget({ name: 'Held', database: other, windows, maxWaitMs: 100 });
    await b.take();
    await a.penalize(30);
    await expect(b.take()).rejects.toBeInstanceOf(QuotaExhausted);
  });
});

forEachEngine('a vendor budget with a burst pool (Dodo\'s bucket)', (under) => {
  it('lends the pool\'s turns at once beyond the spaced turn, across both instances, then refuses', async () => {
    const database = await under.open();
    const other = await under.openAnother(database);
    const opts = { name: 'Bursty', windows: [{ points: 6, seconds: 60 }], burst: { points: 3, seconds: 60 }, maxWaitMs: 200 };
    const a = createBudget({ ...opts, database });
    const b = createBudget({ ...opts, database: other });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).take()));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(4); // 1 spaced + 3 lent
  });

  it('a vendor\'s 429 holds the pool back too', async () => {
    const database = await under.open();
    const budget = createBudget({ name: 'BurstyHeld', database, windows: [{ points: 6, seconds: 60 }], burst: { points: 3, seconds: 60 }, maxWaitMs: 100 });
    await budget.penalize(30);
    await expect(budget.take()).rejects.toBeInstanceOf(QuotaExhausted);
  });
});

describe('Dodo\'s burst pool', () => {
  it('lends all but 4 of the bucket, and again only once the bucket has gained them back over the spaced turns', () => {
    // Tier 0: 4 a second; spaced turns take 4/1.1, so the bucket gains 0.36 a second.
    expect(dodoBurstPool(240, 40)).toEqual({ points: 36, seconds: 99 });
    expect(dodoBurstPool(240, 4)).toBeUndefined();
  });
});

describe('a priority caller (MailKit\'s own emails)', () => {
  it('gets the next turn while ordinary callers keep the budget busy, and they step back meanwhile', async () => {
    // One turn every 110 ms; five ordinary callers take every turn as it comes.
    const budget = createBudget({ name: 'Busy', windows: [{ points: 10, seconds: 1 }], maxWaitMs: 2_000 });
    let stop = false;
    const ordinaryTurns: number[] = [];
    const loops = Array.from({ length: 5 }, async () => {
      while (!stop) {
        await budget.take().then(() => ordinaryTurns.push(Date.now()), () => undefined);
      }
    });
    await new Promise((r) => setTimeout(r, 400));
    const asked = Date.now();
    await budget.take({ priority: true });
    const granted = Date.now();
    stop = true;
    await Promise.all(loops);
    // At most the turn already being taken when it asked went to someone else.
    expect(ordinaryTurns.filter((t) => t > asked && t < granted).length).toBeLessThanOrEqual(1);
    expect(granted - asked).toBeLessThan(400);
  });
});

describe('sending within the vendors\' quotas', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>> | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('spends Resend\'s quota in spaced turns: beyond the budget a send is refused at once with Retry-After, nothing sent or charged', async () => {
    // The sandbox enforces Resend's default 2 a second; MailKit's budget follows it.
    stack = await startTestStack({ SANDBOX_RESEND_RATE_LIMIT: '2' }, { mailer: { timeoutMs: 5_000, maxBackoffMs: 200 } });
    const c = await customerWith(stack, 50);
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => request(stack!.url).post('/send').set(bearer(c.key)).send({ to: 'delivered@resend.dev', subject: `q${i}`, html: '<p>q</p>' })),
    );
    const ok = answers.filter((r) => r.status === 200);
    const limited = answers.filter((r) => r.status === 429);
    expect(ok.length + limited.length).toBe(12);
    expect(ok.length).toBeGreaterThanOrEqual(2);
    for (const r of limited) {
      expect(r.body.error.code).toBe('email_rate_limited');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    // Spaced turns keep Resend's own limiter quiet (at most one call landing early under
    // scheduling jitter, which MailKit would retry).
    expect(stack.sandbox.resend.rateLimit()?.limited).toBeLessThanOrEqual(1);
    expect(outboxTo(stack, 'delivered@resend.dev')).toHaveLength(ok.length);
    expect(await balanceOf(stack, c.key)).toBe(50 - ok.length);
  });
});

describe("a budget's waiting callers", () => {
  it('take their turns in the order they came, not at random', async () => {
    const budget = createBudget({ name: 'Line', windows: [{ points: 20, seconds: 1 }], maxWaitMs: 5_000 });
    await budget.take(); // the first turn is spent: everyone below waits
    const order: number[] = [];
    await Promise.all(Array.from({ length: 8 }, (_, i) => budget.take().then(() => order.push(i))));
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('one that gives up at its deadline leaves the line going for those behind it', async () => {
    const budget = createBudget({ name: 'Line2', windows: [{ points: 10, seconds: 1 }], maxWaitMs: 150 });
    await budget.take();
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => budget.take()));
    // One turn every 110 ms: the first in line gets it within 150 ms, the others are refused.
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected']);
    await new Promise((r) => setTimeout(r, 120));
    await budget.take(); // and the line is not stuck
  });
});
