import type { LedgerDeps } from './ledger-entries';
import { expireGrant } from './ledger-expiry';
import { creditGrant, debitGrants, type CreditArgs, type DebitArgs, type DebitResult } from './ledger-grants';
import { lowBalanceRule, type LowBalanceRule } from './low-balance';
import type { StoredGrant, StoredLedgerEntry } from './state';

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
  lowBalanceRule(entitlementId: string, customerId: string): LowBalanceRule | null;
}

/**
 * Wires the ledger over the store: credits and debits (ledger-grants.ts), expiry and rollover
 * (ledger-expiry.ts), the low-balance rule (low-balance.ts). Events go out through `emit` after
 * the mutation is complete.
 */
export function createCreditLedger(deps: LedgerDeps): CreditLedger {
  return {
    credit: (args) => creditGrant(deps, args),
    debit: (args) => debitGrants(deps, args),
    expire: (grant) => expireGrant(deps, grant),
    lowBalanceRule: (entitlementId, customerId) => lowBalanceRule(deps.store.data, entitlementId, customerId),
  };
}
