import type { Metadata } from 'dodopayments/resources/misc';
import { newId } from './ids';
import { announce, recordEntry, touchBalance, type LedgerDeps } from './ledger-entries';
import { checkLowBalance } from './low-balance';
import { balanceUnits } from './serialize';
import type { RolloverPolicy, StoredEntitlement, StoredGrant, StoredLedgerEntry } from './state';

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

/** A credit: one new grant and its ledger entry, saved, announced, and the low-balance alert re-armed if it is back up. */
export function creditGrant(deps: LedgerDeps, args: CreditArgs): StoredLedgerEntry {
  const { store, clock } = deps;
  const state = store.data;
  const now = clock.nowIso();
  const before = balanceUnits(state, args.entitlement.id, args.customerId);
  touchBalance(state, args.entitlement.id, args.customerId, now);
  const grant: StoredGrant = {
    id: newId('cgr'),
    seq: ++state.seq,
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
  state.grants.push(grant);
  const entry = recordEntry(
    state,
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
  announce(deps.emit, entry);
  checkLowBalance(deps, args.entitlement, args.customerId, before + args.units, false);
  return entry;
}

/** A debit, FIFO over the customer's grants; a short balance refuses it whole and changes nothing. */
export function debitGrants(deps: LedgerDeps, args: DebitArgs): DebitResult {
  const { store, clock } = deps;
  const state = store.data;
  const now = clock.nowIso();
  const available = balanceUnits(state, args.entitlement.id, args.customerId);
  // Overage is not supported: a short balance refuses the whole debit and changes nothing.
  if (available < args.units) return { ok: false, availableUnits: available };
  const allocations: Array<{ grant_id: string; units: number }> = [];
  let left = args.units;
  // FIFO: oldest grant first (creation order), skipping expired and depleted grants.
  for (const g of state.grants) {
    if (left === 0) break;
    if (g.credit_entitlement_id !== args.entitlement.id || g.customer_id !== args.customerId) continue;
    if (g.is_expired || g.remaining_units === 0) continue;
    const take = Math.min(g.remaining_units, left);
    g.remaining_units -= take;
    g.updated_at = now;
    left -= take;
    allocations.push({ grant_id: g.id, units: take });
  }
  touchBalance(state, args.entitlement.id, args.customerId, now);
  const entry = recordEntry(
    state,
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
  announce(deps.emit, entry);
  checkLowBalance(deps, args.entitlement, args.customerId, available - args.units, true);
  return { ok: true, entry };
}
