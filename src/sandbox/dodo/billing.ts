import type { Payment } from 'dodopayments/resources/payments';
import type { Customer } from 'dodopayments/resources/customers/customers';
import type { JsonStore } from '../../lib/json-store';
import { parseAmount } from './amounts';
import { addInterval, type SandboxClock } from './clock';
import type { CreditLedger, Emit } from './credit-ledger';
import { newId } from './ids';
import { subscriptionView } from './serialize';
import type { DodoState, RolloverPolicy, StoredAttachment, StoredEntitlement, StoredProduct, StoredSession, StoredSubscription } from './state';

/** Checkout payment, declines, renewals and the clock's due-event replay. */
export interface Billing {
  /** Pays a session (idempotent: a paid session just returns its redirect). */
  pay(sessionId: string, details?: { email?: string; name?: string }): string;
  /** Declines a session's payment attempt (payment.failed); the session stays open. */
  decline(sessionId: string, details?: { email?: string; name?: string }): string;
  /** Replays every renewal and expiry due up to `until`, in time order. Returns how many ran. */
  processDue(until: Date): number;
  /**
   * Renews one active subscription now, as if its billing date had come: the cycle restarts
   * today (subscription.renewed, payment.succeeded, credit.added). For the console's trigger.
   */
  renewNow(subscriptionId: string): void;
  /** Finds or creates a customer (email match is case-insensitive). */
  findOrCreateCustomer(details: { email: string; name?: string | null; phone_number?: string | null }): Customer;
}

/** A checkout error the hosted page shows (and payCheckout throws). */
export class CheckoutError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const DAY_MS = 86_400_000;

/** Builds billing over the store and the ledger. */
export function createBilling(deps: { store: JsonStore<DodoState>; clock: SandboxClock; ledger: CreditLedger; emit: Emit }): Billing {
  const { store, clock, ledger, emit } = deps;
  const state = () => store.data;

  const findOrCreateCustomer: Billing['findOrCreateCustomer'] = (details) => {
    const email = details.email.trim();
    const existing = Object.values(state().customers).find((c) => c.email.toLowerCase() === email.toLowerCase());
    if (existing) return existing;
    const customer: Customer = {
      customer_id: newId('cus'),
      business_id: state().businessId,
      email,
      name: details.name?.trim() || email.split('@')[0] || email,
      phone_number: details.phone_number ?? null,
      metadata: {},
      created_at: clock.nowIso(),
    };
    state().customers[customer.customer_id] = customer;
    return customer;
  };

  const resolveCustomer = (session: StoredSession, details?: { email?: string; name?: string }): Customer => {
    if (session.customer_id) return state().customers[session.customer_id]!;
    if (session.customer && 'customer_id' in session.customer) {
      const c = state().customers[session.customer.customer_id];
      if (!c) throw new CheckoutError(404, `Customer ${session.customer.customer_id} not found`);
      return c;
    }
    const email = (session.customer && 'email' in session.customer ? session.customer.email : details?.email)?.trim();
    if (!email) throw new CheckoutError(422, 'An email address is required to pay');
    const name = session.customer && 'email' in session.customer ? session.customer.name : details?.name;
    return findOrCreateCustomer({ email, name, phone_number: session.customer && 'email' in session.customer ? session.customer.phone_number : null });
  };

  const cartProducts = (session: StoredSession) =>
    session.product_cart.map((item) => {
      const product = state().products[item.product_id];
      if (!product) throw new CheckoutError(404, `Product ${item.product_id} not found`);
      return { product, quantity: item.quantity };
    });

  const buildPayment = (args: {
    customer: Customer;
    total: number;
    currency: Payment['currency'];
    status: 'succeeded' | 'failed';
    session: StoredSession | null;
    subscription: StoredSubscription | null;
    productCart: Array<{ product_id: string; quantity: number }> | null;
  }): Payment => {
    const now = clock.nowIso();
    const failed = args.status === 'failed';
    return {
      payment_id: newId('pay'),
      business_id: state().businessId,
      brand_id: state().brandId,
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
  };

  /** Grants a product's attached credits for one purchase or one billing cycle. */
  const grantProductCredits = (args: {
    product: StoredProduct;
    quantity: number;
    customerId: string;
    payment: Payment;
    subscription: StoredSubscription | null;
  }) => {
    for (const attachment of args.product.attachments) {
      const entitlement = state().entitlements[attachment.credit_entitlement_id];
      if (!entitlement) continue;
      const parsed = parseAmount(attachment.credits_amount, entitlement.precision);
      if (!parsed.ok) continue;
      // The attachment's own expiry wins; "import default credit settings" falls back to the entitlement's.
      const days = attachment.expires_after_days ?? entitlement.expires_after_days ?? null;
      ledger.credit({
        rollover: rolloverPolicy(attachment, entitlement, days),
        entitlement,
        customerId: args.customerId,
        units: parsed.units * args.quantity,
        sourceType: args.subscription ? 'subscription' : 'one_time',
        sourceId: args.subscription?.subscription_id ?? args.payment.payment_id,
        expiresAt: days == null ? null : new Date(clock.now().getTime() + days * DAY_MS).toISOString(),
        transactionType: 'credit_added',
        description: args.subscription ? `Subscription credits for ${args.product.name}` : `Credits for ${args.product.name}`,
        metadata: args.payment.metadata,
        referenceType: 'payment',
        referenceId: args.payment.payment_id,
        idempotencyKey: null,
      });
    }
  };

  const redirectFor = (session: StoredSession, params: Record<string, string | null>): string => {
    // A session stored before return URLs were checked may hold javascript: or data:: never followed.
    if (!session.return_url || !/^https?:\/\//i.test(session.return_url)) return '';
    const url = new URL(session.return_url);
    for (const [k, v] of Object.entries(params)) if (v) url.searchParams.set(k, v);
    return url.toString();
  };

  const renew = (sub: StoredSubscription) => {
    const product = state().products[sub.product_id];
    const customer = state().customers[sub.customer_id];
    if (!product || !customer || product.price.type !== 'recurring_price') {
      sub.status = 'cancelled';
      return;
    }
    const price = product.price;
    sub.previous_billing_date = sub.next_billing_date;
    sub.next_billing_date = addInterval(new Date(sub.next_billing_date), price.payment_frequency_interval, price.payment_frequency_count).toISOString();
    const payment = buildPayment({
      customer,
      total: price.price * sub.quantity,
      currency: price.currency,
      status: 'succeeded',
      session: null,
      subscription: sub,
      productCart: null,
    });
    state().payments[payment.payment_id] = payment;
    store.save();
    emit('subscription.renewed', { payload_type: 'Subscription', ...subscriptionView(state(), sub) }, sub.customer_id);
    emit('payment.succeeded', { payload_type: 'Payment', ...payment }, sub.customer_id);
    grantProductCredits({ product, quantity: sub.quantity, customerId: sub.customer_id, payment, subscription: sub });
  };

  const payNow = (sessionId: string, details?: { email?: string; name?: string }): string => {
    const session = state().sessions[sessionId];
    if (!session) throw new CheckoutError(404, `Checkout session ${sessionId} not found`);
    // Paying twice must never grant twice: a paid session only repeats its redirect.
    if (session.status === 'paid') return session.redirect_url ?? '';
    const items = cartProducts(session);
    const customer = resolveCustomer(session, details);
    const recurring = items.find((i) => i.product.price.type === 'recurring_price');
    const first = items[0]!.product.price;
    const currency = 'currency' in first ? first.currency : 'USD';
    const total = items.reduce((sum, i) => sum + ('price' in i.product.price ? i.product.price.price : 0) * i.quantity, 0);

    let subscription: StoredSubscription | null = null;
    if (recurring && recurring.product.price.type === 'recurring_price') {
      const price = recurring.product.price;
      const now = clock.now();
      subscription = {
        subscription_id: newId('sub'),
        customer_id: customer.customer_id,
        product_id: recurring.product.product_id,
        quantity: recurring.quantity,
        status: 'active',
        created_at: now.toISOString(),
        previous_billing_date: now.toISOString(),
        next_billing_date: addInterval(now, price.payment_frequency_interval, price.payment_frequency_count).toISOString(),
        metadata: session.metadata,
        billing: session.billing,
        checkout_session_id: session.id,
      };
      state().subscriptions[subscription.subscription_id] = subscription;
    }
    const payment = buildPayment({
      customer,
      total,
      currency,
      status: 'succeeded',
      session,
      subscription,
      productCart: subscription ? null : session.product_cart,
    });
    state().payments[payment.payment_id] = payment;
    session.status = 'paid';
    session.payment_id = payment.payment_id;
    session.payment_status = 'succeeded';
    session.customer_id = customer.customer_id;
    session.subscription_id = subscription?.subscription_id ?? null;
    session.redirect_url = redirectFor(session, {
      status: 'succeeded',
      payment_id: payment.payment_id,
      subscription_id: subscription?.subscription_id ?? null,
      customer_id: customer.customer_id,
      session_id: session.id,
    });
    store.save();

    // Order (documented in the README): subscription.active, payment.succeeded, then one
    // credit.added per granted entitlement, as Dodo's subscription guide sequences them.
    if (subscription) emit('subscription.active', { payload_type: 'Subscription', ...subscriptionView(state(), subscription) }, customer.customer_id);
    emit('payment.succeeded', { payload_type: 'Payment', ...payment }, customer.customer_id);
    for (const item of items) {
      grantProductCredits({
        product: item.product,
        quantity: item.quantity,
        customerId: customer.customer_id,
        payment,
        subscription: item.product.price.type === 'recurring_price' ? subscription : null,
      });
    }
    return session.redirect_url;
  };

  const declineNow = (sessionId: string, details?: { email?: string; name?: string }): string => {
    const session = state().sessions[sessionId];
    if (!session) throw new CheckoutError(404, `Checkout session ${sessionId} not found`);
    if (session.status === 'paid') return session.redirect_url ?? '';
    const items = cartProducts(session);
    const customer = resolveCustomer(session, details);
    const first = items[0]!.product.price;
    const payment = buildPayment({
      customer,
      total: items.reduce((sum, i) => sum + ('price' in i.product.price ? i.product.price.price : 0) * i.quantity, 0),
      currency: 'currency' in first ? first.currency : 'USD',
      status: 'failed',
      session,
      subscription: null,
      productCart: session.product_cart,
    });
    state().payments[payment.payment_id] = payment;
    session.payment_id = payment.payment_id;
    session.payment_status = 'failed';
    store.save();
    emit('payment.failed', { payload_type: 'Payment', ...payment }, customer.customer_id);
    return redirectFor(session, { status: 'failed', payment_id: payment.payment_id, customer_id: customer.customer_id, session_id: session.id });
  };

  const api: Billing = {
    findOrCreateCustomer,

    pay(sessionId, details) {
      // One instant for the whole payment, so subscription, payment and grants share a timestamp.
      return clock.pinned(clock.now(), () => payNow(sessionId, details));
    },

    decline(sessionId, details) {
      return clock.pinned(clock.now(), () => declineNow(sessionId, details));
    },

    renewNow(subscriptionId) {
      const sub = state().subscriptions[subscriptionId];
      if (!sub || sub.status !== 'active') throw new Error(`No active subscription ${subscriptionId}`);
      const now = clock.now();
      api.processDue(now);
      sub.next_billing_date = now.toISOString();
      api.processDue(now);
    },

    processDue(until) {
      let ran = 0;
      // Bounded so a far jump with a daily plan cannot spin forever.
      for (let guard = 0; guard < 100_000; guard += 1) {
        let nextAt = Number.POSITIVE_INFINITY;
        let run: (() => void) | null = null;
        for (const g of state().grants) {
          if (g.is_expired || !g.expires_at) continue;
          const at = Date.parse(g.expires_at);
          if (at <= until.getTime() && at < nextAt) {
            nextAt = at;
            run = () => ledger.expire(g);
          }
        }
        for (const s of Object.values(state().subscriptions)) {
          if (s.status !== 'active') continue;
          const at = Date.parse(s.next_billing_date);
          // `<` not `<=`: at the same instant an old grant expires before the new cycle is granted.
          if (at <= until.getTime() && at < nextAt) {
            nextAt = at;
            run = () => renew(s);
          }
        }
        if (!run) break;
        clock.pinned(new Date(nextAt), run);
        ran += 1;
      }
      if (ran > 0) store.save();
      return ran;
    },
  };
  return api;
}

/**
 * The rollover rule a product grant carries: the attachment's fields win, the entitlement's fill
 * the gaps (as with expiry). A null percentage means everything left rolls over.
 */
export function rolloverPolicy(attachment: StoredAttachment | null, entitlement: StoredEntitlement, lifetimeDays: number | null): RolloverPolicy | null {
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
