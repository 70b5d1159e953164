import type { CreditEntitlement } from 'dodopayments/resources/credit-entitlements/credit-entitlements';
import type { BalanceListGrantsResponse, CreditLedgerEntry, CustomerCreditBalance } from 'dodopayments/resources/credit-entitlements/balances';
import type { CheckoutSessionStatus } from 'dodopayments/resources/checkout-sessions';
import type { CreditEntitlementMappingResponse, Product, ProductListResponse } from 'dodopayments/resources/products/products';
import type { Subscription } from 'dodopayments/resources/subscriptions';
import { formatAmount } from './amounts';
import type { DodoState, StoredEntitlement, StoredGrant, StoredLedgerEntry, StoredProduct, StoredSession, StoredSubscription } from './state';

/** Wire views: stored records → the shapes Dodo returns, typed with the SDK's own types. */

/** A credit entitlement as GET /credit-entitlements/{id} returns it. */
export function entitlementView(e: StoredEntitlement): CreditEntitlement {
  const { deleted_at: _deleted, ...view } = e;
  return view;
}

function precisionOf(state: DodoState, entitlementId: string): number {
  return state.entitlements[entitlementId]?.precision ?? 0;
}

/** A product with its credit entitlement mappings (names and units looked up live). */
export function productView(state: DodoState, p: StoredProduct): Product {
  const credit_entitlements: CreditEntitlementMappingResponse[] = p.attachments.map((a) => {
    const ent = state.entitlements[a.credit_entitlement_id];
    return {
      id: a.id,
      credit_entitlement_id: a.credit_entitlement_id,
      credit_entitlement_name: ent?.name ?? '',
      credit_entitlement_unit: ent?.unit ?? '',
      credits_amount: a.credits_amount,
      currency: a.currency ?? null,
      expires_after_days: a.expires_after_days ?? null,
      low_balance_threshold_percent: a.low_balance_threshold_percent ?? null,
      max_rollover_count: a.max_rollover_count ?? null,
      overage_behavior: a.overage_behavior ?? ent?.overage_behavior ?? 'forgive_at_reset',
      overage_enabled: a.overage_enabled ?? ent?.overage_enabled ?? false,
      overage_limit: a.overage_limit ?? null,
      price_per_unit: a.price_per_unit ?? null,
      proration_behavior: a.proration_behavior ?? 'prorate',
      rollover_enabled: a.rollover_enabled ?? ent?.rollover_enabled ?? false,
      rollover_percentage: a.rollover_percentage ?? null,
      rollover_timeframe_count: a.rollover_timeframe_count ?? null,
      rollover_timeframe_interval: a.rollover_timeframe_interval ?? null,
      trial_credits: a.trial_credits ?? null,
      trial_credits_expire_after_trial: a.trial_credits_expire_after_trial ?? false,
    };
  });
  return {
    product_id: p.product_id,
    business_id: state.businessId,
    brand_id: state.brandId,
    name: p.name,
    description: p.description,
    price: p.price,
    is_recurring: p.price.type === 'recurring_price',
    tax_category: p.tax_category,
    metadata: p.metadata,
    license_key_enabled: false,
    license_key_activation_message: null,
    license_key_activations_limit: null,
    license_key_duration: null,
    addons: null,
    image: null,
    digital_product_delivery: null,
    product_collection_id: null,
    credit_entitlements,
    entitlements: [],
    created_at: p.created_at,
    updated_at: p.updated_at,
  };
}

/** A product as GET /products lists it (flat price, no credit mappings). */
export function productListItem(state: DodoState, p: StoredProduct): ProductListResponse {
  return {
    product_id: p.product_id,
    business_id: state.businessId,
    name: p.name,
    description: p.description,
    is_recurring: p.price.type === 'recurring_price',
    tax_category: p.tax_category,
    metadata: p.metadata,
    price: 'price' in p.price ? p.price.price : null,
    currency: 'currency' in p.price ? p.price.currency : null,
    tax_inclusive: 'tax_inclusive' in p.price ? (p.price.tax_inclusive ?? null) : null,
    price_detail: p.price,
    image: null,
    entitlements: [],
    created_at: p.created_at,
    updated_at: p.updated_at,
  };
}

/** A ledger entry without the sandbox's bookkeeping fields. */
export function ledgerEntryView(e: StoredLedgerEntry): CreditLedgerEntry {
  const { seq: _s, entry_type: _t, idempotency_key: _k, allocations: _a, ...view } = e;
  return view;
}

/** Active: unexpired with credits left; depleted: unexpired and empty; expired: past expires_at. */
export function grantStatus(g: StoredGrant): 'active' | 'expired' | 'depleted' {
  if (g.is_expired) return 'expired';
  return g.remaining_units > 0 ? 'active' : 'depleted';
}

/** A grant as the grants list returns it. */
export function grantView(state: DodoState, g: StoredGrant): BalanceListGrantsResponse {
  const p = precisionOf(state, g.credit_entitlement_id);
  return {
    id: g.id,
    credit_entitlement_id: g.credit_entitlement_id,
    customer_id: g.customer_id,
    source_type: g.source_type,
    source_id: g.source_id,
    initial_amount: formatAmount(g.initial_units, p),
    remaining_amount: formatAmount(g.remaining_units, p),
    expires_at: g.expires_at,
    is_expired: g.is_expired,
    is_rolled_over: g.is_rolled_over ?? false,
    rollover_count: g.rollover_count ?? 0,
    parent_grant_id: g.parent_grant_id ?? null,
    metadata: g.metadata,
    created_at: g.created_at,
    updated_at: g.updated_at,
  };
}

/** Sum of what is left on unexpired grants: the customer's spendable balance, in units. */
export function balanceUnits(state: DodoState, entitlementId: string, customerId: string): number {
  let total = 0;
  for (const g of state.grants) {
    if (g.credit_entitlement_id === entitlementId && g.customer_id === customerId && !g.is_expired) total += g.remaining_units;
  }
  return total;
}

/** A customer's balance in one entitlement. */
export function balanceView(state: DodoState, entitlementId: string, customerId: string): CustomerCreditBalance | null {
  const b = state.balances[`${entitlementId}:${customerId}`];
  if (!b) return null;
  return {
    id: b.id,
    customer_id: b.customer_id,
    credit_entitlement_id: b.credit_entitlement_id,
    balance: formatAmount(balanceUnits(state, entitlementId, customerId), precisionOf(state, entitlementId)),
    overage: formatAmount(0, precisionOf(state, entitlementId)),
    created_at: b.created_at,
    updated_at: b.updated_at,
    last_transaction_at: b.last_transaction_at,
  };
}

/** A subscription with its credit entitlement cart (live balances). */
export function subscriptionView(state: DodoState, s: StoredSubscription): Subscription {
  const product = state.products[s.product_id];
  const price = product?.price;
  const recurring = price?.type === 'recurring_price' ? price : null;
  const customer = state.customers[s.customer_id];
  return {
    subscription_id: s.subscription_id,
    brand_id: state.brandId,
    status: s.status,
    product_id: s.product_id,
    quantity: s.quantity,
    recurring_pre_tax_amount: (recurring?.price ?? 0) * s.quantity,
    tax_inclusive: recurring?.tax_inclusive ?? false,
    currency: recurring?.currency ?? 'USD',
    trial_period_days: recurring?.trial_period_days ?? 0,
    payment_frequency_count: recurring?.payment_frequency_count ?? 1,
    payment_frequency_interval: recurring?.payment_frequency_interval ?? 'Month',
    subscription_period_count: recurring?.subscription_period_count ?? 1,
    subscription_period_interval: recurring?.subscription_period_interval ?? 'Year',
    created_at: s.created_at,
    previous_billing_date: s.previous_billing_date,
    next_billing_date: s.next_billing_date,
    customer: {
      customer_id: s.customer_id,
      email: customer?.email ?? '',
      name: customer?.name ?? '',
      phone_number: customer?.phone_number ?? null,
      metadata: customer?.metadata ?? {},
    },
    metadata: s.metadata,
    billing: s.billing,
    cancel_at_next_billing_date: false,
    cancelled_at: null,
    expires_at: null,
    on_demand: false,
    has_payment_method: true,
    payment_method_id: null,
    addons: [],
    meters: [],
    meter_credit_entitlement_cart: [],
    credit_entitlement_cart: (product?.attachments ?? []).map((a) => {
      const ent = state.entitlements[a.credit_entitlement_id];
      const p = ent?.precision ?? 0;
      return {
        credit_entitlement_id: a.credit_entitlement_id,
        credit_entitlement_name: ent?.name ?? '',
        unit: ent?.unit ?? '',
        product_id: s.product_id,
        credits_amount: a.credits_amount,
        expires_after_days: a.expires_after_days ?? ent?.expires_after_days ?? null,
        low_balance_threshold_percent: a.low_balance_threshold_percent ?? null,
        max_rollover_count: a.max_rollover_count ?? null,
        overage_enabled: a.overage_enabled ?? ent?.overage_enabled ?? false,
        overage_behavior: a.overage_behavior ?? ent?.overage_behavior ?? 'forgive_at_reset',
        overage_limit: a.overage_limit ?? null,
        rollover_enabled: a.rollover_enabled ?? ent?.rollover_enabled ?? false,
        rollover_percentage: a.rollover_percentage ?? null,
        rollover_timeframe_count: a.rollover_timeframe_count ?? null,
        rollover_timeframe_interval: a.rollover_timeframe_interval ?? null,
        remaining_balance: formatAmount(balanceUnits(state, a.credit_entitlement_id, s.customer_id), p),
        overage_balance: formatAmount(0, p),
      };
    }),
  };
}

/** GET /checkouts/{id}. */
export function sessionStatusView(state: DodoState, s: StoredSession): CheckoutSessionStatus {
  const customer = s.customer_id ? state.customers[s.customer_id] : undefined;
  const requested = s.customer && 'customer_id' in s.customer ? state.customers[s.customer.customer_id] : undefined;
  const details = s.customer && 'email' in s.customer ? s.customer : undefined;
  return {
    id: s.id,
    created_at: s.created_at,
    customer_email: customer?.email ?? requested?.email ?? details?.email ?? null,
    customer_name: customer?.name ?? requested?.name ?? details?.name ?? null,
    payment_id: s.payment_id,
    payment_status: s.payment_status,
  };
}
