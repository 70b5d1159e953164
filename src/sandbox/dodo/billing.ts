import type { Customer } from 'dodopayments/resources/customers/customers';
import { declineCheckout, findOrCreateCustomer, payCheckout, type PayerDetails } from './checkout-payment';
import type { BillingDeps } from './payments';
import { processDue, renewNow } from './subscriptions';

/**
 * The sandbox's billing (not MailKit's `Billing`): checkout payment and decline
 * (checkout-payment.ts), subscription renewals and the clock's due-event replay (subscriptions.ts).
 */
export interface SandboxBilling {
  /** Pays a session (idempotent: a paid session just returns its redirect). */
  pay(sessionId: string, details?: PayerDetails): string;
  /** Declines a session's payment attempt (payment.failed); the session stays open. */
  decline(sessionId: string, details?: PayerDetails): string;
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

/** Wires the sandbox's billing over the store, the clock and the ledger. */
export function createSandboxBilling(deps: BillingDeps): SandboxBilling {
  const { clock } = deps;
  return {
    findOrCreateCustomer: (details) => findOrCreateCustomer(deps, details),
    // One instant for the whole payment, so subscription, payment and grants share a timestamp.
    pay: (sessionId, details) => clock.pinned(clock.now(), () => payCheckout(deps, sessionId, details)),
    decline: (sessionId, details) => clock.pinned(clock.now(), () => declineCheckout(deps, sessionId, details)),
    renewNow: (subscriptionId) => renewNow(deps, subscriptionId),
    processDue: (until) => processDue(deps, until),
  };
}
