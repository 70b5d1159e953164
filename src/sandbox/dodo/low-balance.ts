import { formatAmount } from './amounts';
import type { LedgerDeps } from './ledger-entries';
import { balanceKey, type DodoState, type StoredEntitlement } from './state';

/** A customer's low-balance threshold for an entitlement: percent of one cycle's credits. */
export interface LowBalanceRule {
  subscriptionId: string;
  percent: number;
  creditsUnits: number;
}

/** The rule from the customer's newest active subscription whose attachment sets a threshold, or null. */
export function lowBalanceRule(state: DodoState, entitlementId: string, customerId: string): LowBalanceRule | null {
  let best: (LowBalanceRule & { createdAt: string }) | null = null;
  for (const s of Object.values(state.subscriptions)) {
    if (s.customer_id !== customerId || s.status !== 'active') continue;
    const attachment = state.products[s.product_id]?.attachments.find((a) => a.credit_entitlement_id === entitlementId);
    if (attachment?.low_balance_threshold_percent == null) continue;
    const ent = state.entitlements[entitlementId];
    const perCycle = Number(attachment.credits_amount) * 10 ** (ent?.precision ?? 0) * s.quantity;
    if (!best || s.created_at > best.createdAt) {
      best = {
        subscriptionId: s.subscription_id,
        percent: attachment.low_balance_threshold_percent,
        creditsUnits: Math.round(perCycle),
        createdAt: s.created_at,
      };
    }
  }
  return best ? { subscriptionId: best.subscriptionId, percent: best.percent, creditsUnits: best.creditsUnits } : null;
}

/**
 * Fires credit.balance_low once per crossing; re-arms when the balance is back at or above the
 * threshold. `units` is the balance after the change, which the caller already knows.
 */
export function checkLowBalance(deps: LedgerDeps, entitlement: StoredEntitlement, customerId: string, units: number, afterDebit: boolean): void {
  const state = deps.store.data;
  const rule = lowBalanceRule(state, entitlement.id, customerId);
  const b = state.balances[balanceKey(entitlement.id, customerId)];
  if (!rule || !b) return;
  // Integer comparison: balance < credits × percent / 100, without dividing.
  const below = units * 100 < rule.creditsUnits * rule.percent;
  if (!below) {
    b.low_balance_notified = false;
    return;
  }
  if (!afterDebit || b.low_balance_notified) return;
  b.low_balance_notified = true;
  const p = entitlement.precision;
  deps.emit(
    'credit.balance_low',
    {
      payload_type: 'CreditBalanceLow',
      customer_id: customerId,
      subscription_id: rule.subscriptionId,
      credit_entitlement_id: entitlement.id,
      credit_entitlement_name: entitlement.name,
      available_balance: formatAmount(units, p),
      subscription_credits_amount: formatAmount(rule.creditsUnits, p),
      threshold_percent: rule.percent,
      threshold_amount: thresholdText(rule.creditsUnits * rule.percent, p),
      brand_id: state.brandId,
    },
    customerId,
  );
}

/** credits × percent is in hundredths of a unit; print it at the entitlement's precision when exact. */
function thresholdText(hundredthUnits: number, precision: number): string {
  if (hundredthUnits % 100 === 0) return formatAmount(hundredthUnits / 100, precision);
  return formatAmount(hundredthUnits, precision + 2).replace(/0+$/, '');
}
