import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertResponseMatchesSpec } from '../../support/openapi';
import { buyWithCard, settledWebhooks, startHarness, type Harness } from './harness';

const DAY = 86_400_000;
const GRANTS = '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}/grants';
const LEDGER = '/credit-entitlements/{credit_entitlement_id}/balances/{customer_id}/ledger';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

/** A monthly plan granting 1,000 credits that live 10 days, half of what is left rolling over once. */
async function rolloverPlan(overrides: { rollover_percentage?: number; max_rollover_count?: number | null } = {}) {
  const entitlement = await h.client.creditEntitlements.create({
    name: 'Rollover Credits',
    unit: 'credit',
    precision: 0,
    expires_after_days: 30,
    rollover_enabled: true,
    rollover_percentage: overrides.rollover_percentage ?? 50,
    max_rollover_count: overrides.max_rollover_count === undefined ? 1 : overrides.max_rollover_count,
    overage_enabled: false,
  });
  const plan = await h.client.products.create({
    name: 'Rollover Plan',
    tax_category: 'saas',
    price: {
      type: 'recurring_price',
      price: 1000,
      currency: 'USD',
      discount: 0,
      purchasing_power_parity: false,
      payment_frequency_count: 1,
      payment_frequency_interval: 'Month',
      subscription_period_count: 1,
      subscription_period_interval: 'Year',
    },
    credit_entitlements: [{ credit_entitlement_id: entitlement.id, credits_amount: '1000', expires_after_days: 10 }],
  });
  return { entitlement, plan };
}

async function grantsOf(customerId: string, entitlementId: string) {
  const page = await h.client.creditEntitlements.balances.listGrants(customerId, { credit_entitlement_id: entitlementId, page_size: 100 });
  assertResponseMatchesSpec('dodo', 'get', GRANTS, 200, { items: page.items });
  return page.items;
}

describe("rollover at a grant's expiry", () => {
  describe('when the entitlement has rollover_enabled with 50 % and max_rollover_count 1', () => {
    it('rolls half of what is left into a new grant, expires the rest, then forfeits at the limit', async () => {
      const { entitlement, plan } = await rolloverPlan();
      const { location } = await buyWithCard(h, plan.product_id, { email: 'roll@example.com' });
      const customerId = location.searchParams.get('customer_id')!;
      await h.client.creditEntitlements.balances.createLedgerEntry(customerId, {
        credit_entitlement_id: entitlement.id,
        entry_type: 'debit',
        amount: '201',
      });
      await settledWebhooks(h);
      h.received.length = 0;

      await h.sb.advanceClock(10 * DAY);
      const first = await settledWebhooks(h); // every payload is checked against the spec's webhook schema
      expect(first.map((w) => w.type)).toEqual(['credit.expired', 'credit.rolled_over']);
      const [expired, rolled] = first.map((w) => w.payload.data);
      // 799 left: floor(50 %) = 399 rolls over, 400 expire.
      expect(expired).toMatchObject({
        transaction_type: 'credit_expired',
        amount: '400',
        balance_before: '799',
        balance_after: '399',
        is_credit: false,
      });
      expect(rolled).toMatchObject({
        transaction_type: 'credit_rolled_over',
        amount: '399',
        balance_before: '399',
        balance_after: '399',
        is_credit: true,
      });

      const grants = await grantsOf(customerId, entitlement.id);
      expect(grants).toHaveLength(2);
      const [parent, child] = grants;
      expect(parent).toMatchObject({ is_expired: true, is_rolled_over: true, remaining_amount: '0', rollover_count: 0 });
      expect(child).toMatchObject({
        source_type: 'rollover',
        parent_grant_id: parent!.id,
        rollover_count: 1,
        initial_amount: '399',
        remaining_amount: '399',
        is_expired: false,
        is_rolled_over: false,
      });
      expect(rolled.grant_id).toBe(child!.id);
      // The rolled grant lives as long as the attachment's credits do (10 days).
      expect(Date.parse(child!.expires_at!) - Date.parse(child!.created_at)).toBe(10 * DAY);
      const balance = await h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlement.id });
      expect(balance.balance).toBe('399');

      h.received.length = 0;
      await h.sb.advanceClock(10 * DAY);
      const second = await settledWebhooks(h);
      expect(second.map((w) => w.type)).toEqual(['credit.rollover_forfeited']);
      expect(second[0]!.payload.data).toMatchObject({
        transaction_type: 'rollover_forfeited',
        amount: '399',
        balance_after: '0',
        grant_id: child!.id,
      });

      const ledger = await h.client.creditEntitlements.balances.listLedger(customerId, { credit_entitlement_id: entitlement.id, page_size: 100 });
      assertResponseMatchesSpec('dodo', 'get', LEDGER, 200, { items: ledger.items });
      expect(ledger.items.map((e) => e.transaction_type).slice(0, 3)).toEqual(['rollover_forfeited', 'credit_rolled_over', 'credit_expired']);
    });
  });

  describe('with no rollover limit and 100 %', () => {
    it('keeps carrying everything over, counting each rollover', async () => {
      const { entitlement, plan } = await rolloverPlan({ rollover_percentage: 100, max_rollover_count: null });
      const { location } = await buyWithCard(h, plan.product_id, { email: 'keep@example.com' });
      const customerId = location.searchParams.get('customer_id')!;
      await h.sb.advanceClock(10 * DAY);
      await h.sb.advanceClock(10 * DAY);
      await settledWebhooks(h);
      const grants = await grantsOf(customerId, entitlement.id);
      expect(grants.map((g) => [g.source_type, g.rollover_count, g.remaining_amount])).toEqual([
        ['subscription', 0, '0'],
        ['rollover', 1, '0'],
        ['rollover', 2, '1000'],
      ]);
      expect(h.received.filter((w) => w.type === 'credit.expired')).toHaveLength(0);
    });
  });

  describe('when rollover is off (the tutorial entitlement)', () => {
    it('simply expires, as before', async () => {
      const entitlement = await h.client.creditEntitlements.create({
        name: 'Plain',
        unit: 'c',
        precision: 0,
        rollover_enabled: false,
        overage_enabled: false,
      });
      const c = await h.client.customers.create({ email: 'plain@example.com', name: 'P' });
      await h.client.creditEntitlements.balances.createLedgerEntry(c.customer_id, {
        credit_entitlement_id: entitlement.id,
        entry_type: 'credit',
        amount: '5',
        expires_at: new Date(h.sb.now().getTime() + DAY).toISOString(),
      });
      await h.sb.advanceClock(2 * DAY);
      const hooks = await settledWebhooks(h);
      expect(hooks.map((w) => w.type)).toEqual(['credit.added', 'credit.expired']);
    });
  });
});
