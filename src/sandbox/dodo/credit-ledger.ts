import type { Metadata } from 'dodopayments/resources/misc';
import type { JsonStore } from '../../lib/json-store';
import { formatAmount } from './amounts';
import { addInterval, type SandboxClock } from './clock';
import { newId } from './ids';
import { balanceUnits, ledgerEntryView } from './serialize';
import {
  balanceKey,
  type DodoState,
  type RolloverPolicy,
  type StoredBalance,
  type StoredEntitlement,
  type StoredGrant,
  type StoredLedgerEntry,
} from './state';

/** Emits one webhook event for a customer (ordering is per customer). */
export type Emit = (type: string, data: Record<string, unknown>, customerId: string) => void;

type TransactionType = StoredLedgerEntry['transaction_type'];

const eventFor: Partial<Record<TransactionType, string>> = {
  credit_added: 'credit.added',
  credit_deducted: 'credit.deducted',
  credit_expired: 'credit.expired',
  manual_adjustment: 'credit.manual_adjustment',
  credit_rolled_over: 'credit.rolled_over',
  rollover_forfeited: 'credit.rollover_forfeited',
};

const DAY_MS = 86_400_000;

export interface CreditArgs {
  entitlement: StoredEntitlement;
  customerId: string;
  units: number;
  sourceType: StoredGrant['source_type'];
  sourceId: string | null;
  expiresAt: string | null;
  transactionType: 'credit_added' | 'manual_adjustment';
  description: string | null;
  /** Echoed on the ledger entry (and the grant): the source's metadata, or the API caller's. */
  metadata: Metadata;
  referenceType: string | null;
  referenceId: string | null;
  idempotencyKey: string | null;
  /** Rollover rule the grant carries to its expiry (default: none, it simply expires). */
  rollover?: RolloverPolicy | null;
}

export interface DebitArgs {
  entitlement: StoredEntitlement;
  customerId: string;
  units: number;
  transactionType: 'credit_deducted' | 'manual_adjustment';
  description: string | null;
  metadata: Metadata;
  idempotencyKey: string | null;
}

/** The outcome of a debit: the entry, or how much was available when it was refused. */
export type DebitResult = { ok: true; entry: StoredLedgerEntry } | { ok: false; availableUnits: number };

/**
 * Grants, FIFO debits, expiry and the low-balance alert. Every method is synchronous on purpose:
 * Node runs one at a time, so a balance check and the grant mutations it guards can never be
 * interleaved with another request's (200 concurrent debits against 50 credits → exactly 50 succeed).
 */
export interface CreditLedger {
  credit(args: CreditArgs): StoredLedgerEntry;
  debit(args: DebitArgs): DebitResult;
  /**
   * Ends one grant at its expiry (at the pinned clock). Without a rollover rule: a credit_expired
   * entry for what was left. With one: the rule's share rolls into a new grant (credit_rolled_over),
   * the rest expires, and at the rollover limit everything left is forfeited (rollover_forfeited).
   */
  expire(grant: StoredGrant): void;
  /** The low-balance rule in force for a customer (from their newest active subscription), or null. */
  lowBalanceRule(entitlementId: string, customerId: string): { subscriptionId: string; percent: number; creditsUnits: number } | null;
}

/** Builds the ledger over the store; events go out through `emit` after the mutation is complete. */
export function createCreditLedger(deps: { store: JsonStore<DodoState>; clock: SandboxClock; emit: Emit }): CreditLedger {
  const { store, clock, emit } = deps;
  const state = () => store.data;

  const touchBalance = (entitlementId: string, customerId: string, now: string): StoredBalance => {
    const key = balanceKey(entitlementId, customerId);
    let b = state().balances[key];
    if (!b) {
      b = {
        id: newId('cbl'),
        customer_id: customerId,
        credit_entitlement_id: entitlementId,
        created_at: now,
        updated_at: now,
        last_transaction_at: null,
        low_balance_notified: false,
      };
      state().balances[key] = b;
    }
    b.updated_at = now;
    b.last_transaction_at = now;
    return b;
  };

  const record = (
    args: { entitlement: StoredEntitlement; customerId: string; units: number; isCredit: boolean },
    extra: Pick<StoredLedgerEntry, 'transaction_type' | 'description' | 'metadata' | 'reference_type' | 'reference_id' | 'grant_id' | 'idempotency_key' | 'allocations'>,
    beforeUnits: number,
    now: string,
    /** Only for a transfer between grants (a rollover), where the balance does not move. */
    afterOverride?: number,
  ): StoredLedgerEntry => {
    const p = args.entitlement.precision;
    const afterUnits = afterOverride ?? beforeUnits + (args.isCredit ? args.units : -args.units);
    const entry: StoredLedgerEntry = {
      id: newId('cle'),
      seq: ++state().seq,
      business_id: state().businessId,
      brand_id: state().brandId,
      customer_id: args.customerId,
      credit_entitlement_id: args.entitlement.id,
      entry_type: args.isCredit ? 'credit' : 'debit',
      is_credit: args.isCredit,
      amount: formatAmount(args.units, p),
      balance_before: formatAmount(beforeUnits, p),
      balance_after: formatAmount(afterUnits, p),
      overage_before: formatAmount(0, p),
      overage_after: formatAmount(0, p),
      created_at: now,
      ...extra,
    };
    state().ledger.push(entry);
    if (entry.idempotency_key) {
      state().idempotency[`${args.entitlement.id}:${args.customerId}:${entry.idempotency_key}`] = entry.id;
    }
    return entry;
  };

  const announce = (entry: StoredLedgerEntry) => {
    const type = eventFor[entry.transaction_type];
    if (type) emit(type, { payload_type: 'CreditLedgerEntry', ...ledgerEntryView(entry) }, entry.customer_id);
  };

  /** The subscription whose attachment sets a low-balance threshold for this customer and entitlement. */
  const lowBalanceRule = (entitlementId: string, customerId: string) => {
    let best: { subscriptionId: string; percent: number; creditsUnits: number; createdAt: string } | null = null;
    for (const s of Object.values(state().subscriptions)) {
      if (s.customer_id !== customerId || s.status !== 'active') continue;
      const attachment = state().products[s.product_id]?.attachments.find((a) => a.credit_entitlement_id === entitlementId);
      if (attachment?.low_balance_threshold_percent == null) continue;
      const ent = state().entitlements[entitlementId];
      const perCycle = Number(attachment.credits_amount) * 10 ** (ent?.precision ?? 0) * s.quantity;
      if (!best || s.created_at > best.createdAt) {
        best = { subscriptionId: s.subscription_id, percent: attachment.low_balance_threshold_percent, creditsUnits: Math.round(perCycle), createdAt: s.created_at };
      }
    }
    return best;
  };

  /**
   * Fires credit.balance_low once per crossing; re-arms when the balance is back at or above the
   * threshold. `units` is the balance after the change, which the caller already knows.
   */
  const checkLowBalance = (entitlement: StoredEntitlement, customerId: string, units: number, afterDebit: boolean) => {
    const rule = lowBalanceRule(entitlement.id, customerId);
    const b = state().balances[balanceKey(entitlement.id, customerId)];
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
    emit(
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
        brand_id: state().brandId,
      },
      customerId,
    );
  };

  return {
    credit(args) {
      const now = clock.nowIso();
      const before = balanceUnits(state(), args.entitlement.id, args.customerId);
      touchBalance(args.entitlement.id, args.customerId, now);
      const grant: StoredGrant = {
        id: newId('cgr'),
        seq: ++state().seq,
        customer_id: args.customerId,
        credit_entitlement_id: args.entitlement.id,
        source_type: args.sourceType,
        source_id: args.sourceId,
        initial_units: args.units,
        remaining_units: args.units,
        expires_at: args.expiresAt,
        is_expired: false,
        metadata: args.metadata,
        created_at: now,
        updated_at: now,
        rollover_count: 0,
        parent_grant_id: null,
        is_rolled_over: false,
        rollover: args.rollover ?? null,
      };
      state().grants.push(grant);
      const entry = record(
        { entitlement: args.entitlement, customerId: args.customerId, units: args.units, isCredit: true },
        {
          transaction_type: args.transactionType,
          description: args.description,
          metadata: args.metadata,
          reference_type: args.referenceType,
          reference_id: args.referenceId,
          grant_id: grant.id,
          idempotency_key: args.idempotencyKey,
          allocations: [{ grant_id: grant.id, units: args.units }],
        },
        before,
        now,
      );
      store.save();
      announce(entry);
      checkLowBalance(args.entitlement, args.customerId, before + args.units, false);
      return entry;
    },

    debit(args) {
      const now = clock.nowIso();
      const available = balanceUnits(state(), args.entitlement.id, args.customerId);
      // Overage is not supported: a short balance refuses the whole debit and changes nothing.
      if (available < args.units) return { ok: false, availableUnits: available };
      const allocations: Array<{ grant_id: string; units: number }> = [];
      let left = args.units;
      // FIFO: oldest grant first (creation order), skipping expired and depleted grants.
      for (const g of state().grants) {
        if (left === 0) break;
        if (g.credit_entitlement_id !== args.entitlement.id || g.customer_id !== args.customerId) continue;
        if (g.is_expired || g.remaining_units === 0) continue;
        const take = Math.min(g.remaining_units, left);
        g.remaining_units -= take;
        g.updated_at = now;
        left -= take;
        allocations.push({ grant_id: g.id, units: take });
      }
      touchBalance(args.entitlement.id, args.customerId, now);
      const entry = record(
        { entitlement: args.entitlement, customerId: args.customerId, units: args.units, isCredit: false },
        {
          transaction_type: args.transactionType,
          description: args.description,
          metadata: args.metadata,
          reference_type: null,
          reference_id: null,
          grant_id: allocations[0]?.grant_id ?? null,
          idempotency_key: args.idempotencyKey,
          allocations,
        },
        available,
        now,
      );
      store.save();
      announce(entry);
      checkLowBalance(args.entitlement, args.customerId, available - args.units, true);
      return { ok: true, entry };
    },

    expire(grant) {
      const now = clock.nowIso();
      const entitlement = state().entitlements[grant.credit_entitlement_id];
      const before = balanceUnits(state(), grant.credit_entitlement_id, grant.customer_id);
      const left = grant.remaining_units;
      grant.is_expired = true;
      grant.remaining_units = 0;
      grant.updated_at = now;
      if (!entitlement || left === 0) {
        store.save();
        return;
      }
      touchBalance(entitlement.id, grant.customer_id, now);
      const policy = grant.rollover ?? null;
      const count = grant.rollover_count ?? 0;
      const base = { entitlement, customerId: grant.customer_id, isCredit: false };
      const fromGrant = { reference_type: 'grant', reference_id: grant.id, grant_id: grant.id, idempotency_key: null, metadata: grant.metadata ?? {} };
      const entries: StoredLedgerEntry[] = [];

      if (policy && policy.max_count !== null && count >= policy.max_count) {
        // At the rollover limit nothing carries over again: the whole leftover is forfeited.
        entries.push(
          record({ ...base, units: left }, { ...fromGrant, transaction_type: 'rollover_forfeited', description: `Rollover limit (${policy.max_count}) reached; unused credits forfeited`, allocations: [{ grant_id: grant.id, units: left }] }, before, now),
        );
      } else {
        // Floor: a share that is not a whole unit stays behind and expires.
        const rolled = policy ? Math.floor((left * policy.percentage) / 100) : 0;
        const expired = left - rolled;
        let balance = before;
        if (expired > 0) {
          entries.push(
            record({ ...base, units: expired }, { ...fromGrant, transaction_type: 'credit_expired', description: 'Unused credits expired', allocations: [{ grant_id: grant.id, units: expired }] }, balance, now),
          );
          balance -= expired;
        }
        if (rolled > 0 && policy) {
          grant.is_rolled_over = true;
          const lifetimeEnd = policy.timeframe
            ? addInterval(clock.now(), policy.timeframe.interval, policy.timeframe.count)
            : policy.lifetime_days !== null
              ? new Date(clock.now().getTime() + policy.lifetime_days * DAY_MS)
              : null;
          const child: StoredGrant = {
            id: newId('cgr'),
            seq: ++state().seq,
            customer_id: grant.customer_id,
            credit_entitlement_id: grant.credit_entitlement_id,
            source_type: 'rollover',
            source_id: grant.id,
            initial_units: rolled,
            remaining_units: rolled,
            expires_at: lifetimeEnd ? lifetimeEnd.toISOString() : null,
            is_expired: false,
            metadata: grant.metadata,
            created_at: now,
            updated_at: now,
            rollover_count: count + 1,
            parent_grant_id: grant.id,
            is_rolled_over: false,
            rollover: policy,
          };
          state().grants.push(child);
          // A transfer, not new money: the credits move from the old grant to the new one, so
          // balance_before equals balance_after (README: "Rollover").
          entries.push(
            record(
              { entitlement, customerId: grant.customer_id, units: rolled, isCredit: true },
              {
                ...fromGrant,
                grant_id: child.id,
                transaction_type: 'credit_rolled_over',
                description: `${policy.percentage}% of unused credits rolled over (rollover ${count + 1}${policy.max_count === null ? '' : ` of ${policy.max_count}`})`,
                allocations: [{ grant_id: child.id, units: rolled }],
              },
              balance,
              now,
              balance,
            ),
          );
        }
      }
      store.save();
      for (const entry of entries) announce(entry);
    },

    lowBalanceRule(entitlementId, customerId) {
      const rule = lowBalanceRule(entitlementId, customerId);
      return rule ? { subscriptionId: rule.subscriptionId, percent: rule.percent, creditsUnits: rule.creditsUnits } : null;
    },
  };
}

/** credits × percent is in hundredths of a unit; print it at the entitlement's precision when exact. */
function thresholdText(hundredthUnits: number, precision: number): string {
  if (hundredthUnits % 100 === 0) return formatAmount(hundredthUnits / 100, precision);
  return formatAmount(hundredthUnits, precision + 2).replace(/0+$/, '');
}
