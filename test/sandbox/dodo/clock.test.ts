import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertResponseMatchesSpec } from '../../support/openapi';
import { buyWithCard, provision, settledWebhooks, startHarness, type Harness } from './harness';

const DAY = 86_400_000;
let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe('advanceClock', () => {
  it('moves now() and every timestamp the API writes', async () => {
    const before = h.sb.now().getTime();
    await h.sb.advanceClock(10 * DAY);
    expect(h.sb.now().getTime() - before).toBeGreaterThanOrEqual(10 * DAY);
    expect(h.sb.now().getTime() - before).toBeLessThan(10 * DAY + 5_000);
    const c = await h.client.customers.create({ email: 't@example.com', name: 'T' });
    expect(Math.abs(Date.parse(c.created_at) - h.sb.now().getTime())).toBeLessThan(5_000);
  });

  it('expires a grant after its days: credit.expired for what was left, balance drops', async () => {
    const { entitlement, topUp } = await provision(h.client);
    const bought = await buyWithCard(h, topUp.product_id, { email: 'exp@example.com' });
    const customerId = bought.location.searchParams.get('customer_id')!;
    await h.client.creditEntitlements.balances.createLedgerEntry(customerId, {
      credit_entitlement_id: entitlement.id,
      entry_type: 'debit',
      amount: '1200',
    });

    await h.sb.advanceClock(29 * DAY);
    let balance = await h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlement.id });
    expect(balance.balance).toBe('3800');

    await h.sb.advanceClock(1 * DAY + 1_000);
    balance = await h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlement.id });
    expect(balance.balance).toBe('0');

    const webhooks = await settledWebhooks(h);
    const expired = webhooks.filter((w) => w.type === 'credit.expired');
    expect(expired).toHaveLength(1);
    expect(expired[0]!.payload.data).toMatchObject({
      transaction_type: 'credit_expired',
      amount: '3800',
      balance_before: '3800',
      balance_after: '0',
      is_credit: false,
    });

    const grants = await h.client.creditEntitlements.balances.listGrants(customerId, { credit_entitlement_id: entitlement.id, status: 'expired' });
    expect(grants.items).toHaveLength(1);
    expect(grants.items[0]).toMatchObject({ is_expired: true, remaining_amount: '0', initial_amount: '5000' });
    // The entry is dated when the grant expired, not when the clock was read.
    expect(expired[0]!.payload.data.created_at).toBe(grants.items[0]!.expires_at);

    await expect(
      h.client.creditEntitlements.balances.createLedgerEntry(customerId, { credit_entitlement_id: entitlement.id, entry_type: 'debit', amount: '1' }),
    ).rejects.toMatchObject({ status: 400 });
  });

  it('renews a subscription each cycle: new payment, new grant, webhooks in order', async () => {
    const { entitlement, plan } = await provision(h.client);
    const bought = await buyWithCard(h, plan.product_id, { email: 'renew@example.com' });
    const customerId = bought.location.searchParams.get('customer_id')!;
    const subscriptionId = bought.location.searchParams.get('subscription_id')!;
    await settledWebhooks(h);
    const initial = h.received.length;

    await h.client.creditEntitlements.balances.createLedgerEntry(customerId, {
      credit_entitlement_id: entitlement.id,
      entry_type: 'debit',
      amount: '100',
    });
    await h.sb.advanceClock(31 * DAY + 60_000);

    const webhooks = await settledWebhooks(h);
    const after = webhooks.slice(initial).map((w) => w.type);
    const renewed = webhooks.find((w) => w.type === 'subscription.renewed')!;
    const firstActive = webhooks.find((w) => w.type === 'subscription.active')!;
    const firstGrantExpiry = Date.parse(webhooks.find((w) => w.type === 'credit.added')!.payload.data.created_at) + 30 * DAY;
    const renewalAt = Date.parse(firstActive.payload.data.next_billing_date);
    // Events replay in time order: the first grant expires on day 30, the plan renews one calendar
    // month on (28-31 days); at the same instant the expiry goes first.
    expect(after).toEqual(
      firstGrantExpiry <= renewalAt
        ? ['credit.deducted', 'credit.expired', 'subscription.renewed', 'payment.succeeded', 'credit.added']
        : ['credit.deducted', 'subscription.renewed', 'payment.succeeded', 'credit.added', 'credit.expired'],
    );
    expect(renewed.payload.data.subscription_id).toBe(subscriptionId);
    expect(renewed.payload.data.previous_billing_date).toBe(firstActive.payload.data.next_billing_date);
    const renewalPayment = webhooks.filter((w) => w.type === 'payment.succeeded').at(-1)!;
    expect(renewalPayment.payload.data).toMatchObject({ subscription_id: subscriptionId, total_amount: 1900, status: 'succeeded' });
    expect(renewalPayment.payload.data.payment_id).not.toBe(bought.location.searchParams.get('payment_id'));

    const balance = await h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlement.id });
    expect(balance.balance).toBe('5000');
    const grants = await h.client.creditEntitlements.balances.listGrants(customerId, { credit_entitlement_id: entitlement.id });
    assertResponseMatchesSpec('dodo', 'get', '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}/grants', 200, {
      items: grants.items,
    });
    expect(grants.items.map((g) => [g.source_type, g.remaining_amount, g.is_expired])).toEqual([
      ['subscription', '0', true],
      ['subscription', '5000', false],
    ]);

    // Two more cycles in one jump: processed in order, one renewal each.
    await h.sb.advanceClock(62 * DAY);
    const later = (await settledWebhooks(h)).filter((w) => w.type === 'subscription.renewed');
    expect(later).toHaveLength(3);
    const dates = later.map((w) => Date.parse(w.payload.data.previous_billing_date));
    expect([...dates].sort((a, b) => a - b)).toEqual(dates);
  });
});
