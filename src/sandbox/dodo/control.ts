import type { JsonStore } from '../../lib/json-store';
import { SandboxControlError, type SandboxCustomerDetail, type SandboxCustomerSummary, type TriggerEvent, type TriggerResult } from '../contracts';
import { formatAmount } from './amounts';
import type { SandboxBilling } from './billing';
import type { SandboxClock } from './clock';
import type { CreditLedger } from './credit-ledger';
import { balanceUnits, grantView } from './serialize';
import type { DodoState, StoredEntitlement } from './state';

/** The console's read model and the triggers: everything `/sandbox/api` needs beyond the contract's basics. */
export interface SandboxControl {
  customers(): SandboxCustomerSummary[];
  customer(customerId: string): SandboxCustomerDetail | null;
  primaryEntitlement(): StoredEntitlement | null;
  trigger(event: TriggerEvent, customerId: string, options?: { amount?: number }): TriggerResult;
}

/** Credits a trigger grants when no amount is given (credit.added, credit.expired, credit.rolled_over). */
const DEFAULT_TRIGGER_CREDITS = 100;

/** Builds the console's view and triggers over the same store, ledger and billing the API uses. */
export function createControl(deps: {
  store: JsonStore<DodoState>;
  clock: SandboxClock;
  ledger: CreditLedger;
  billing: SandboxBilling;
  primaryEntitlementName: string;
}): SandboxControl {
  const { store, clock, ledger, billing } = deps;
  const state = () => store.data;

  const primaryEntitlement = (): StoredEntitlement | null => {
    const live = Object.values(state().entitlements)
      .filter((e) => !e.deleted_at)
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
    return live.find((e) => e.name === deps.primaryEntitlementName) ?? live[0] ?? null;
  };

  const balanceText = (e: StoredEntitlement, customerId: string) => formatAmount(balanceUnits(state(), e.id, customerId), e.precision);

  const customerOr404 = (customerId: string) => {
    const c = state().customers[customerId];
    if (!c) throw new SandboxControlError(404, 'not_found', `No customer ${customerId} in the sandbox.`);
    return c;
  };

  const entitlementOr409 = () => {
    const e = primaryEntitlement();
    if (!e)
      throw new SandboxControlError(
        409,
        'no_entitlement',
        'The sandbox has no credit entitlement yet: start MailKit once (it provisions one) or run `npm run setup`.',
      );
    return e;
  };

  /** Whole credits → units of the entitlement; refuses anything but a positive whole number. */
  const creditsToUnits = (e: StoredEntitlement, amount: number) => {
    if (!Number.isSafeInteger(amount) || amount <= 0 || amount > 1_000_000_000) {
      throw new SandboxControlError(400, 'invalid_amount', 'amount must be a whole number of credits between 1 and 1,000,000,000.');
    }
    return amount * 10 ** e.precision;
  };

  /** Grants trigger credits that expire right now, then replays the expiry (with or without rollover). */
  const grantAndExpire = (e: StoredEntitlement, customerId: string, units: number, event: TriggerEvent, rollover: boolean) => {
    const now = clock.now();
    ledger.credit({
      entitlement: e,
      customerId,
      units,
      sourceType: 'api',
      sourceId: null,
      expiresAt: now.toISOString(),
      transactionType: 'credit_added',
      description: `Sandbox trigger: ${event}`,
      metadata: { sandbox_trigger: event },
      referenceType: null,
      referenceId: null,
      idempotencyKey: null,
      // Everything rolls over once; the carried grant lives as long as the entitlement's credits
      // do and is then forfeited (max_rollover_count 1), so the rollover limit can be seen too.
      rollover: rollover ? { percentage: 100, max_count: 1, timeframe: null, lifetime_days: e.expires_after_days ?? null } : null,
    });
    billing.processDue(now);
  };

  const triggers: Record<TriggerEvent, (customerId: string, amount: number | undefined) => void> = {
    'credit.added': (customerId, amount) => {
      const e = entitlementOr409();
      ledger.credit({
        entitlement: e,
        customerId,
        units: creditsToUnits(e, amount ?? DEFAULT_TRIGGER_CREDITS),
        sourceType: 'api',
        sourceId: null,
        expiresAt: e.expires_after_days == null ? null : new Date(clock.now().getTime() + e.expires_after_days * 86_400_000).toISOString(),
        transactionType: 'credit_added',
        description: 'Sandbox trigger: credit.added',
        metadata: { sandbox_trigger: 'credit.added' },
        referenceType: null,
        referenceId: null,
        idempotencyKey: null,
      });
    },

    'credit.expired': (customerId, amount) => {
      const e = entitlementOr409();
      grantAndExpire(e, customerId, creditsToUnits(e, amount ?? DEFAULT_TRIGGER_CREDITS), 'credit.expired', false);
    },

    'credit.rolled_over': (customerId, amount) => {
      const e = entitlementOr409();
      grantAndExpire(e, customerId, creditsToUnits(e, amount ?? DEFAULT_TRIGGER_CREDITS), 'credit.rolled_over', true);
    },

    'credit.balance_low': (customerId) => {
      const e = entitlementOr409();
      const rule = ledger.lowBalanceRule(e.id, customerId);
      if (!rule || rule.percent <= 0) {
        throw new SandboxControlError(
          409,
          'no_low_balance_threshold',
          `Customer ${customerId} has no active subscription with a low-balance threshold on ${e.name}: subscribe first.`,
        );
      }
      // Smallest balance that is not low, and the largest that is (integer maths on units).
      const thresholdUnits = Math.ceil((rule.creditsUnits * rule.percent) / 100);
      if (thresholdUnits < 1)
        throw new SandboxControlError(409, 'no_low_balance_threshold', 'The low-balance threshold is zero: no balance can fall below it.');
      const target = thresholdUnits - 1;
      const base = { entitlement: e, customerId, metadata: { sandbox_trigger: 'credit.balance_low' }, idempotencyKey: null };
      let balance = balanceUnits(state(), e.id, customerId);
      if (balance < thresholdUnits) {
        // Already low: top up to the threshold first, which re-arms the alert (as a top-up does).
        ledger.credit({
          ...base,
          units: thresholdUnits - balance,
          sourceType: 'api',
          sourceId: null,
          expiresAt: null,
          transactionType: 'manual_adjustment',
          description: 'Sandbox trigger: credit.balance_low (re-arm at the threshold)',
          referenceType: null,
          referenceId: null,
        });
        balance = thresholdUnits;
      }
      const result = ledger.debit({
        ...base,
        units: balance - target,
        transactionType: 'manual_adjustment',
        description: 'Sandbox trigger: credit.balance_low',
      });
      if (!result.ok) throw new Error('trigger debit refused although the balance covered it');
    },

    'subscription.renewed': (customerId) => {
      const sub = Object.values(state().subscriptions)
        .filter((s) => s.customer_id === customerId && s.status === 'active')
        .sort((a, b) => b.created_at.localeCompare(a.created_at))[0];
      if (!sub) throw new SandboxControlError(409, 'no_subscription', `Customer ${customerId} has no active subscription: subscribe first.`);
      billing.renewNow(sub.subscription_id);
    },
  };

  return {
    primaryEntitlement,

    customers() {
      const e = primaryEntitlement();
      return Object.values(state().customers)
        .sort((a, b) => b.created_at.localeCompare(a.created_at))
        .map((c) => ({
          customer_id: c.customer_id,
          email: c.email,
          name: c.name,
          balance: e ? balanceText(e, c.customer_id) : '0',
          created_at: c.created_at,
        }));
    },

    customer(customerId) {
      const c = state().customers[customerId];
      if (!c) return null;
      const primary = primaryEntitlement();
      const ledgerRows = state()
        .ledger.filter((l) => l.customer_id === customerId)
        .sort((a, b) => b.seq - a.seq);
      return {
        customer: { customer_id: c.customer_id, email: c.email, name: c.name, created_at: c.created_at },
        balances: Object.values(state().entitlements)
          .filter((e) => !e.deleted_at && (e.id === primary?.id || state().balances[`${e.id}:${customerId}`]))
          .map((e) => ({
            credit_entitlement_id: e.id,
            credit_entitlement_name: e.name,
            unit: e.unit,
            balance: balanceText(e, customerId),
            primary: e.id === primary?.id,
          })),
        subscriptions: Object.values(state().subscriptions)
          .filter((s) => s.customer_id === customerId)
          .sort((a, b) => b.created_at.localeCompare(a.created_at))
          .map((s) => ({
            subscription_id: s.subscription_id,
            product_id: s.product_id,
            product_name: state().products[s.product_id]?.name ?? s.product_id,
            status: s.status,
            previous_billing_date: s.previous_billing_date,
            next_billing_date: s.next_billing_date,
          })),
        grants: state()
          .grants.filter((g) => g.customer_id === customerId)
          .map((g) => {
            const v = grantView(state(), g);
            return {
              id: v.id,
              credit_entitlement_id: v.credit_entitlement_id,
              source: v.source_type,
              source_id: v.source_id ?? null,
              initial: v.initial_amount,
              remaining: v.remaining_amount,
              expires_at: v.expires_at ?? null,
              is_expired: v.is_expired,
              is_rolled_over: v.is_rolled_over,
              rollover_count: v.rollover_count,
              parent_grant_id: v.parent_grant_id ?? null,
              created_at: v.created_at,
            };
          }),
        ledger: ledgerRows.map((l) => ({
          id: l.id,
          credit_entitlement_id: l.credit_entitlement_id,
          transaction_type: l.transaction_type,
          is_credit: l.is_credit,
          amount: l.amount,
          balance_before: l.balance_before,
          balance_after: l.balance_after,
          description: l.description ?? null,
          grant_id: l.grant_id ?? null,
          created_at: l.created_at,
        })),
      };
    },

    trigger(event, customerId, options = {}) {
      customerOr404(customerId);
      const run = triggers[event];
      if (!run) throw new SandboxControlError(400, 'unknown_event', `Unknown trigger event ${String(event)}.`);
      billing.processDue(clock.now());
      const before = new Set(state().deliveries.map((d) => d.id));
      // One instant for the whole trigger, so its ledger entries and events share a timestamp.
      clock.pinned(clock.now(), () => run(customerId, options.amount));
      store.save();
      const events = state()
        .deliveries.filter((d) => !before.has(d.id))
        .map((d) => ({ id: d.id, type: d.type }));
      return { event, customer_id: customerId, webhook_ids: events.map((e) => e.id), events };
    },
  };
}
