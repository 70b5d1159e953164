import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { Stack } from '../../src/stack';
import { forEachEngine } from '../support/database';
import { findBalance } from '../../src/db/credits';
import { bearer, customerWith, settle, startTestStack, subscribe } from '../support/stack';

/**
 * The balance MailKit keeps, settled to Dodo in arrears. Each case that credit leases got wrong runs
 * here through the real SDKs against the sandbox, on both engines: what the customer sees
 * (GET /credits) and what Dodo holds once settled, to the credit, expiries included. Settlements
 * run when a test says (`credits.settleNow()`), so each one is seen.
 */
type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const DAY = 86_400_000;
const SENDS = /^POST \/emails(\/batch)?$/;
const MANUAL = { credits: { intervalMs: 0 }, reconcile: { intervalMs: 0, graceMs: 0 }, mailer: { timeoutMs: 2_000, maxBackoffMs: 50 } };

const local = async (stack: Stack, key: string) => Number((await request(stack.url).get('/credits').set(bearer(key)).expect(200)).body.balance);
const dodo = async (stack: Stack, customerId: string) => Number(await stack.billing.balance(customerId));
const grants = async (stack: Stack, customerId: string) => {
  const out = [];
  for await (const g of stack.dodo.creditEntitlements.balances.listGrants(customerId, { credit_entitlement_id: stack.catalog.creditEntitlementId }))
    out.push(g);
  return out;
};
const batch = (stack: Stack, key: string, n: number, subject: string) =>
  request(stack.url)
    .post('/send/batch')
    .set(bearer(key))
    .send({ emails: Array.from({ length: n }, (_, i) => ({ to: `delivered+${i}@resend.dev`, subject, html: '<p>x</p>' })) });
/** One email to 50 recipients (50 credits), which Resend refuses: its credits come back. */
async function refusedFifty(stack: TestStack, key: string) {
  stack.sandbox.resend.faults.inject({ status: 422, count: 1, match: SENDS });
  const res = await request(stack.url)
    .post('/send')
    .set(bearer(key))
    .send({ to: Array.from({ length: 50 }, (_, i) => `delivered+r${i}@resend.dev`), subject: 'refused', html: '<p>x</p>' });
  expect(res.status).toBe(422);
}
/** Sends `n` emails, about 50 a second, as a steady sender would. */
async function steady(stack: Stack, key: string, n: number, subject: string) {
  for (let i = 0; i < n; i += 5) {
    const round = Array.from({ length: Math.min(5, n - i) }, (_, j) =>
      request(stack.url)
        .post('/send')
        .set(bearer(key))
        .send({ to: 'delivered@resend.dev', subject: `${subject} ${i + j}`, html: '<p>x</p>' }),
    );
    for (const r of await Promise.all(round)) expect(r.status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
  }
}
/** The sandbox's clock moves on (grants expire, the plan renews) and Dodo's webhooks reach MailKit. */
async function advance(stack: TestStack, ms: number) {
  await stack.sandbox.dodo.advanceClock(ms);
  stack.sandbox.dodo.customers(); // (runs what fell due)
  await settle(stack);
}
/** A credit Dodo grants directly (its dashboard), with an expiry `days` ahead on Dodo's clock, or none. */
async function grant(stack: TestStack, customerId: string, amount: number, days: number | null) {
  await stack.dodo.creditEntitlements.balances.createLedgerEntry(customerId, {
    credit_entitlement_id: stack.catalog.creditEntitlementId,
    entry_type: 'credit',
    amount: String(amount),
    reason: 'granted in the dashboard',
    ...(days === null ? {} : { expires_at: new Date(stack.sandbox.dodo.now().getTime() + days * DAY).toISOString() }),
  });
  await settle(stack);
}

forEachEngine('the balance MailKit keeps', ({ engine }) => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });
  const start = async () => (stack = await startTestStack({}, { ...MANUAL, engine }));

  describe('1. credits at a cycle boundary', () => {
    it('sends settled before the plan renews: 5,000 after the renewal, not a credit more', async () => {
      const s = await start();
      const c = await customerWith(s, 3000);
      await steady(s, c.key, 60, 'cycle');
      await s.credits.settleNow();
      await advance(s, 32 * DAY);
      await s.credits.settleNow();
      expect(await dodo(s, c.customerId)).toBe(5000);
      expect(await local(s, c.key)).toBe(5000);
    });

    it('the plan renews before the sends are settled: the lapsed grant took them with it, 5,000 still', async () => {
      const s = await start();
      const c = await customerWith(s, 3000);
      await steady(s, c.key, 60, 'cycle-late');
      await advance(s, 32 * DAY);
      await s.credits.settleNow();
      expect(await dodo(s, c.customerId)).toBe(5000);
      expect(await local(s, c.key)).toBe(5000);
    });

    it('a 3,000 grant expiring in 30 days: after 60 sends and 32 days, nothing of it remains, and MailKit made no grant', async () => {
      const s = await start();
      const c = await customerWith(s, 0);
      await grant(s, c.customerId, 3000, 30);
      await steady(s, c.key, 60, 'grant');
      await s.credits.settleNow();
      await advance(s, 32 * DAY);
      await s.credits.settleNow();
      const live = (await grants(s, c.customerId)).filter((g) => !g.is_expired && Number(g.remaining_amount) > 0);
      // What is left is the renewed plan's grant alone.
      expect(live.map((g) => [g.source_type, Number(g.remaining_amount)])).toEqual([['subscription', 5000]]);
      expect(await local(s, c.key)).toBe(5000);
    });
  });

  it("a new customer's balance is seeded by its first credits' webhook: its first send goes out while Dodo is down", async () => {
    const s = await start();
    const c = await subscribe(s, 'seeded@example.com');
    await settle(s);
    const row = await findBalance(s.database, c.customerId);
    expect(row?.available).toBe(5000);
    // Dodo down: a send that needed a grants read would get 503.
    s.sandbox.dodo.faults.inject({ status: 503, count: 1_000 });
    await request(s.url).post('/send').set(bearer(c.key)).send({ to: 'delivered@resend.dev', subject: 'first', html: '<p>x</p>' }).expect(200);
    expect(await local(s, c.key)).toBe(4999);
    s.sandbox.dodo.faults.clear();
  });

  it('2. plan credits used up, then 3,000 that never expire, then 60 sends: 7,940 after the renewal', async () => {
    const s = await start();
    const c = await customerWith(s, 0);
    await grant(s, c.customerId, 3000, null);
    await steady(s, c.key, 60, 'lost');
    await s.credits.settleNow();
    await advance(s, 32 * DAY);
    await s.credits.settleNow();
    expect(await dodo(s, c.customerId)).toBe(7940);
    expect(await local(s, c.key)).toBe(7940);
  });

  it('3. the low-balance alert: once per crossing, with the number the customer holds', async () => {
    const s = await start();
    const c = await customerWith(s, 1100);
    const alerts = () => s.sandbox.resend.messages().filter((m) => /running low/.test(m.subject));
    await refusedFifty(s, c.key);
    await batch(s, c.key, 60, 'sixty').expect(200);
    await s.credits.settleNow();
    await settle(s);
    expect(await local(s, c.key)).toBe(1040);
    expect(alerts()).toHaveLength(0);
    await batch(s, c.key, 50, 'fifty').expect(200);
    await s.credits.settleNow();
    await settle(s);
    expect(alerts()).toHaveLength(1);
    expect(alerts()[0]!.text).toMatch(/You have 990 emails left/);
    await batch(s, c.key, 50, 'fifty more').expect(200);
    await s.credits.settleNow();
    await settle(s);
    expect(alerts()).toHaveLength(1);
    expect(await local(s, c.key)).toBe(940);
    expect(await dodo(s, c.customerId)).toBe(940);
  });

  it('4. a balance of 100 after a refused 50-recipient send still pays a batch of 60', async () => {
    const s = await start();
    const c = await customerWith(s, 100);
    await refusedFifty(s, c.key);
    expect(await local(s, c.key)).toBe(100);
    const res = await batch(s, c.key, 60, 'sixty');
    expect(res.status).toBe(200);
    expect(res.body.sent).toBe(60);
    expect(await local(s, c.key)).toBe(40);
    await s.credits.settleNow();
    expect(await dodo(s, c.customerId)).toBe(40);
  });

  it('5. refunds never reach Dodo: a refused send leaves no grant of MailKit’s, and Dodo equals the balance', async () => {
    const s = await start();
    const c = await customerWith(s, 200);
    const before = (await grants(s, c.customerId)).length;
    await refusedFifty(s, c.key);
    await steady(s, c.key, 5, 'after');
    await s.credits.settleNow();
    expect((await grants(s, c.customerId)).length).toBe(before);
    expect(await dodo(s, c.customerId)).toBe(195);
    expect(await local(s, c.key)).toBe(195);
  });

  describe('outside changes', () => {
    it('a deduction in Dodo’s dashboard while spends are unsettled lowers the balance through its webhook', async () => {
      const s = await start();
      const c = await customerWith(s, 5000);
      await steady(s, c.key, 10, 'before');
      await s.sandbox.dodo.adjustBalance(c.customerId, s.catalog.creditEntitlementId, -4000, 'tutorial step 5');
      await settle(s);
      expect(await local(s, c.key)).toBe(990);
      await s.credits.settleNow();
      expect(await dodo(s, c.customerId)).toBe(990);
    });

    it('a settlement Dodo refuses for want of credits settles what Dodo holds; the rest is unpaid, never negative', async () => {
      const s = await start();
      const c = await customerWith(s, 10);
      await steady(s, c.key, 5, 'spent');
      // Dodo loses 8 of the 10 credits while 5 are spent and unsettled: it holds 2 for them.
      await s.sandbox.dodo.adjustBalance(c.customerId, s.catalog.creditEntitlementId, -8, 'by hand');
      await settle(s);
      await s.credits.settleNow();
      expect(await dodo(s, c.customerId)).toBe(0);
      const [settlement] = await s.database.db.selectFrom('settlements').selectAll().execute();
      expect(settlement).toMatchObject({ credits: 5, paid: 2, state: 'done' });
      await s.credits.settleNow();
      expect(await local(s, c.key)).toBe(0);
    });
  });

  describe('a settlement whose answer is lost', () => {
    it('is asked again under the same key: one debit', async () => {
      const s = await start();
      const c = await customerWith(s, 10);
      await steady(s, c.key, 3, 'lost answer');
      s.sandbox.dodo.faults.inject({ dropAfterProcessing: true, count: 1, match: /ledger-entries$/ });
      await s.credits.settleNow();
      expect(await dodo(s, c.customerId)).toBe(7); // Dodo made it; MailKit does not know yet
      s.sandbox.dodo.faults.inject({ status: 429, count: 1, match: /ledger-entries$/ });
      await s.credits.settleNow(); // a refusal after the lost answer proves nothing
      await s.credits.settleNow(); // the same key again: Dodo says it exists
      expect(await dodo(s, c.customerId)).toBe(7);
      expect(await local(s, c.key)).toBe(7);
      const rows = await s.database.db.selectFrom('settlements').selectAll().execute();
      expect(rows.map((r) => [r.credits, r.paid, r.state])).toEqual([[3, 3, 'done']]);
    });
  });

  it('expiry exactness: steady sends across two cycle boundaries and a top-up that never expires, to the credit', async () => {
    const s = await start();
    const c = await customerWith(s, 5000);
    await grant(s, c.customerId, 5000, null); // the top-up: never expires
    await steady(s, c.key, 100, 'cycle one');
    await s.credits.settleNow();
    await advance(s, 31 * DAY); // the plan's first 5,000 (less 100) lapse; 5,000 new ones
    await steady(s, c.key, 100, 'cycle two');
    await s.credits.settleNow();
    await advance(s, 31 * DAY);
    await steady(s, c.key, 50, 'cycle three');
    await s.credits.settleNow();
    // Dodo draws oldest grant first: the first cycle's 100 came from the plan's first grant, the
    // next 150 from the top-up (older than every renewal), and each renewal lapsed untouched.
    expect(await dodo(s, c.customerId)).toBe(4850 + 5000);
    expect(await local(s, c.key)).toBe(4850 + 5000);
    const mine = (await grants(s, c.customerId)).filter((g) => g.source_type === 'api' && g.expires_at === null && Number(g.initial_amount) !== 5000);
    expect(mine).toEqual([]);
  });
});
