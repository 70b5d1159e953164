import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startStack } from '../../src/stack';
import { TRIGGER_EVENTS, type WebhookDelivery } from '../../src/sandbox/contracts';
import { assertWebhookMatchesSpec } from '../support/openapi';
import { balanceOf, bearer, LIVE_ENV, outboxTo, settle, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const lowBalanceMails = (stack: TestStack, email: string) => outboxTo(stack, email).filter((m) => /running low/.test(m.subject));
const deliveries = (stack: TestStack) => stack.sandbox.dodo.webhooks.list();
const json = (stack: TestStack, path: string, body: unknown = {}) =>
  request(stack.url).post(`/sandbox/api${path}`).set('Content-Type', 'application/json').send(JSON.stringify(body));

/** Every delivery since `known`, oldest first, after they settled: each must have reached the app with a 2xx. */
async function newDeliveries(stack: TestStack, known: Set<string>): Promise<WebhookDelivery[]> {
  await settle(stack);
  const fresh = deliveries(stack)
    .filter((d) => !known.has(d.id))
    .reverse();
  for (const d of fresh) {
    expect(d.state, `${d.type} ${d.id}`).toBe('delivered');
    const last = d.attempts.at(-1)!;
    expect(last.status).toBeGreaterThanOrEqual(200);
    expect(last.status).toBeLessThan(300);
    assertWebhookMatchesSpec(d.type, d.payload);
  }
  return fresh;
}
const idsNow = (stack: TestStack) => new Set(deliveries(stack).map((d) => d.id));

describe('sandbox control API (/sandbox/api)', () => {
  let stack: TestStack;
  let key: string;
  let customerId: string;
  const email = 'grace@example.com';

  beforeAll(async () => {
    stack = await startTestStack();
    ({ key, customerId } = await subscribe(stack, email, 'Grace'));
  });
  afterAll(async () => {
    await stack?.close();
  });

  describe('GET /sandbox/api/customers', () => {
    it('lists customers with their Email Credits balance as a decimal string', async () => {
      const res = await request(stack.url).get('/sandbox/api/customers').expect(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toEqual({
        data: [{ customer_id: customerId, email, name: 'Grace', balance: '5000', created_at: expect.any(String) }],
      });
    });
  });

  describe('GET /sandbox/api/customers/:id', () => {
    it('shows balances, grants with source/remaining/expiry, and the ledger newest first', async () => {
      const res = await request(stack.url).get(`/sandbox/api/customers/${customerId}`).expect(200);
      expect(res.body.customer).toMatchObject({ customer_id: customerId, email, name: 'Grace' });
      expect(res.body.balances).toEqual([
        {
          credit_entitlement_id: stack.catalog.creditEntitlementId,
          credit_entitlement_name: 'Email Credits',
          unit: 'email',
          balance: '5000',
          primary: true,
        },
      ]);
      expect(res.body.grants).toEqual([
        expect.objectContaining({ source: 'subscription', initial: '5000', remaining: '5000', is_expired: false, expires_at: expect.any(String) }),
      ]);
      expect(res.body.ledger.map((l: { transaction_type: string }) => l.transaction_type)).toEqual(['credit_added']);
    });

    it('is 404 with the error envelope for an unknown customer', async () => {
      const res = await request(stack.url).get('/sandbox/api/customers/cus_nope').expect(404);
      expect(res.body).toEqual({ error: { code: 'not_found', message: expect.stringContaining('cus_nope') } });
    });
  });

  describe('POST /sandbox/api/customers/:id/adjust', () => {
    describe('when the request is not a same-origin JSON request', () => {
      it('refuses a form post (415), a body-less post without a type (415) and a cross-site fetch (403), changing nothing', async () => {
        const form = await request(stack.url).post(`/sandbox/api/customers/${customerId}/adjust`).type('form').send({ amount: '-4000' });
        expect(form.status).toBe(415);
        expect(form.body.error.code).toBe('unsupported_media_type');
        const text = await request(stack.url)
          .post(`/sandbox/api/customers/${customerId}/adjust`)
          .set('Content-Type', 'text/plain')
          .send('{"amount":-4000}');
        expect(text.status).toBe(415);
        const bare = await request(stack.url).post('/sandbox/api/clock/advance');
        expect(bare.status).toBe(415);
        const cross = await json(stack, `/customers/${customerId}/adjust`, { amount: -4000 }).set('Sec-Fetch-Site', 'cross-site');
        expect(cross.status).toBe(403);
        expect(cross.body.error.code).toBe('cross_site_request');
        expect(await balanceOf(stack, key)).toBe(5000);
      });
    });

    describe('when the body is invalid', () => {
      it.each([[{}], [{ amount: '-4000' }], [{ amount: 0 }], [{ amount: 1.5 }], [{ amount: -4000, reason: 'x'.repeat(201) }]])(
        'answers 400 for %j',
        async (body) => {
          const res = await json(stack, `/customers/${customerId}/adjust`, body);
          expect(res.status).toBe(400);
          expect(res.body).toEqual({ error: { code: 'invalid_request', message: expect.any(String) } });
        },
      );

      it('answers 400 invalid_json for malformed JSON', async () => {
        const res = await request(stack.url)
          .post(`/sandbox/api/customers/${customerId}/adjust`)
          .set('Content-Type', 'application/json')
          .send('{"amount":');
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('invalid_json');
      });
    });

    it('is 404 for an unknown customer', async () => {
      const res = await json(stack, '/customers/cus_nope/adjust', { amount: 5 });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    });

    it('is 409 insufficient_balance for a debit larger than the balance, and changes nothing', async () => {
      const res = await json(stack, `/customers/${customerId}/adjust`, { amount: -5001 });
      expect(res.status).toBe(409);
      expect(res.body.error).toEqual({ code: 'insufficient_balance', message: expect.stringContaining('5000 available') });
      expect(await balanceOf(stack, key)).toBe(5000);
    });

    describe("the tutorial's step: one send, then −4000", () => {
      it('debits, emits credit.manual_adjustment then credit.balance_low, and the customer gets the low-balance email', async () => {
        await request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'one', html: '<p>1</p>' }).expect(200);
        // The send reaches Dodo's ledger when it is settled, within seconds: a person clicking
        // through the tutorial gets there before the next step.
        await stack.credits.settleNow();
        await settle(stack);
        const known = idsNow(stack);
        const res = await json(stack, `/customers/${customerId}/adjust`, { amount: -4000, reason: 'tutorial step 5' }).expect(200);
        expect(res.body).toEqual({ customer_id: customerId, credit_entitlement_id: stack.catalog.creditEntitlementId, balance: '999' });
        const fresh = await newDeliveries(stack, known);
        expect(fresh.map((d) => d.type)).toEqual(['credit.manual_adjustment', 'credit.balance_low']);
        expect((fresh[0]!.payload as { data: { description: string } }).data.description).toBe('tutorial step 5');
        expect(lowBalanceMails(stack, email)).toHaveLength(1);
        expect(await balanceOf(stack, key)).toBe(999);
      });
    });
  });

  describe('GET /sandbox/api/webhooks and POST …/:id/redeliver', () => {
    it('lists deliveries newest first with status, attempts and body', async () => {
      const res = await request(stack.url).get('/sandbox/api/webhooks').expect(200);
      const list = res.body.data as WebhookDelivery[];
      expect(list[0]!.type).toBe('credit.balance_low');
      expect(list.at(-1)!.type).toBe('subscription.active');
      expect(list[0]).toMatchObject({ id: expect.stringMatching(/^msg_/), state: 'delivered', payload: { type: 'credit.balance_low' } });
      expect(list[0]!.attempts[0]).toMatchObject({ status: 200, response: '{"received":true}' });
    });

    it('re-POSTs the same webhook-id; the app answers duplicate and sends no second email', async () => {
      const low = deliveries(stack).find((d) => d.type === 'credit.balance_low')!;
      const res = await json(stack, `/webhooks/${low.id}/redeliver`).expect(202);
      expect(res.body).toEqual({ id: low.id, redelivering: true });
      await settle(stack);
      const again = deliveries(stack).find((d) => d.id === low.id)!;
      expect(again.attempts).toHaveLength(2);
      expect(again.attempts[1]).toMatchObject({ status: 200, response: '{"received":true,"duplicate":true}' });
      expect(lowBalanceMails(stack, email)).toHaveLength(1);
    });

    it('is 404 for an unknown delivery', async () => {
      const res = await json(stack, '/webhooks/msg_nope/redeliver');
      expect(res.status).toBe(404);
    });
  });

  describe('POST /sandbox/api/clock/advance', () => {
    it.each([[{ days: -1 }], [{ days: 1, cycles: 1 }], [{ cycles: 0 }], [{ cycles: 1.5 }]])('answers 400 for %j', async (body) => {
      const res = await json(stack, '/clock/advance', body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
    });

    it('one billing cycle (a calendar month) renews the subscription: subscription.renewed is delivered and the balance is back up', async () => {
      const before = Date.parse((await request(stack.url).get('/sandbox/api/clock').expect(200)).body.now);
      const known = idsNow(stack);
      const res = await json(stack, '/clock/advance', { cycles: 1 }).expect(200);
      const after = Date.parse(res.body.now);
      expect(after - before).toBeGreaterThanOrEqual(28 * 86_400_000);
      expect(after - before).toBeLessThan(32 * 86_400_000);
      const types = (await newDeliveries(stack, known)).map((d) => d.type);
      expect(types).toContain('subscription.renewed');
      expect(types.slice(types.indexOf('subscription.renewed'))).toEqual(['subscription.renewed', 'payment.succeeded', 'credit.added']);
      // The old grant expires after 30 days: in a short month it is still there (999 + 5000).
      expect([5000, 5999]).toContain(await balanceOf(stack, key));
    });

    it('accepts a number of days', async () => {
      const before = stack.sandbox.dodo.now().getTime();
      const res = await json(stack, '/clock/advance', { days: 1 }).expect(200);
      expect(Date.parse(res.body.now) - before).toBeGreaterThanOrEqual(86_400_000);
      await settle(stack);
    });
  });

  describe('unknown routes', () => {
    it('are JSON 404s', async () => {
      const res = await request(stack.url).get('/sandbox/api/nothing').expect(404);
      expect(res.body.error.code).toBe('not_found');
    });
  });
});

describe('POST /sandbox/api/trigger', () => {
  let stack: TestStack;
  let key: string;
  let customerId: string;
  const email = 'tri@example.com';

  beforeAll(async () => {
    stack = await startTestStack();
    ({ key, customerId } = await subscribe(stack, email, 'Tri'));
  });
  afterAll(async () => {
    await stack?.close();
  });

  const cases: Array<[(typeof TRIGGER_EVENTS)[number], string[]]> = [
    ['credit.balance_low', ['credit.manual_adjustment', 'credit.balance_low']],
    ['credit.added', ['credit.added']],
    ['credit.expired', ['credit.added', 'credit.expired']],
    ['credit.rolled_over', ['credit.added', 'credit.rolled_over']],
    ['subscription.renewed', ['subscription.renewed', 'payment.succeeded', 'credit.added']],
  ];

  it.each(cases)('%s: changes sandbox state and the app receives the signed events (2xx)', async (event, expected) => {
    const known = idsNow(stack);
    const res = await json(stack, '/trigger', { event, customer_id: customerId }).expect(202);
    expect(res.body).toMatchObject({ event, customer_id: customerId });
    expect(res.body.events.map((e: { type: string }) => e.type)).toEqual(expected);
    const fresh = await newDeliveries(stack, known);
    expect(fresh.map((d) => d.id)).toEqual(res.body.webhook_ids);
    expect(fresh.map((d) => d.type)).toEqual(expected);
  });

  it('credit.balance_low leaves the balance just under the threshold and emails the customer', async () => {
    expect(lowBalanceMails(stack, email)).toHaveLength(1);
    const ledger = (await request(stack.url).get(`/sandbox/api/customers/${customerId}`)).body.ledger as Array<{
      description: string;
      balance_after: string;
    }>;
    expect(ledger.find((l) => l.description === 'Sandbox trigger: credit.balance_low')?.balance_after).toBe('999');
  });

  it('credit.balance_low fires again when already low: it re-arms at the threshold first', async () => {
    await json(stack, `/customers/${customerId}/adjust`, { amount: -(await balanceOf(stack, key)) + 10 }).expect(200);
    await settle(stack);
    const mails = lowBalanceMails(stack, email).length;
    const res = await json(stack, '/trigger', { event: 'credit.balance_low', customer_id: customerId }).expect(202);
    expect(res.body.events.map((e: { type: string }) => e.type)).toEqual([
      'credit.manual_adjustment',
      'credit.manual_adjustment',
      'credit.balance_low',
    ]);
    await settle(stack);
    expect(lowBalanceMails(stack, email)).toHaveLength(mails + 1);
    expect(await balanceOf(stack, key)).toBe(999);
  });

  it('credit.rolled_over leaves a rollover grant (parent, count 1) in the customer view', async () => {
    const detail = (await request(stack.url).get(`/sandbox/api/customers/${customerId}`)).body;
    const child = detail.grants.find((g: { source: string }) => g.source === 'rollover');
    expect(child).toMatchObject({ rollover_count: 1, initial: '100', parent_grant_id: expect.stringMatching(/^cgr_/) });
    expect(detail.grants.find((g: { id: string }) => g.id === child.parent_grant_id)).toMatchObject({ is_rolled_over: true, is_expired: true });
  });

  it('is 400 for an unknown event, 404 for an unknown customer, 409 for a customer with no subscription', async () => {
    expect((await json(stack, '/trigger', { event: 'payment.succeeded', customer_id: customerId })).status).toBe(400);
    expect((await json(stack, '/trigger', { event: 'credit.added', customer_id: 'cus_nope' })).status).toBe(404);
    const loner = await stack.dodo.customers.create({ email: 'loner@example.com', name: 'Loner' });
    for (const event of ['credit.balance_low', 'subscription.renewed'] as const) {
      const res = await json(stack, '/trigger', { event, customer_id: loner.customer_id });
      expect(res.status).toBe(409);
      expect(res.body.error.message).toMatch(/subscribe first/);
    }
    // credit.added needs no subscription.
    await json(stack, '/trigger', { event: 'credit.added', customer_id: loner.customer_id, amount: 7 }).expect(202);
    const row = (await request(stack.url).get('/sandbox/api/customers')).body.data.find(
      (c: { customer_id: string }) => c.customer_id === loner.customer_id,
    );
    expect(row.balance).toBe('7');
    await settle(stack);
  });
});

describe('GET /sandbox (the console page)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack();
    await subscribe(stack, 'page@example.com', 'Page Owner');
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('renders customers, the adjust form, the cycle button and the webhook log, with stable ids', async () => {
    const res = await request(stack.url).get('/sandbox').expect(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    const html = res.text;
    expect(html).toContain('id="customers"');
    expect(html).toMatch(/<form id="adjust-form"/);
    for (const name of ['customer_id', 'amount', 'reason']) expect(html).toMatch(new RegExp(`name="${name}"`));
    expect(html).toMatch(/<select id="adjust-customer" name="customer_id"/);
    expect(html).toMatch(/<label for="adjust-amount">/);
    expect(html).toContain('id="advance-cycle"');
    expect(html).toContain('id="webhooks"');
    expect(html).toMatch(/<button type="button" data-redeliver="msg_/);
    expect(html).toContain('href="/sandbox/outbox"');
    expect(html).toContain('href="/"');
    expect(html).toContain('5,000');
    expect(html).toContain('subscription.active');
  });

  it('has no inline script, style or handler, under the app CSP', async () => {
    const res = await request(stack.url).get('/sandbox').expect(200);
    expect(res.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(res.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(res.text).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    await request(stack.url)
      .get('/sandbox/assets/console.js')
      .expect(200)
      .expect('content-type', /javascript/);
    await request(stack.url).get('/sandbox/assets/console.css').expect(200);
  });

  it('escapes a customer named <script>alert(1)</script> everywhere', async () => {
    const evil = await stack.dodo.customers.create({ email: 'evil@example.com', name: '<script>alert(1)</script>' });
    const list = await request(stack.url).get('/sandbox').expect(200);
    const detail = await request(stack.url).get(`/sandbox?customer=${evil.customer_id}`).expect(200);
    for (const html of [list.text, detail.text]) {
      expect(html).not.toContain('<script>alert(1)</script>');
      expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    }
    expect(detail.text).toContain(`data-customer-id="${evil.customer_id}"`);
  });
});

describe('in live mode', () => {
  it('/sandbox and /sandbox/api do not exist', async () => {
    const stack = await startStack(loadConfig(LIVE_ENV), { inMemory: true, log: createLogger('silent') });
    try {
      for (const path of ['/sandbox', '/sandbox/api/customers', '/sandbox/api/webhooks']) {
        expect((await request(stack.url).get(path)).status).toBe(404);
      }
      const post = await request(stack.url).post('/sandbox/api/trigger').send({ event: 'credit.added', customer_id: 'cus_x' });
      expect(post.status).toBe(404);
    } finally {
      await stack.close();
    }
  });
});
