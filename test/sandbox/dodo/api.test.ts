import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertResponseMatchesSpec } from '../../support/openapi';
import { provision, rawApi, startHarness, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe('authentication', () => {
  it('answers 401 in the error envelope without a bearer key, and accepts any key', async () => {
    const none = await rawApi(h, 'GET', '/customers');
    expect(none).toEqual({ status: 401, body: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    const empty = await rawApi(h, 'GET', '/customers', { headers: { authorization: 'Bearer ' } });
    expect(empty.status).toBe(401);
    const any = await rawApi(h, 'GET', '/customers', { headers: { authorization: 'Bearer sk_whatever' } });
    expect(any.status).toBe(200);
  });
});

describe('unknown routes', () => {
  it('answer 404 in the envelope', async () => {
    const res = await rawApi(h, 'GET', '/payouts', { headers: { authorization: 'Bearer t' } });
    expect(res).toEqual({ status: 404, body: { code: 'NOT_FOUND', message: expect.stringContaining('/payouts') } });
  });
});

describe('faults', () => {
  it("injects a status in Dodo's envelope, ahead of auth", async () => {
    h.sb.faults.inject({ status: 503, count: 1, match: /^GET \/customers$/ });
    const res = await rawApi(h, 'GET', '/customers');
    expect(res).toEqual({ status: 503, body: { code: 'SERVICE_UNAVAILABLE', message: expect.any(String) } });
    expect((await rawApi(h, 'GET', '/customers', { headers: { authorization: 'Bearer t' } })).status).toBe(200);
    expect(h.sb.faults.requestCount(/customers/)).toBe(2);
  });
});

describe('credit entitlements', () => {
  it('creates, lists, gets, patches and deletes', async () => {
    const { entitlement } = await provision(h.client);
    expect(entitlement.id).toMatch(/^cde_[0-9A-Za-z]{21}$/);
    expect(entitlement).toMatchObject({
      name: 'Email Credits',
      unit: 'email',
      precision: 0,
      expires_after_days: 30,
      overage_behavior: 'forgive_at_reset',
    });

    const got = await h.client.creditEntitlements.retrieve(entitlement.id);
    assertResponseMatchesSpec('dodo', 'get', '/credit-entitlements/{id}', 200, got);
    expect(got).toEqual(entitlement);

    const list = await h.client.creditEntitlements.list();
    assertResponseMatchesSpec('dodo', 'get', '/credit-entitlements', 200, { items: list.items });
    expect(list.items.map((e) => e.id)).toEqual([entitlement.id]);

    await h.client.creditEntitlements.update(entitlement.id, { description: 'One email each' });
    expect((await h.client.creditEntitlements.retrieve(entitlement.id)).description).toBe('One email each');

    await h.client.creditEntitlements.delete(entitlement.id);
    await expect(h.client.creditEntitlements.retrieve(entitlement.id)).rejects.toMatchObject({ status: 404 });
    await expect(h.client.creditEntitlements.delete(entitlement.id)).rejects.toMatchObject({ status: 410 });
    expect((await h.client.creditEntitlements.list({ deleted: true })).items.map((e) => e.id)).toEqual([entitlement.id]);
  });

  it('refuses a body without required fields with 422', async () => {
    await expect(h.client.creditEntitlements.create({ name: 'x' } as never)).rejects.toMatchObject({
      status: 422,
      error: { code: 'INVALID_REQUEST_BODY' },
    });
  });
});

describe('products', () => {
  it('carries credit entitlement attachments and lists with filters', async () => {
    const { entitlement, plan, topUp } = await provision(h.client);
    expect(plan.product_id).toMatch(/^pdt_[0-9A-Za-z]{21}$/);
    expect(plan.is_recurring).toBe(true);
    expect(plan.credit_entitlements).toEqual([
      expect.objectContaining({
        credit_entitlement_id: entitlement.id,
        credit_entitlement_name: 'Email Credits',
        credit_entitlement_unit: 'email',
        credits_amount: '5000',
        low_balance_threshold_percent: 20,
      }),
    ]);
    const got = await h.client.products.retrieve(topUp.product_id);
    assertResponseMatchesSpec('dodo', 'get', '/products/{id}', 200, got);
    expect(got.is_recurring).toBe(false);

    const all = await h.client.products.list();
    assertResponseMatchesSpec('dodo', 'get', '/products', 200, { items: all.items });
    expect(all.items.map((p) => p.product_id).sort()).toEqual([plan.product_id, topUp.product_id].sort());
    expect((await h.client.products.list({ recurring: true })).items.map((p) => p.product_id)).toEqual([plan.product_id]);

    await h.client.products.update(topUp.product_id, { name: 'Top-Up' });
    expect((await h.client.products.retrieve(topUp.product_id)).name).toBe('Top-Up');
    await h.client.products.archive(topUp.product_id);
    expect((await h.client.products.list()).items.map((p) => p.product_id)).toEqual([plan.product_id]);
    expect((await h.client.products.list({ archived: true })).items.map((p) => p.product_id)).toEqual([topUp.product_id]);
  });

  it('refuses an attachment to an unknown entitlement or a fractional amount at precision 0', async () => {
    const { entitlement } = await provision(h.client);
    const price = { type: 'one_time_price' as const, price: 100, currency: 'USD' as const, discount: 0, purchasing_power_parity: false };
    await expect(
      h.client.products.create({
        name: 'x',
        tax_category: 'saas',
        price,
        credit_entitlements: [{ credit_entitlement_id: 'cde_nope', credits_amount: '1' }],
      }),
    ).rejects.toMatchObject({ status: 422 });
    await expect(
      h.client.products.create({
        name: 'x',
        tax_category: 'saas',
        price,
        credit_entitlements: [{ credit_entitlement_id: entitlement.id, credits_amount: '1.5' }],
      }),
    ).rejects.toMatchObject({ status: 422 });
  });
});

describe('customers', () => {
  it('creates, gets, patches, lists with filters and pages', async () => {
    const created = [];
    for (let i = 0; i < 12; i += 1) {
      const c = await h.client.customers.create({ email: `user${i}@example.com`, name: i === 3 ? 'Grace Hopper' : `User ${i}` });
      assertResponseMatchesSpec('dodo', 'post', '/customers', 200, c);
      created.push(c);
    }
    expect(created[0]!.customer_id).toMatch(/^cus_[0-9A-Za-z]{21}$/);
    const again = await h.client.customers.create({ email: 'USER0@example.com', name: 'Dup' });
    expect(again.customer_id).toBe(created[0]!.customer_id);

    const page0 = await h.client.customers.list({ page_number: 0 });
    assertResponseMatchesSpec('dodo', 'get', '/customers', 200, { items: page0.items });
    expect(page0.items).toHaveLength(10);
    const page1 = await h.client.customers.list({ page_number: 1 });
    expect(page1.items).toHaveLength(2);
    const seen = [];
    for await (const c of h.client.customers.list({ page_number: 0, page_size: 5 })) seen.push(c.customer_id);
    expect(seen.sort()).toEqual(created.map((c) => c.customer_id).sort());

    expect((await h.client.customers.list({ name: 'hopper' })).items.map((c) => c.email)).toEqual(['user3@example.com']);
    expect((await h.client.customers.list({ email: 'user5@example.com' })).items).toHaveLength(1);

    const patched = await h.client.customers.update(created[1]!.customer_id, { name: 'Renamed', metadata: { plan: 'pro' } });
    assertResponseMatchesSpec('dodo', 'patch', '/customers/{customer_id}', 200, patched);
    expect(patched).toMatchObject({ name: 'Renamed', metadata: { plan: 'pro' } });
    await expect(h.client.customers.retrieve('cus_missing')).rejects.toMatchObject({ status: 404 });
  });

  it('lists balances per entitlement and per customer', async () => {
    const { entitlement } = await provision(h.client);
    const c = await h.client.customers.create({ email: 'bal@example.com', name: 'Bal' });
    await h.client.creditEntitlements.balances.createLedgerEntry(c.customer_id, {
      credit_entitlement_id: entitlement.id,
      entry_type: 'credit',
      amount: '7',
    });
    const balances = await h.client.creditEntitlements.balances.list(entitlement.id, { customer_id: c.customer_id });
    assertResponseMatchesSpec('dodo', 'get', '/credit-entitlements/{credit_entitlement_id}/balances', 200, { items: balances.items });
    expect(balances.items.map((b) => [b.customer_id, b.balance, b.overage])).toEqual([[c.customer_id, '7', '0']]);
    const mine = await h.client.customers.listCreditEntitlements(c.customer_id);
    assertResponseMatchesSpec('dodo', 'get', '/customers/{customer_id}/credit-entitlements', 200, mine);
    expect(mine.items).toEqual([expect.objectContaining({ credit_entitlement_id: entitlement.id, balance: '7', name: 'Email Credits' })]);
  });
});
