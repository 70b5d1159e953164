import { createJsonStore } from '../../lib/json-store';
import { SandboxControlError, type DodoSandbox, type DodoSandboxOptions } from '../contracts';
import { createFaults } from '../faults';
import { formatAmount, parseAmount } from './amounts';
import { createApiRouter } from './api-router';
import { createSandboxBilling } from './billing';
import { createCheckoutRouter } from './checkout-router';
import { createClock } from './clock';
import { createControl } from './control';
import { createCreditLedger } from './credit-ledger';
import { errorBodyFor } from './errors';
import { createDodoRateLimiter, createRateLimitStep, withQuotaHeaders } from './rate-limit';
import { initialState, type DodoState } from './state';
import { createWebhookDeliverer } from './webhook-delivery';

const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000, 600_000];
/** How often real time is checked for renewals and expiries that fall due between requests. */
const SWEEP_INTERVAL_MS = 1_000;

/** Options beyond the shared contract, for tests. */
export interface DodoSandboxExtras {
  /**
   * Wall time in epoch ms for the API quota (default Date.now). Not the sandbox clock: quotas run
   * in real time, and X-RateLimit-Reset must mean something to a client's own clock after
   * `advanceClock` has moved the sandbox a month ahead.
   */
  wallClock?: () => number;
}

/** The Dodo Payments half of the sandbox: API, hosted checkout, webhooks, clock, durable state. */
export function createDodoSandbox(options: DodoSandboxOptions & DodoSandboxExtras): DodoSandbox {
  const store = createJsonStore<DodoState>({ file: options.dataFile, initial: initialState });
  const clock = createClock(store.data);
  const deliverer = createWebhookDeliverer({
    store,
    clock,
    secret: options.webhookSecret,
    url: options.webhookUrl,
    retryDelaysMs: options.webhookRetryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS,
    log: options.log,
  });
  const emit = (type: string, data: Record<string, unknown>, customerId: string) => {
    deliverer.enqueue(type, data, customerId);
  };
  const ledger = createCreditLedger({ store, clock, emit });
  const billing = createSandboxBilling({ store, clock, ledger, emit });
  const faults = createFaults(errorBodyFor);
  const limiter = createDodoRateLimiter(options.rateLimit, options.wallClock ?? Date.now);
  const control = createControl({ store, clock, ledger, billing, primaryEntitlementName: options.primaryEntitlementName ?? 'Email Credits' });

  const api = createApiRouter({
    store,
    clock,
    ledger,
    billing,
    rateLimit: createRateLimitStep(limiter, options.log),
    faultsMiddleware: withQuotaHeaders(faults.middleware, limiter),
    publicUrl: options.publicUrl.replace(/\/+$/, ''),
    checkoutPath: options.checkoutPath,
    log: options.log,
  });
  const checkout = createCheckoutRouter({ store, clock, billing, checkoutPath: options.checkoutPath });

  const sweep = setInterval(() => billing.processDue(clock.now()), SWEEP_INTERVAL_MS);
  sweep.unref();
  deliverer.start();

  return {
    api,
    checkout,
    faults: faults.control,
    setRateLimit: (limit) => limiter.set(limit),
    rateLimit: () => limiter.state(),

    async payCheckout(sessionId) {
      billing.processDue(clock.now());
      return billing.pay(sessionId);
    },

    async adjustBalance(customerId, creditEntitlementId, amount, reason) {
      billing.processDue(clock.now());
      const entitlement = store.data.entitlements[creditEntitlementId];
      if (!entitlement || entitlement.deleted_at)
        throw new SandboxControlError(404, 'not_found', `Credit entitlement ${creditEntitlementId} not found`);
      if (!store.data.customers[customerId]) throw new SandboxControlError(404, 'not_found', `Customer ${customerId} not found`);
      if (!Number.isFinite(amount) || amount === 0) throw new SandboxControlError(400, 'invalid_amount', 'amount must be a non-zero number');
      // String(), not toFixed(): 1.5 at precision 0 must be refused, not rounded to 2.
      const parsed = parseAmount(String(Math.abs(amount)), entitlement.precision);
      if (!parsed.ok) throw new SandboxControlError(400, 'invalid_amount', parsed.message);
      const description = reason ?? 'Manual adjustment (dashboard)';
      if (amount > 0) {
        ledger.credit({
          entitlement,
          customerId,
          units: parsed.units,
          sourceType: 'api',
          sourceId: null,
          expiresAt: null,
          transactionType: 'manual_adjustment',
          description,
          metadata: {},
          referenceType: null,
          referenceId: null,
          idempotencyKey: null,
        });
        return;
      }
      const result = ledger.debit({
        entitlement,
        customerId,
        units: parsed.units,
        transactionType: 'manual_adjustment',
        description,
        metadata: {},
        idempotencyKey: null,
      });
      if (!result.ok) {
        const available = formatAmount(result.availableUnits, entitlement.precision);
        throw new SandboxControlError(409, 'insufficient_balance', `Insufficient balance for an adjustment of ${amount}: ${available} available.`);
      }
    },

    async advanceClock(ms) {
      if (!Number.isFinite(ms) || ms < 0) throw new Error('advanceClock needs a non-negative number of milliseconds');
      const target = new Date(clock.now().getTime() + ms);
      billing.processDue(target);
      clock.moveTo(target);
      store.save();
    },

    now: () => clock.now(),

    webhooks: {
      idle: () => deliverer.idle(),
      list: () => deliverer.list(),
      redeliver: (id) => deliverer.redeliver(id),
    },

    customers: () => {
      billing.processDue(clock.now());
      return control.customers();
    },
    customer: (customerId) => {
      billing.processDue(clock.now());
      return control.customer(customerId);
    },
    primaryEntitlementId: () => control.primaryEntitlement()?.id ?? null,
    async trigger(event, customerId, options) {
      return control.trigger(event, customerId, options);
    },

    state: () => store.data,

    async close() {
      clearInterval(sweep);
      await deliverer.close();
      await store.flush();
    },
  };
}
