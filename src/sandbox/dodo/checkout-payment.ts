import type { Payment } from 'dodopayments/resources/payments';
import type { Customer } from 'dodopayments/resources/customers/customers';
import { newId } from './ids';
import { buildPayment, grantProductCredits, type BillingDeps } from './payments';
import { subscriptionView } from './serialize';
import type { StoredProduct, StoredSession } from './state';
import { startSubscription } from './subscriptions';

/** What the hosted page's form adds when the session has no customer of its own. */
export type PayerDetails = { email?: string; name?: string };

/** A checkout error the hosted page shows (and payCheckout throws). */
export class CheckoutError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type CartItem = { product: StoredProduct; quantity: number };

/** Finds or creates a customer (email match is case-insensitive); the caller saves. */
export function findOrCreateCustomer(deps: BillingDeps, details: { email: string; name?: string | null; phone_number?: string | null }): Customer {
  const state = deps.store.data;
  const email = details.email.trim();
  const existing = Object.values(state.customers).find((c) => c.email.toLowerCase() === email.toLowerCase());
  if (existing) return existing;
  const customer: Customer = {
    customer_id: newId('cus'),
    business_id: state.businessId,
    email,
    name: details.name?.trim() || email.split('@')[0] || email,
    phone_number: details.phone_number ?? null,
    metadata: {},
    created_at: deps.clock.nowIso(),
  };
  state.customers[customer.customer_id] = customer;
  return customer;
}

/**
 * Pays a session at the pinned clock: the subscription for a plan, the payment, the grants, then
 * the webhooks. Returns the redirect ('' for none).
 */
export function payCheckout(deps: BillingDeps, sessionId: string, details?: PayerDetails): string {
  const { store, emit } = deps;
  const session = store.data.sessions[sessionId];
  if (!session) throw new CheckoutError(404, `Checkout session ${sessionId} not found`);
  // Paying twice must never grant twice: a paid session only repeats its redirect.
  if (session.status === 'paid') return session.redirect_url ?? '';
  const items = cartProducts(deps, session);
  const customer = resolveCustomer(deps, session, details);
  const recurring = items.find((i) => i.product.price.type === 'recurring_price');
  const currency = cartCurrency(items);
  const total = cartTotal(items);

  const subscription = recurring ? startSubscription(deps, session, customer, recurring) : null;
  const payment = buildPayment(deps, {
    customer,
    total,
    currency,
    status: 'succeeded',
    session,
    subscription,
    productCart: subscription ? null : session.product_cart,
  });
  store.data.payments[payment.payment_id] = payment;
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
  if (subscription)
    emit('subscription.active', { payload_type: 'Subscription', ...subscriptionView(store.data, subscription) }, customer.customer_id);
  emit('payment.succeeded', { payload_type: 'Payment', ...payment }, customer.customer_id);
  for (const item of items) {
    grantProductCredits(deps, {
      product: item.product,
      quantity: item.quantity,
      customerId: customer.customer_id,
      payment,
      subscription: item.product.price.type === 'recurring_price' ? subscription : null,
    });
  }
  return session.redirect_url;
}

/** Declines a session's payment attempt (payment.failed); the session stays open. Returns the redirect. */
export function declineCheckout(deps: BillingDeps, sessionId: string, details?: PayerDetails): string {
  const { store, emit } = deps;
  const session = store.data.sessions[sessionId];
  if (!session) throw new CheckoutError(404, `Checkout session ${sessionId} not found`);
  if (session.status === 'paid') return session.redirect_url ?? '';
  const items = cartProducts(deps, session);
  const customer = resolveCustomer(deps, session, details);
  const payment = buildPayment(deps, {
    customer,
    total: cartTotal(items),
    currency: cartCurrency(items),
    status: 'failed',
    session,
    subscription: null,
    productCart: session.product_cart,
  });
  store.data.payments[payment.payment_id] = payment;
  session.payment_id = payment.payment_id;
  session.payment_status = 'failed';
  store.save();
  emit('payment.failed', { payload_type: 'Payment', ...payment }, customer.customer_id);
  return redirectFor(session, { status: 'failed', payment_id: payment.payment_id, customer_id: customer.customer_id, session_id: session.id });
}

/** The session's own customer, else the one its email (or the form's) finds or creates. */
function resolveCustomer(deps: BillingDeps, session: StoredSession, details?: PayerDetails): Customer {
  const state = deps.store.data;
  if (session.customer_id) return state.customers[session.customer_id]!;
  if (session.customer && 'customer_id' in session.customer) {
    const c = state.customers[session.customer.customer_id];
    if (!c) throw new CheckoutError(404, `Customer ${session.customer.customer_id} not found`);
    return c;
  }
  const email = (session.customer && 'email' in session.customer ? session.customer.email : details?.email)?.trim();
  if (!email) throw new CheckoutError(422, 'An email address is required to pay');
  const name = session.customer && 'email' in session.customer ? session.customer.name : details?.name;
  return findOrCreateCustomer(deps, {
    email,
    name,
    phone_number: session.customer && 'email' in session.customer ? session.customer.phone_number : null,
  });
}

function cartProducts(deps: BillingDeps, session: StoredSession): CartItem[] {
  return session.product_cart.map((item) => {
    const product = deps.store.data.products[item.product_id];
    if (!product) throw new CheckoutError(404, `Product ${item.product_id} not found`);
    return { product, quantity: item.quantity };
  });
}

function cartTotal(items: CartItem[]): number {
  return items.reduce((sum, i) => sum + ('price' in i.product.price ? i.product.price.price : 0) * i.quantity, 0);
}

/** The first item's currency stands for the cart's. */
function cartCurrency(items: CartItem[]): Payment['currency'] {
  const first = items[0]!.product.price;
  return 'currency' in first ? first.currency : 'USD';
}

function redirectFor(session: StoredSession, params: Record<string, string | null>): string {
  // A session stored before return URLs were checked may hold javascript: or data:: never followed.
  if (!session.return_url || !/^https?:\/\//i.test(session.return_url)) return '';
  const url = new URL(session.return_url);
  for (const [k, v] of Object.entries(params)) if (v) url.searchParams.set(k, v);
  return url.toString();
}
