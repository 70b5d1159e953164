import type { JsonStore } from '../../lib/json-store';
import { formatAmount } from './amounts';
import type { SandboxClock } from './clock';
import { newId } from './ids';
import { ledgerEntryView } from './serialize';
import { balanceKey, type DodoState, type StoredBalance, type StoredEntitlement, type StoredLedgerEntry } from './state';

/** Emits one webhook event for a customer (ordering is per customer). */
export type Emit = (type: string, data: Record<string, unknown>, customerId: string) => void;

/** What the ledger's pieces work with; events go out through `emit` after the mutation is complete. */
export interface LedgerDeps {
  store: JsonStore<DodoState>;
  clock: SandboxClock;
  emit: Emit;
}

type TransactionType = StoredLedgerEntry['transaction_type'];

const eventFor: Partial<Record<TransactionType, string>> = {
  credit_added: 'credit.added',
  credit_deducted: 'credit.deducted',
  credit_expired: 'credit.expired',
  manual_adjustment: 'credit.manual_adjustment',
  credit_rolled_over: 'credit.rolled_over',
  rollover_forfeited: 'credit.rollover_forfeited',
};

/** The customer's balance record for an entitlement, created on first use, stamped with this transaction. */
export function touchBalance(state: DodoState, entitlementId: string, customerId: string, now: string): StoredBalance {
  const key = balanceKey(entitlementId, customerId);
  let b = state.balances[key];
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
    state.balances[key] = b;
  }
  b.updated_at = now;
  b.last_transaction_at = now;
  return b;
}

/** Appends one ledger entry (and claims its idempotency key); amounts print at the entitlement's precision. */
export function recordEntry(
  state: DodoState,
  args: { entitlement: StoredEntitlement; customerId: string; units: number; isCredit: boolean },
  extra: Pick<
    StoredLedgerEntry,
    'transaction_type' | 'description' | 'metadata' | 'reference_type' | 'reference_id' | 'grant_id' | 'idempotency_key' | 'allocations'
  >,
  beforeUnits: number,
  now: string,
  /** Only for a transfer between grants (a rollover), where the balance does not move. */
  afterOverride?: number,
): StoredLedgerEntry {
  const p = args.entitlement.precision;
  const afterUnits = afterOverride ?? beforeUnits + (args.isCredit ? args.units : -args.units);
  const entry: StoredLedgerEntry = {
    id: newId('cle'),
    seq: ++state.seq,
    business_id: state.businessId,
    brand_id: state.brandId,
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
  state.ledger.push(entry);
  if (entry.idempotency_key) {
    state.idempotency[`${args.entitlement.id}:${args.customerId}:${entry.idempotency_key}`] = entry.id;
  }
  return entry;
}

/** The entry's webhook (credit.added, credit.deducted, …), for the transaction types that have one. */
export function announce(emit: Emit, entry: StoredLedgerEntry): void {
  const type = eventFor[entry.transaction_type];
  if (type) emit(type, { payload_type: 'CreditLedgerEntry', ...ledgerEntryView(entry) }, entry.customer_id);
}
