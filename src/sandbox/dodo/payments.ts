import type { Payment } from 'dodopayments/resources/payments';
import type { Customer } from 'dodopayments/resources/customers/customers';
import type { JsonStore } from '../../lib/json-store';
import { parseAmount } from './amounts';
import type { SandboxClock } from './clock';
import type { CreditLedger } from './credit-ledger';
import { newId } from './ids';
import type { Emit } from './ledger-entries';
import type { DodoState, RolloverPolicy, StoredAttachment, StoredEntitlement, StoredProduct, StoredSession, StoredSubscription } from './state';

/** What billing's pieces (checkout payment, renewals) work with. */
export interface BillingDeps {
  store: JsonStore<DodoState>;
  clock: SandboxClock;
  ledger: CreditLedger;
  emit: Emit;
}

const DAY_MS = 86_400_000;

/** A payment record (`pay_`) at the pinned clock, for a checkout, a decline or a renewal; not stored here. */
export function buildPayment(
  deps: BillingDeps,
  args: {
    customer: Customer;
    total: number;
    currency: Payment['currency'];
    status: 'succeeded' | 'failed';
    session: StoredSession | null;
    subscription: StoredSubscription | null;
    productCart: Array<{ product_id: string; quantity: number }> | null;
  },
): Payment {
  const state = deps.store.data;
  const now = deps.clock.nowIso();
  const failed = args.status === 'failed';
  return {
    payment_id: newId('pay'),
    business_id: state.businessId,
    brand_id: state.brandId,
    status: args.status,
    total_amount: args.total,
    currency: args.currency,
    settlement_amount: args.total,
    settlement_currency: args.currency,
    settlement_tax: 0,
    tax: 0,
    customer: {
      customer_id: args.customer.customer_id,
      email: args.customer.email,
      name: args.customer.name,
      phone_number: args.customer.phone_number ?? null,
      metadata: args.customer.metadata ?? {},
    },
    billing: args.session?.billing ?? args.subscription?.billing ?? { country: 'US' },
    metadata: args.session?.metadata ?? args.subscription?.metadata ?? {},
    checkout_session_id: args.session?.id ?? null,
    subscription_id: args.subscription?.subscription_id ?? null,
    subscription_ids: args.subscription ? [args.subscription.subscription_id] : [],
    is_multi_subscription: false,
    product_cart: args.productCart,
    payment_method: 'card',
    payment_method_type: 'visa',
    payment_method_id: null,
    card_last_four: failed ? '0002' : '4242',
    card_network: 'VISA',
    card_type: 'CREDIT',
    card_issuing_country: 'US',
    card_holder_name: args.customer.name,
    payment_provider: 'dodo',
    payment_link: null,
    is_update_payment_method: false,
    digital_products_delivered: false,
    disputes: [],
    refunds: [],
    refund_status: null,
    retry_attempt: 0,
    error_code: failed ? 'CARD_DECLINED' : null,
    error_message: failed ? 'The card was declined (sandbox "Decline" button).' : null,
    discount_id: null,
    discounts: null,
    invoice_id: null,
    invoice_url: null,
    custom_field_responses: null,
    created_at: now,
    updated_at: now,
  };
}

/** Grants a product's attached credits for one purchase or one billing cycle. */
export function grantProductCredits(
  deps: BillingDeps,
  args: {
    product: StoredProduct;
    quantity: number;
    customerId: string;
    payment: Payment;
    subscription: StoredSubscription | null;
  },
): void {
  for (const attachment of args.product.attachments) {
    const entitlement = deps.store.data.entitlements[attachment.credit_entitlement_id];
    if (!entitlement) continue;
    const parsed = parseAmount(attachment.credits_amount, entitlement.precision);
    if (!parsed.ok) continue;
    // The attachment's own expiry wins; "import default credit settings" falls back to the entitlement's.
    const days = attachment.expires_after_days ?? entitlement.expires_after_days ?? null;
    deps.ledger.credit({
      rollover: rolloverPolicy(attachment, entitlement, days),
      entitlement,
      customerId: args.customerId,
      units: parsed.units * args.quantity,
      sourceType: args.subscription ? 'subscription' : 'one_time',
      sourceId: args.subscription?.subscription_id ?? args.payment.payment_id,
      expiresAt: days == null ? null : new Date(deps.clock.now().getTime() + days * DAY_MS).toISOString(),
      transactionType: 'credit_added',
      description: args.subscription ? `Subscription credits for ${args.product.name}` : `Credits for ${args.product.name}`,
      metadata: args.payment.metadata,
      referenceType: 'payment',
      referenceId: args.payment.payment_id,
      idempotencyKey: null,
    });
  }
}

/**
 * The rollover rule a product grant carries: the attachment's fields win, the entitlement's fill
 * the gaps (as with expiry). A null percentage means everything left rolls over.
 */
export function rolloverPolicy(
  attachment: StoredAttachment | null,
  entitlement: StoredEntitlement,
  lifetimeDays: number | null,
): RolloverPolicy | null {
  const enabled = attachment?.rollover_enabled ?? entitlement.rollover_enabled;
  if (!enabled) return null;
  const count = attachment?.rollover_timeframe_count ?? entitlement.rollover_timeframe_count ?? null;
  const interval = attachment?.rollover_timeframe_interval ?? entitlement.rollover_timeframe_interval ?? null;
  return {
    percentage: attachment?.rollover_percentage ?? entitlement.rollover_percentage ?? 100,
    max_count: attachment?.max_rollover_count ?? entitlement.max_rollover_count ?? null,
    timeframe: count !== null && interval !== null ? { count, interval } : null,
    lifetime_days: lifetimeDays,
  };
}
