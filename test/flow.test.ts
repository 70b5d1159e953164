import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CREDITS_MESSAGE } from '../src/billing/billing';
import { balanceOf, bearer, outboxTo, payCheckout, settle, startTestStack, subscribe } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe('the tutorial flow, on the sandbox, through the real SDKs', () => {
  let stack: TestStack;
  let key: string;
  let customerId: string;
  const email = 'ada@example.com';

  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('provisions the tutorial catalog in the sandbox by itself', async () => {
    const entitlement = await stack.dodo.creditEntitlements.retrieve(stack.catalog.creditEntitlementId);
    expect(entitlement).toMatchObject({ name: 'Email Credits', unit: 'email', precision: 0 });
    const plan = await stack.dodo.products.retrieve(stack.catalog.planProductId);
    expect(plan.name).toBe('MailKit Plan');
    expect(plan.price).toMatchObject({ type: 'recurring_price', price: 1900, currency: 'USD' });
    const topup = await stack.dodo.products.retrieve(stack.catalog.topupProductId);
    expect(topup.name).toBe('Email Top-Up Pack');
    expect(topup.price).toMatchObject({ type: 'one_time_price', price: 900 });
  });

  it('subscribing and paying emails the customer an API key and grants 5,000 credits', async () => {
    ({ key, customerId } = await subscribe(stack, email, 'Ada'));
    expect(customerId).toMatch(/^cus_/);
    expect(await balanceOf(stack, key)).toBe(5000);
    const tutorialRoute = await request(stack.url).get(`/credits/${customerId}`).set(bearer(key)).expect(200);
    expect(Number(tutorialRoute.body.balance)).toBe(5000);
  });

  it('a send returns the Resend id, lands in the outbox and debits exactly one credit', async () => {
    const res = await request(stack.url)
      .post('/send')
      .set(bearer(key))
      .send({ to: 'delivered@resend.dev', subject: 'Hello from MailKit', html: '<strong>It works!</strong>' })
      .expect(200);
    expect(Object.keys(res.body)).toEqual(['id']);
    const sent = outboxTo(stack, 'delivered@resend.dev');
    expect(sent.map((m) => m.id)).toContain(res.body.id);
    expect(sent.find((m) => m.id === res.body.id)?.subject).toBe('Hello from MailKit');
    expect(await balanceOf(stack, key)).toBe(4999);
  });

  it('a manual debit of 4,000 then one more send fires credit.balance_low once, and the customer is emailed', async () => {
    const alerts = () => outboxTo(stack, email).filter((m) => /running low/.test(m.subject));
    await stack.sandbox.dodo.adjustBalance(customerId, stack.catalog.creditEntitlementId, -4000, 'tutorial step 5');
    await request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 's', html: '<p>x</p>' }).expect(200);
    // Dodo sees the crossing when the spends are settled with it (within seconds; here at once):
    // one alert, naming what the customer holds.
    await stack.credits.settleNow();
    await settle(stack);
    expect(alerts()).toHaveLength(1);
    expect(alerts()[0]!.subject).toBe('Your Email Credits balance is running low');
    expect(alerts()[0]!.text).toMatch(/You have 99[89] emails left \(under your 20% threshold\)/);

    // Still under the threshold: no second alert.
    await request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 's', html: '<p>x</p>' }).expect(200);
    await stack.credits.settleNow();
    await settle(stack);
    expect(alerts()).toHaveLength(1);
    expect(await balanceOf(stack, key)).toBe(997);
  });

  it('a top-up adds 5,000 on top, and the older subscription grant is consumed first (FIFO)', async () => {
    const res = await request(stack.url).post('/checkout/topup').set(bearer(key)).send({}).expect(200);
    await payCheckout(stack, res.body.checkout_url);
    expect(await balanceOf(stack, key)).toBe(5997);

    await request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 's', html: '<p>x</p>' }).expect(200);
    // Dodo's grants are read directly: first what was spent is settled with it.
    await stack.credits.settleNow();
    const grants = [];
    for await (const g of stack.dodo.creditEntitlements.balances.listGrants(customerId, { credit_entitlement_id: stack.catalog.creditEntitlementId }))
      grants.push(g);
    // The top-up is untouched; the plan's grant paid every email, and no grant of MailKit's own exists.
    expect(grants.map((g) => [g.source_type, Number(g.remaining_amount)]).sort()).toEqual([
      ['one_time', 5000],
      ['subscription', 996],
    ]);
    expect(await balanceOf(stack, key)).toBe(5996);
  });

  it('at zero, /send answers the tutorial 402 and nothing is sent', async () => {
    await stack.credits.settleNow(); // every spend in Dodo, for the adjustment below
    await stack.sandbox.dodo.adjustBalance(customerId, stack.catalog.creditEntitlementId, -5996, 'drain');
    await settle(stack);
    expect(await balanceOf(stack, key)).toBe(0);
    const before = stack.sandbox.resend.messages().length;
    const res = await request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 's', html: '<p>x</p>' });
    expect(res.status).toBe(402);
    expect(res.body).toEqual({ error: { code: 'insufficient_credits', message: NO_CREDITS_MESSAGE } });
    await settle(stack);
    expect(stack.sandbox.resend.messages().length).toBe(before);
    expect(await balanceOf(stack, key)).toBe(0);
  });
});

describe('health', () => {
  it('GET /healthz is alive and GET /readyz reports the database and both upstreams reachable; a Dodo outage makes it 503', async () => {
    const stack = await startTestStack({}, { readinessVendorTtlMs: 0 });
    try {
      expect((await request(stack.url).get('/healthz')).body).toEqual({ status: 'ok' });
      const ready = await request(stack.url).get('/readyz').expect(200);
      expect(ready.body).toEqual({ status: 'ready', checks: { database: { ok: true }, dodo: { ok: true }, resend: { ok: true } } });
      stack.sandbox.dodo.faults.inject({ status: 503, count: 1 });
      const down = await request(stack.url).get('/readyz').expect(503);
      expect(down.body.checks).toEqual({ database: { ok: true }, dodo: { ok: false, reason: 'Dodo answered 503' }, resend: { ok: true } });
    } finally {
      await stack.close();
    }
  });
});
