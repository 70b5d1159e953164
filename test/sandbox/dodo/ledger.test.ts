import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { APIError } from 'dodopayments';
import { assertResponseMatchesSpec } from '../../support/openapi';
import { buyWithCard, provision, rawApi, settledWebhooks, startHarness, type Harness } from './harness';

const LEDGER_ENTRIES = '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}/ledger-entries';
const GRANTS = '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}/grants';
const LEDGER = '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}/ledger';
const BALANCE = '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

async function entry(
  customerId: string,
  entitlementId: string,
  body: {
    entry_type: 'credit' | 'debit';
    amount: string;
    idempotency_key?: string;
    expires_at?: string;
    reason?: string;
    metadata?: Record<string, string>;
  },
) {
  const res = await h.client.creditEntitlements.balances.createLedgerEntry(customerId, { credit_entitlement_id: entitlementId, ...body });
  assertResponseMatchesSpec('dodo', 'post', LEDGER_ENTRIES, 201, res);
  return res;
}

async function balanceOf(customerId: string, entitlementId: string): Promise<string> {
  const b = await h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlementId });
  assertResponseMatchesSpec('dodo', 'get', BALANCE, 200, b);
  return b.balance;
}

async function grantsOf(customerId: string, entitlementId: string, status?: 'active' | 'expired' | 'depleted') {
  const page = await h.client.creditEntitlements.balances.listGrants(customerId, { credit_entitlement_id: entitlementId, status, page_size: 100 });
  assertResponseMatchesSpec('dodo', 'get', GRANTS, 200, { items: page.items });
  return page.items;
}

describe('POST …/ledger-entries', () => {
  describe('a credit', () => {
    it('creates an api grant, echoes metadata, and emits credit.added', async () => {
      const { entitlement } = await provision(h.client);
      const c = await h.client.customers.create({ email: 'api@example.com', name: 'Api' });
      const expiresAt = new Date(h.sb.now().getTime() + 3 * 86_400_000).toISOString();
      const res = await entry(c.customer_id, entitlement.id, {
        entry_type: 'credit',
        amount: '25',
        expires_at: expiresAt,
        reason: 'goodwill',
        metadata: { ticket: 'T-1' },
      });
      expect(res).toMatchObject({
        entry_type: 'credit',
        is_credit: true,
        amount: '25',
        balance_before: '0',
        balance_after: '25',
        reason: 'goodwill',
        metadata: { ticket: 'T-1' },
      });
      expect(res.id).toMatch(/^cle_[0-9A-Za-z]{21}$/);
      expect(res.grant_id).toMatch(/^cgr_[0-9A-Za-z]{21}$/);
      const [grant] = await grantsOf(c.customer_id, entitlement.id);
      expect(grant).toMatchObject({ id: res.grant_id, source_type: 'api', initial_amount: '25', remaining_amount: '25', expires_at: expiresAt });
      const webhooks = await settledWebhooks(h);
      expect(webhooks.map((w) => w.type)).toEqual(['credit.added']);
      expect(webhooks[0]!.payload.data).toMatchObject({
        id: res.id,
        transaction_type: 'credit_added',
        description: 'goodwill',
        metadata: { ticket: 'T-1' },
      });
    });
  });

  describe('a debit', () => {
    it('consumes grants oldest first across a subscription grant and a top-up grant', async () => {
      const { entitlement, plan, topUp } = await provision(h.client);
      const bought = await buyWithCard(h, plan.product_id, { email: 'fifo@example.com' });
      const customerId = bought.location.searchParams.get('customer_id')!;
      await buyWithCard(h, topUp.product_id, { customer_id: customerId });
      expect(await balanceOf(customerId, entitlement.id)).toBe('10000');

      const d1 = await entry(customerId, entitlement.id, { entry_type: 'debit', amount: '4999' });
      expect(d1).toMatchObject({ is_credit: false, entry_type: 'debit', balance_before: '10000', balance_after: '5001' });
      let [sub, top] = await grantsOf(customerId, entitlement.id);
      expect([sub!.source_type, sub!.remaining_amount, top!.source_type, top!.remaining_amount]).toEqual(['subscription', '1', 'one_time', '5000']);
      expect(d1.grant_id).toBe(sub!.id);

      // This one straddles both grants: 1 from the plan's grant, 2 from the top-up.
      const d2 = await entry(customerId, entitlement.id, { entry_type: 'debit', amount: '3' });
      expect(d2.balance_after).toBe('4998');
      [sub, top] = await grantsOf(customerId, entitlement.id);
      expect([sub!.remaining_amount, top!.remaining_amount]).toEqual(['0', '4998']);
      expect((await grantsOf(customerId, entitlement.id, 'depleted')).map((g) => g.id)).toEqual([sub!.id]);
      expect((await grantsOf(customerId, entitlement.id, 'active')).map((g) => g.id)).toEqual([top!.id]);

      const webhooks = await settledWebhooks(h);
      const deducted = webhooks.filter((w) => w.type === 'credit.deducted');
      expect(deducted.map((w) => w.payload.data.amount)).toEqual(['4999', '3']);
      expect(deducted[0]!.payload.data.transaction_type).toBe('credit_deducted');
    });

    it('answers 400 when the balance is short and changes nothing', async () => {
      const { entitlement } = await provision(h.client);
      const c = await h.client.customers.create({ email: 'short@example.com', name: 'Short' });
      await entry(c.customer_id, entitlement.id, { entry_type: 'credit', amount: '5' });
      await h.sb.webhooks.idle();
      const before = JSON.stringify(h.sb.state());
      const sent = h.received.length;

      const err = await h.client.creditEntitlements.balances
        .createLedgerEntry(c.customer_id, { credit_entitlement_id: entitlement.id, entry_type: 'debit', amount: '6', idempotency_key: 'k-short' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(APIError);
      expect(err).toMatchObject({ status: 400, error: { code: 'INSUFFICIENT_CREDITS' } });
      expect((err as APIError).error).toEqual({ code: 'INSUFFICIENT_CREDITS', message: expect.stringContaining('5 available') });

      await h.sb.webhooks.idle();
      expect(JSON.stringify(h.sb.state())).toBe(before);
      expect(h.received.length).toBe(sent);
      expect(await balanceOf(c.customer_id, entitlement.id)).toBe('5');
      // The refused request did not burn its idempotency key.
      await entry(c.customer_id, entitlement.id, { entry_type: 'debit', amount: '5', idempotency_key: 'k-short' });
      expect(await balanceOf(c.customer_id, entitlement.id)).toBe('0');
    });

    it('answers 400 for a customer who never had credits', async () => {
      const { entitlement } = await provision(h.client);
      const c = await h.client.customers.create({ email: 'none@example.com', name: 'None' });
      await expect(entry(c.customer_id, entitlement.id, { entry_type: 'debit', amount: '1' })).rejects.toMatchObject({ status: 400 });
      await expect(balanceOf(c.customer_id, entitlement.id)).rejects.toMatchObject({ status: 404, error: { code: 'NOT_FOUND' } });
    });
  });

  describe('idempotency_key', () => {
    it('answers 409 on reuse, per entitlement and customer, naming the original entry', async () => {
      const { entitlement } = await provision(h.client);
      const other = await h.client.creditEntitlements.create({
        name: 'SMS',
        unit: 'sms',
        precision: 0,
        rollover_enabled: false,
        overage_enabled: false,
      });
      const a = await h.client.customers.create({ email: 'a@example.com', name: 'A' });
      const b = await h.client.customers.create({ email: 'b@example.com', name: 'B' });
      await entry(a.customer_id, entitlement.id, { entry_type: 'credit', amount: '10' });
      await entry(b.customer_id, entitlement.id, { entry_type: 'credit', amount: '10' });
      await entry(a.customer_id, other.id, { entry_type: 'credit', amount: '10' });

      const first = await entry(a.customer_id, entitlement.id, { entry_type: 'debit', amount: '1', idempotency_key: 'msg-1' });
      const reuse = await rawApi(h, 'POST', `/credit-entitlements/${entitlement.id}/balances/${a.customer_id}/ledger-entries`, {
        headers: { authorization: 'Bearer test', 'content-type': 'application/json' },
        body: JSON.stringify({ entry_type: 'debit', amount: '1', idempotency_key: 'msg-1' }),
      });
      expect(reuse.status).toBe(409);
      expect(reuse.body).toEqual({ code: 'CONFLICT', message: expect.stringContaining(first.id) });
      expect(await balanceOf(a.customer_id, entitlement.id)).toBe('9');

      // The same key is free for another customer and for another entitlement.
      await entry(b.customer_id, entitlement.id, { entry_type: 'debit', amount: '1', idempotency_key: 'msg-1' });
      await entry(a.customer_id, other.id, { entry_type: 'debit', amount: '1', idempotency_key: 'msg-1' });
    });
  });

  describe('validation and 404s', () => {
    it('refuses bad amounts with 400 and bad shapes with 422', async () => {
      const { entitlement } = await provision(h.client);
      const c = await h.client.customers.create({ email: 'v@example.com', name: 'V' });
      for (const amount of ['0', '-1', '1.5', 'abc', '', '12345678901']) {
        await expect(entry(c.customer_id, entitlement.id, { entry_type: 'credit', amount })).rejects.toMatchObject({
          status: 400,
          error: { code: 'INVALID_AMOUNT' },
        });
      }
      expect((await entry(c.customer_id, entitlement.id, { entry_type: 'credit', amount: '2.0' })).amount).toBe('2');
      const path = `/credit-entitlements/${entitlement.id}/balances/${c.customer_id}/ledger-entries`;
      const headers = { authorization: 'Bearer test', 'content-type': 'application/json' };
      const missing = await rawApi(h, 'POST', path, { headers, body: JSON.stringify({ amount: '1' }) });
      expect(missing.status).toBe(422);
      expect(missing.body).toEqual({ code: 'INVALID_REQUEST_BODY', message: expect.stringContaining('entry_type') });
      const wrongType = await rawApi(h, 'POST', path, { headers, body: JSON.stringify({ entry_type: 'debit', amount: 1 }) });
      expect(wrongType.status).toBe(422);
      const badJson = await rawApi(h, 'POST', path, { headers, body: '{"entry_type":' });
      expect(badJson).toEqual({ status: 400, body: { code: 'INVALID_JSON', message: expect.any(String) } });
    });

    it('answers 404 for an unknown customer or entitlement', async () => {
      const { entitlement } = await provision(h.client);
      const c = await h.client.customers.create({ email: 'n@example.com', name: 'N' });
      await expect(entry('cus_unknown', entitlement.id, { entry_type: 'credit', amount: '1' })).rejects.toMatchObject({
        status: 404,
        error: { code: 'NOT_FOUND' },
      });
      await expect(entry(c.customer_id, 'cde_unknown', { entry_type: 'credit', amount: '1' })).rejects.toMatchObject({
        status: 404,
        error: { code: 'NOT_FOUND' },
      });
      await expect(balanceOf(c.customer_id, 'cde_unknown')).rejects.toMatchObject({ status: 404 });
      await expect(grantsOf('cus_unknown', entitlement.id)).rejects.toMatchObject({ status: 404 });
    });
  });
});

describe('GET …/ledger and …/grants pagination', () => {
  it('pages with zero-based page_number, filters, and lets the SDK auto-paginate to the end', async () => {
    const { entitlement } = await provision(h.client);
    const c = await h.client.customers.create({ email: 'p@example.com', name: 'P' });
    for (let i = 0; i < 12; i += 1) await entry(c.customer_id, entitlement.id, { entry_type: 'credit', amount: String(i + 1) });
    for (let i = 0; i < 13; i += 1) await entry(c.customer_id, entitlement.id, { entry_type: 'debit', amount: '1' });

    const first = await h.client.creditEntitlements.balances.listLedger(c.customer_id, { credit_entitlement_id: entitlement.id, page_number: 0 });
    assertResponseMatchesSpec('dodo', 'get', LEDGER, 200, { items: first.items });
    expect(first.items).toHaveLength(10);
    // Newest first.
    expect(first.items[0]!.transaction_type).toBe('credit_deducted');
    expect(first.items[0]!.balance_after).toBe(String(78 - 13));

    const all = [];
    for await (const item of h.client.creditEntitlements.balances.listLedger(c.customer_id, {
      credit_entitlement_id: entitlement.id,
      page_number: 0,
      page_size: 7,
    }))
      all.push(item);
    expect(all).toHaveLength(25);
    expect(new Set(all.map((e) => e.id)).size).toBe(25);

    const credits = await h.client.creditEntitlements.balances.listLedger(c.customer_id, {
      credit_entitlement_id: entitlement.id,
      transaction_type: 'credit_added',
      page_size: 100,
    });
    expect(credits.items).toHaveLength(12);
    const future = new Date(h.sb.now().getTime() + 60_000).toISOString();
    const none = await h.client.creditEntitlements.balances.listLedger(c.customer_id, { credit_entitlement_id: entitlement.id, start_date: future });
    expect(none.items).toEqual([]);
    const past = await h.client.creditEntitlements.balances.listLedger(c.customer_id, {
      credit_entitlement_id: entitlement.id,
      end_date: future,
      page_size: 100,
    });
    expect(past.items).toHaveLength(25);

    const page2 = await h.client.creditEntitlements.balances.listGrants(c.customer_id, {
      credit_entitlement_id: entitlement.id,
      page_number: 1,
      page_size: 5,
    });
    expect(page2.items.map((g) => g.initial_amount)).toEqual(['6', '7', '8', '9', '10']);
    const beyond = await h.client.creditEntitlements.balances.listGrants(c.customer_id, { credit_entitlement_id: entitlement.id, page_number: 9 });
    expect(beyond.items).toEqual([]);
    expect(beyond.hasNextPage()).toBe(false);
    const capped = await h.client.creditEntitlements.balances.listLedger(c.customer_id, { credit_entitlement_id: entitlement.id, page_size: 500 });
    expect(capped.items).toHaveLength(25);
  });
});

describe('credit.balance_low', () => {
  it('fires once when a debit takes the balance below 20% of the plan, and re-arms after a top-up', async () => {
    const { entitlement, plan, topUp } = await provision(h.client);
    const bought = await buyWithCard(h, plan.product_id, { email: 'low@example.com' });
    const customerId = bought.location.searchParams.get('customer_id')!;
    const subscriptionId = bought.location.searchParams.get('subscription_id')!;
    const lowEvents = async () => (await settledWebhooks(h)).filter((w) => w.type === 'credit.balance_low');

    // The tutorial's dashboard step: debit 4,000 by hand → exactly at the threshold, no alert.
    await h.sb.adjustBalance(customerId, entitlement.id, -4000, 'demo');
    expect(await balanceOf(customerId, entitlement.id)).toBe('1000');
    expect(await lowEvents()).toHaveLength(0);
    const adjusted = (await settledWebhooks(h)).filter((w) => w.type === 'credit.manual_adjustment');
    expect(adjusted.map((w) => [w.payload.data.transaction_type, w.payload.data.amount, w.payload.data.is_credit])).toEqual([
      ['manual_adjustment', '4000', false],
    ]);

    await entry(customerId, entitlement.id, { entry_type: 'debit', amount: '1' });
    let low = await lowEvents();
    expect(low).toHaveLength(1);
    expect(low[0]!.payload.data).toEqual({
      payload_type: 'CreditBalanceLow',
      customer_id: customerId,
      subscription_id: subscriptionId,
      credit_entitlement_id: entitlement.id,
      credit_entitlement_name: 'Email Credits',
      available_balance: '999',
      subscription_credits_amount: '5000',
      threshold_percent: 20,
      threshold_amount: '1000',
      brand_id: expect.any(String),
    });
    // credit.balance_low follows the credit.deducted that caused it.
    const types = (await settledWebhooks(h)).map((w) => w.type);
    expect(types.slice(-2)).toEqual(['credit.deducted', 'credit.balance_low']);

    await entry(customerId, entitlement.id, { entry_type: 'debit', amount: '1' });
    await entry(customerId, entitlement.id, { entry_type: 'debit', amount: '500' });
    expect(await lowEvents()).toHaveLength(1);

    // Back above the threshold re-arms it; the next crossing fires again.
    await buyWithCard(h, topUp.product_id, { customer_id: customerId });
    expect(await balanceOf(customerId, entitlement.id)).toBe('5498');
    await entry(customerId, entitlement.id, { entry_type: 'debit', amount: '4498' });
    expect(await lowEvents()).toHaveLength(1);
    await entry(customerId, entitlement.id, { entry_type: 'debit', amount: '1' });
    low = await lowEvents();
    expect(low).toHaveLength(2);
    expect(low[1]!.payload.data.available_balance).toBe('999');
  });

  it('never fires for a customer without a subscription threshold', async () => {
    const { entitlement, topUp } = await provision(h.client);
    const bought = await buyWithCard(h, topUp.product_id, { email: 'nosub@example.com' });
    const customerId = bought.location.searchParams.get('customer_id')!;
    await entry(customerId, entitlement.id, { entry_type: 'debit', amount: '4999' });
    expect((await settledWebhooks(h)).filter((w) => w.type === 'credit.balance_low')).toHaveLength(0);
  });
});

describe('concurrency', () => {
  it('200 concurrent debits against 50 credits: exactly 50 succeed', async () => {
    const { entitlement } = await provision(h.client);
    const c = await h.client.customers.create({ email: 'race@example.com', name: 'Race' });
    await entry(c.customer_id, entitlement.id, { entry_type: 'credit', amount: '50' });
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) =>
        h.client.creditEntitlements.balances.createLedgerEntry(c.customer_id, {
          credit_entitlement_id: entitlement.id,
          entry_type: 'debit',
          amount: '1',
          idempotency_key: `race-${i}`,
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(ok).toHaveLength(50);
    expect(refused).toHaveLength(150);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ status: 400 });
    expect(await balanceOf(c.customer_id, entitlement.id)).toBe('0');
    const balancesAfter = ok.map((r) => Number((r as PromiseFulfilledResult<{ balance_after: string }>).value.balance_after)).sort((a, b) => a - b);
    expect(balancesAfter).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});
