import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldDays, LOW_BALANCE_THRESHOLD } from '../../src/routes/usage';
import { bearer, settle, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const DAY = 86_400_000;
const today = () => new Date().toISOString().slice(0, 10);

const send = (stack: TestStack, key: string, subject = 'Usage test') =>
  request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject, html: '<p>hi</p>' }).expect(200);

describe('GET /credits/usage', () => {
  let stack: TestStack;
  let alice: { key: string; customerId: string };
  let bob: { key: string; customerId: string };

  beforeAll(async () => {
    stack = await startTestStack();
    alice = await subscribe(stack, 'alice-usage@example.com', 'Alice');
    bob = await subscribe(stack, 'bob-usage@example.com', 'Bob');
    for (let i = 0; i < 3; i++) await send(stack, alice.key, `Email ${i}`);
    await settle(stack);
  });
  afterAll(async () => {
    await stack?.close();
  });

  describe('after subscribing and sending 3 emails', () => {
    it('shows today\'s 3 emails, the 5,000 grant and a balance of "4997"', async () => {
      const res = await request(stack.url).get('/credits/usage').set(bearer(alice.key)).expect(200);
      expect(res.headers['cache-control']).toBe('no-store');
      // A string, as GET /credits gives it.
      expect(res.body.balance).toBe('4997');
      expect(res.body.low_balance_threshold).toBe(1000);
      expect(res.body.truncated).toBe(false);
      expect(res.body.days).toHaveLength(30);
      const last = res.body.days.at(-1);
      // Today's emails count those not settled with Dodo yet.
      expect(last).toEqual({ date: today(), emails: 3, adjusted: 0, expired: 0, credits: 5000, balance: '4997' });
      // Before the subscription the customer had no balance at all: none is drawn.
      expect(res.body.days[0]).toEqual({
        date: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/),
        emails: 0,
        adjusted: 0,
        expired: 0,
        credits: 0,
        balance: null,
      });
    });

    it('answers ?days=7 with 7 consecutive days ending today', async () => {
      const res = await request(stack.url).get('/credits/usage?days=7').set(bearer(alice.key)).expect(200);
      const dates: string[] = res.body.days.map((d: { date: string }) => d.date);
      expect(dates).toHaveLength(7);
      expect(dates.at(-1)).toBe(today());
      for (let i = 1; i < dates.length; i++) expect(Date.parse(dates[i]!) - Date.parse(dates[i - 1]!)).toBe(DAY);
    });
  });

  describe('with another customer’s key', () => {
    it('sees only that customer’s ledger', async () => {
      const res = await request(stack.url).get('/credits/usage').set(bearer(bob.key)).expect(200);
      expect(res.body.balance).toBe('5000');
      expect(res.body.days.at(-1)).toEqual({ date: today(), emails: 0, adjusted: 0, expired: 0, credits: 5000, balance: '5000' });
    });
  });

  describe('without a key', () => {
    it('answers 401', async () => {
      const res = await request(stack.url).get('/credits/usage').expect(401);
      expect(res.body.error.code).toBe('missing_api_key');
    });
  });

  describe('with a bad query', () => {
    it.each([['days=0'], ['days=91'], ['days=abc'], ['days=1.5'], ['days='], ['days=1&days=2']])('?%s answers 400 naming days', async (q) => {
      const res = await request(stack.url).get(`/credits/usage?${q}`).set(bearer(alice.key)).expect(400);
      expect(res.body.error.code).toBe('invalid_request');
      expect(res.body.error.message).toMatch(/^days: /);
    });

    it('an unknown parameter answers 400 naming it', async () => {
      const res = await request(stack.url).get('/credits/usage?day=3').set(bearer(alice.key)).expect(400);
      expect(res.body.error.message).toMatch(/day/);
    });
  });

  describe('with many changes made in Dodo', () => {
    it('120 adjustments and a send all count, each in its own column, with no Dodo read for the chart', async () => {
      const carol = await subscribe(stack, 'carol-usage@example.com', 'Carol');
      for (let i = 0; i < 120; i++) await stack.sandbox.dodo.adjustBalance(carol.customerId, stack.catalog.creditEntitlementId, -1, `adj ${i}`);
      await send(stack, carol.key);
      await settle(stack);
      const res = await request(stack.url).get('/credits/usage').set(bearer(carol.key)).expect(200);
      expect(res.body.days.at(-1)).toEqual({ date: today(), emails: 1, adjusted: 120, expired: 0, credits: 5000, balance: '4879' });
      expect(res.body.days[0].balance).toBeNull();
    });
  });

  describe('across days (the sandbox clock moved forward)', () => {
    it('shows each day’s emails and carries the balance over quiet days', async () => {
      const dave = await subscribe(stack, 'dave-usage@example.com', 'Dave');
      await send(stack, dave.key);
      await send(stack, dave.key);
      // Emails are charted on the day Dodo was debited for them (its clock): settled before the jump.
      await stack.credits.settleNow();
      await stack.sandbox.dodo.advanceClock(2 * DAY);
      await send(stack, dave.key);
      await stack.credits.settleNow();
      await settle(stack);
      const res = await request(stack.url).get('/credits/usage?days=5').set(bearer(dave.key)).expect(200);
      const days = res.body.days as Array<{ emails: number; balance: string }>;
      // The window ends on the sandbox's "today", two days ahead of this machine's.
      expect(days.map((d) => d.emails)).toEqual([0, 0, 2, 0, 1]);
      expect(days.map((d) => d.balance)).toEqual([null, null, '4998', '4998', '4997']);
      expect(res.body.balance).toBe('4997');
    });
  });
});

describe('GET /credits/usage when credits expire', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('counts expired credits apart from what the customer spent', async () => {
    const erin = await subscribe(stack, 'erin-usage@example.com', 'Erin');
    await send(stack, erin.key);
    await send(stack, erin.key);
    await stack.credits.settleNow(); // (every spend in Dodo's grants before the clock moves)
    await stack.sandbox.dodo.adjustBalance(erin.customerId, stack.catalog.creditEntitlementId, -100, 'by hand');
    // Past the grant's 30-day expiry: what is left of the first cycle's 5,000 lapses.
    await stack.sandbox.dodo.advanceClock(31 * DAY);
    await stack.sandbox.dodo.customers();
    await settle(stack);
    const res = await request(stack.url).get('/credits/usage?days=40').set(bearer(erin.key)).expect(200);
    const days = res.body.days as Array<{ emails: number; adjusted: number; expired: number }>;
    const total = (k: 'emails' | 'adjusted' | 'expired') => days.reduce((sum, d) => sum + d[k], 0);
    expect(total('emails')).toBe(2);
    expect(total('adjusted')).toBe(100);
    expect(total('expired')).toBe(4898);
    // The expiry sits on a day with no sends.
    expect(days.find((d) => d.expired > 0)).toMatchObject({ emails: 0, adjusted: 0, expired: 4898 });
  });
});

describe('foldDays', () => {
  const now = Date.parse('2026-03-10T12:00:00Z');
  const row = (day: string, r: Partial<{ emails: number; adjusted: number; expired: number; credits: number }>) => ({
    day,
    emails: 0,
    adjusted: 0,
    expired: 0,
    credits: 0,
    ...r,
  });

  it('walks each day’s closing balance back from the live one; before the first movement, none', () => {
    const days = foldDays([row('2026-03-08', { credits: 1000 }), row('2026-03-09', { emails: 300 })], {
      days: 4,
      now,
      first: '2026-03-08',
      available: 699,
      owed: 1,
    });
    expect(days).toEqual([
      { date: '2026-03-07', emails: 0, adjusted: 0, expired: 0, credits: 0, balance: null },
      { date: '2026-03-08', emails: 0, adjusted: 0, expired: 0, credits: 1000, balance: '1000' },
      { date: '2026-03-09', emails: 300, adjusted: 0, expired: 0, credits: 0, balance: '700' },
      // Today: the one email spent and not settled yet counts.
      { date: '2026-03-10', emails: 1, adjusted: 0, expired: 0, credits: 0, balance: '699' },
    ]);
  });

  it('with nothing recorded (a customer from before these records), today’s balance alone is known', () => {
    const days = foldDays([], { days: 2, now, first: null, available: 1234, owed: 0 });
    expect(days.map((d) => d.balance)).toEqual([null, '1234']);
  });

  it('keeps adjustments and expiries apart from emails', () => {
    const [day] = foldDays([row('2026-03-10', { emails: 3, adjusted: 300, expired: 45 })], {
      days: 1,
      now,
      first: '2026-03-01',
      available: 60,
      owed: 0,
    });
    expect(day).toEqual({ date: '2026-03-10', emails: 3, adjusted: 300, expired: 45, credits: 0, balance: '60' });
  });

  it('ends on the newest day recorded when Dodo’s clock runs ahead', () => {
    const days = foldDays([row('2026-03-12', { emails: 1 })], { days: 3, now, first: '2026-03-01', available: 10, owed: 0 });
    expect(days.map((d) => d.date)).toEqual(['2026-03-10', '2026-03-11', '2026-03-12']);
  });

  it('the threshold is 20% of the plan’s 5,000 credits', () => {
    expect(LOW_BALANCE_THRESHOLD).toBe(1000);
  });
});
