import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertResponseMatchesSpec } from '../../support/openapi';
import { buyWithCard, provision, settledWebhooks, startHarness, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe('POST /checkouts', () => {
  it('returns a session id and a checkout_url on the sandbox host', async () => {
    const { plan } = await provision(h.client);
    const session = await h.client.checkoutSessions.create({
      product_cart: [{ product_id: plan.product_id, quantity: 1 }],
      customer: { email: 'ada@example.com', name: 'Ada' },
      return_url: 'http://mailkit.test/done',
    });
    assertResponseMatchesSpec('dodo', 'post', '/checkouts', 200, session);
    expect(session.session_id).toMatch(/^cks_[0-9A-Za-z]{21}$/);
    expect(session.checkout_url).toBe(`${h.baseUrl}/sandbox/checkout/${session.session_id}`);

    const status = await h.client.checkoutSessions.retrieve(session.session_id);
    assertResponseMatchesSpec('dodo', 'get', '/checkouts/{id}', 200, status);
    expect(status).toMatchObject({ id: session.session_id, customer_email: 'ada@example.com', payment_status: null, payment_id: null });
  });

  it('refuses an unknown product with 422 in the error envelope', async () => {
    await expect(
      h.client.checkoutSessions.create({ product_cart: [{ product_id: 'pdt_nope', quantity: 1 }], customer: { email: 'a@b.co' } }),
    ).rejects.toMatchObject({ status: 422, error: { code: 'PRODUCT_NOT_FOUND' } });
  });

  it('answers 404 for an unknown session', async () => {
    await expect(h.client.checkoutSessions.retrieve('cks_missing')).rejects.toMatchObject({ status: 404, error: { code: 'NOT_FOUND' } });
  });
});

describe('hosted checkout page', () => {
  it('shows product, price, email and the two forms, escaped and without inline script', async () => {
    const { plan, topUp } = await provision(h.client);
    const session = await h.client.checkoutSessions.create({
      product_cart: [{ product_id: plan.product_id, quantity: 1 }],
      customer: { email: "o'neil+x@example.com", name: 'x' },
    });
    const res = await fetch(session.checkout_url!);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('MailKit Plan');
    expect(html).toContain('$19.00 / month');
    expect(html).toContain('o&#39;neil+x@example.com');
    expect(html).toContain('5,000 Email Credits');

    const evil = await h.client.products.create({
      name: '<img src=x onerror=alert(1)> & Co',
      tax_category: 'saas',
      price: { type: 'one_time_price', price: 100, currency: 'USD', discount: 0, purchasing_power_parity: false },
    });
    const evilSession = await h.client.checkoutSessions.create({
      product_cart: [{ product_id: evil.product_id, quantity: 1 }],
      customer: { email: 'e@example.com' },
    });
    const evilHtml = await (await fetch(evilSession.checkout_url!)).text();
    expect(evilHtml).toContain('&lt;img src=x onerror=alert(1)&gt; &amp; Co');
    expect(evilHtml).not.toContain('<img');
    expect(html).toContain(`action="/sandbox/checkout/${session.session_id}/pay"`);
    expect(html).toContain(`action="/sandbox/checkout/${session.session_id}/decline"`);
    expect(html).toContain('Pay with test card');
    expect(html).toContain('href="/sandbox/assets/checkout.css"');
    expect(html).not.toMatch(/<script|\son[a-z]+=|style=/i);
    expect((await fetch(`${h.baseUrl}/sandbox/assets/checkout.css`)).status).toBe(200);

    const oneTime = await h.client.checkoutSessions.create({
      product_cart: [{ product_id: topUp.product_id, quantity: 1 }],
      customer: { email: 'b@example.com' },
    });
    const html2 = await (await fetch(oneTime.checkout_url!)).text();
    expect(html2).toContain('Email Top-Up Pack');
    expect(html2).toMatch(/\$9\.00</);
  });

  it('answers 404 for an unknown session', async () => {
    expect((await fetch(`${h.baseUrl}/sandbox/checkout/cks_nope`)).status).toBe(404);
  });
});

describe('paying for the plan', () => {
  it('creates customer, subscription and payment, grants 5,000 credits, and sends signed webhooks in order', async () => {
    const { entitlement, plan } = await provision(h.client);
    const { sessionId, location } = await buyWithCard(h, plan.product_id, { email: 'ada@example.com', name: 'Ada' });

    expect(location.origin + location.pathname).toBe('http://mailkit.test/done');
    expect(location.searchParams.get('from')).toBe('checkout');
    expect(location.searchParams.get('status')).toBe('succeeded');
    const customerId = location.searchParams.get('customer_id')!;
    const paymentId = location.searchParams.get('payment_id')!;
    const subscriptionId = location.searchParams.get('subscription_id')!;
    expect(customerId).toMatch(/^cus_[0-9A-Za-z]{21}$/);
    expect(paymentId).toMatch(/^pay_[0-9A-Za-z]{21}$/);
    expect(subscriptionId).toMatch(/^sub_[0-9A-Za-z]{21}$/);
    expect(location.searchParams.get('session_id')).toBe(sessionId);

    const balance = await h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlement.id });
    assertResponseMatchesSpec('dodo', 'get', '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}', 200, balance);
    expect(balance.balance).toBe('5000');

    const status = await h.client.checkoutSessions.retrieve(sessionId);
    expect(status).toMatchObject({ payment_id: paymentId, payment_status: 'succeeded', customer_email: 'ada@example.com' });

    const customer = await h.client.customers.retrieve(customerId);
    assertResponseMatchesSpec('dodo', 'get', '/customers/{customer_id}', 200, customer);
    expect(customer).toMatchObject({ email: 'ada@example.com', name: 'Ada' });

    const webhooks = await settledWebhooks(h);
    expect(webhooks.map((w) => w.type)).toEqual(['subscription.active', 'payment.succeeded', 'credit.added']);
    const [active, paid, added] = webhooks;
    expect(active!.payload.data).toMatchObject({
      subscription_id: subscriptionId,
      status: 'active',
      product_id: plan.product_id,
      payload_type: 'Subscription',
    });
    const nextBilling = new Date(active!.payload.data.next_billing_date);
    const previous = new Date(active!.payload.data.previous_billing_date);
    expect(nextBilling.getUTCMonth()).toBe((previous.getUTCMonth() + 1) % 12);
    expect(paid!.payload.data).toMatchObject({
      payment_id: paymentId,
      total_amount: 1900,
      currency: 'USD',
      status: 'succeeded',
      subscription_id: subscriptionId,
      checkout_session_id: sessionId,
    });
    expect(added!.payload.data).toMatchObject({
      transaction_type: 'credit_added',
      amount: '5000',
      balance_before: '0',
      balance_after: '5000',
      is_credit: true,
      customer_id: customerId,
      credit_entitlement_id: entitlement.id,
    });

    // Every delivery verifies with the SDK, and a tampered body does not.
    for (const w of webhooks) {
      const event = h.client.webhooks.unwrap(w.raw, { headers: w.headers });
      expect(event.type).toBe(w.type);
      expect(w.headers['webhook-id']).toMatch(/^msg_[0-9A-Za-z]{21}$/);
      expect(w.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    }
    const tampered = added!.raw.replace('"5000"', '"9000"');
    expect(tampered).not.toBe(added!.raw);
    expect(() => h.client.webhooks.unwrap(tampered, { headers: added!.headers })).toThrow();

    const grants = await h.client.creditEntitlements.balances.listGrants(customerId, { credit_entitlement_id: entitlement.id });
    assertResponseMatchesSpec('dodo', 'get', '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}/grants', 200, {
      items: grants.items,
    });
    expect(grants.items).toHaveLength(1);
    const grant = grants.items[0]!;
    expect(grant).toMatchObject({ source_type: 'subscription', source_id: subscriptionId, initial_amount: '5000', remaining_amount: '5000' });
    expect(Date.parse(grant.expires_at!) - Date.parse(grant.created_at)).toBe(30 * 86_400_000);
  });

  it('does not grant twice when the session is paid twice (page or payCheckout)', async () => {
    const { entitlement, topUp } = await provision(h.client);
    const { sessionId, location } = await buyWithCard(h, topUp.product_id, { email: 'bob@example.com' });
    const again = await fetch(`${h.baseUrl}/sandbox/checkout/${sessionId}/pay`, { method: 'POST', redirect: 'manual' });
    expect(again.status).toBe(303);
    expect(again.headers.get('location')).toBe(location.toString());
    expect(await h.sb.payCheckout(sessionId)).toBe(location.toString());

    const customerId = location.searchParams.get('customer_id')!;
    expect(location.searchParams.get('subscription_id')).toBeNull();
    const balance = await h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlement.id });
    expect(balance.balance).toBe('5000');
    const webhooks = await settledWebhooks(h);
    expect(webhooks.map((w) => w.type)).toEqual(['payment.succeeded', 'credit.added']);
    const grants = await h.client.creditEntitlements.balances.listGrants(customerId, { credit_entitlement_id: entitlement.id });
    expect(grants.items.map((g) => g.source_type)).toEqual(['one_time']);
  });

  it('payCheckout pays through the same path as the button', async () => {
    const { entitlement, topUp } = await provision(h.client);
    const existing = await h.client.customers.create({ email: 'cy@example.com', name: 'Cy' });
    const session = await h.client.checkoutSessions.create({
      product_cart: [{ product_id: topUp.product_id, quantity: 2 }],
      customer: { customer_id: existing.customer_id },
      return_url: 'http://mailkit.test/back',
    });
    const redirect = new URL(await h.sb.payCheckout(session.session_id));
    expect(redirect.searchParams.get('customer_id')).toBe(existing.customer_id);
    const balance = await h.client.creditEntitlements.balances.retrieve(existing.customer_id, { credit_entitlement_id: entitlement.id });
    expect(balance.balance).toBe('10000');
    const webhooks = await settledWebhooks(h);
    expect(webhooks.find((w) => w.type === 'payment.succeeded')!.payload.data.total_amount).toBe(1800);
  });

  it('finds an existing customer by email instead of creating a second one', async () => {
    const { topUp } = await provision(h.client);
    const first = await buyWithCard(h, topUp.product_id, { email: 'dee@example.com' });
    const second = await buyWithCard(h, topUp.product_id, { email: 'DEE@example.com' });
    expect(second.location.searchParams.get('customer_id')).toBe(first.location.searchParams.get('customer_id'));
    const list = await h.client.customers.list({ email: 'dee@example.com' });
    expect(list.items).toHaveLength(1);
  });
});

describe('declining', () => {
  it('sends payment.failed, redirects with status=failed and grants nothing', async () => {
    const { entitlement, topUp } = await provision(h.client);
    const { sessionId, location } = await buyWithCard(h, topUp.product_id, { email: 'eve@example.com' }, 'decline');
    expect(location.searchParams.get('status')).toBe('failed');
    const customerId = location.searchParams.get('customer_id')!;
    await expect(h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlement.id })).rejects.toMatchObject({
      status: 404,
    });
    const webhooks = await settledWebhooks(h);
    expect(webhooks.map((w) => w.type)).toEqual(['payment.failed']);
    expect(webhooks[0]!.payload.data).toMatchObject({ status: 'failed', error_code: 'CARD_DECLINED', checkout_session_id: sessionId });
    const status = await h.client.checkoutSessions.retrieve(sessionId);
    expect(status.payment_status).toBe('failed');

    // The customer can still pay the same session afterwards.
    const paid = new URL(await h.sb.payCheckout(sessionId));
    expect(paid.searchParams.get('status')).toBe('succeeded');
  });
});
