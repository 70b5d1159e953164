import type { Customer } from 'dodopayments/resources/customers/customers';
import { addInterval } from './clock';
import { newId } from './ids';
import { buildPayment, grantProductCredits, type BillingDeps } from './payments';
import { subscriptionView } from './serialize';
import type { StoredProduct, StoredSession, StoredSubscription } from './state';

/**
 * Starts the subscription a paid session's plan begins (stored, not yet saved or announced): its
 * next billing date is one payment interval on. Null for a product without a recurring price.
 */
export function startSubscription(
  deps: BillingDeps,
  session: StoredSession,
  customer: Customer,
  item: { product: StoredProduct; quantity: number },
): StoredSubscription | null {
  const price = item.product.price;
  if (price.type !== 'recurring_price') return null;
  const now = deps.clock.now();
  const subscription: StoredSubscription = {
    subscription_id: newId('sub'),
    customer_id: customer.customer_id,
    product_id: item.product.product_id,
    quantity: item.quantity,
    status: 'active',
    created_at: now.toISOString(),
    previous_billing_date: now.toISOString(),
    next_billing_date: addInterval(now, price.payment_frequency_interval, price.payment_frequency_count).toISOString(),
    metadata: session.metadata,
    billing: session.billing,
    checkout_session_id: session.id,
  };
  deps.store.data.subscriptions[subscription.subscription_id] = subscription;
  return subscription;
}

/** Replays every renewal and expiry due up to `until`, in time order, each at its own instant. Returns how many ran. */
export function processDue(deps: BillingDeps, until: Date): number {
  const { store, clock, ledger } = deps;
  let ran = 0;
  // Bounded so a far jump with a daily plan cannot spin forever.
  for (let guard = 0; guard < 100_000; guard += 1) {
    let nextAt = Number.POSITIVE_INFINITY;
    let run: (() => void) | null = null;
    for (const g of store.data.grants) {
      if (g.is_expired || !g.expires_at) continue;
      const at = Date.parse(g.expires_at);
      if (at <= until.getTime() && at < nextAt) {
        nextAt = at;
        run = () => ledger.expire(g);
      }
    }
    for (const s of Object.values(store.data.subscriptions)) {
      if (s.status !== 'active') continue;
      const at = Date.parse(s.next_billing_date);
      // `<` not `<=`: at the same instant an old grant expires before the new cycle is granted.
      if (at <= until.getTime() && at < nextAt) {
        nextAt = at;
        run = () => renew(deps, s);
      }
    }
    if (!run) break;
    clock.pinned(new Date(nextAt), run);
    ran += 1;
  }
  if (ran > 0) store.save();
  return ran;
}

/** Renews one active subscription now, as if its billing date had come: the cycle restarts today. */
export function renewNow(deps: BillingDeps, subscriptionId: string): void {
  const sub = deps.store.data.subscriptions[subscriptionId];
  if (!sub || sub.status !== 'active') throw new Error(`No active subscription ${subscriptionId}`);
  const now = deps.clock.now();
  processDue(deps, now);
  sub.next_billing_date = now.toISOString();
  processDue(deps, now);
}

/**
 * One renewal at the pinned clock: the next billing date moves one interval on, then
 * subscription.renewed, payment.succeeded and the cycle's credits. A subscription whose product or
 * customer is gone, or no longer recurring, is cancelled instead.
 */
function renew(deps: BillingDeps, sub: StoredSubscription): void {
  const { store, emit } = deps;
  const product = store.data.products[sub.product_id];
  const customer = store.data.customers[sub.customer_id];
  if (!product || !customer || product.price.type !== 'recurring_price') {
    sub.status = 'cancelled';
    return;
  }
  const price = product.price;
  sub.previous_billing_date = sub.next_billing_date;
  sub.next_billing_date = addInterval(new Date(sub.next_billing_date), price.payment_frequency_interval, price.payment_frequency_count).toISOString();
  const payment = buildPayment(deps, {
    customer,
    total: price.price * sub.quantity,
    currency: price.currency,
    status: 'succeeded',
    session: null,
    subscription: sub,
    productCart: null,
  });
  store.data.payments[payment.payment_id] = payment;
  store.save();
  emit('subscription.renewed', { payload_type: 'Subscription', ...subscriptionView(store.data, sub) }, sub.customer_id);
  emit('payment.succeeded', { payload_type: 'Payment', ...payment }, sub.customer_id);
  grantProductCredits(deps, { product, quantity: sub.quantity, customerId: sub.customer_id, payment, subscription: sub });
}
