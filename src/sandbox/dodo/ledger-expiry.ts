import { addInterval } from './clock';
import { newId } from './ids';
import { announce, recordEntry, touchBalance, type LedgerDeps } from './ledger-entries';
import { balanceUnits } from './serialize';
import type { RolloverPolicy, StoredEntitlement, StoredGrant, StoredLedgerEntry } from './state';

const DAY_MS = 86_400_000;

/** One grant ending: who it is, what it held, and the ledger position it ends at. */
interface Ending {
  grant: StoredGrant;
  entitlement: StoredEntitlement;
  /** Units the grant still held. */
  left: number;
  /** The balance before the grant ended. */
  before: number;
  /** How many times these credits have rolled over already. */
  count: number;
  now: string;
}

/**
 * Ends one grant at its expiry (at the pinned clock). Without a rollover rule: a credit_expired
 * entry for what was left. With one: the rule's share rolls into a new grant (credit_rolled_over),
 * the rest expires, and at the rollover limit everything left is forfeited (rollover_forfeited).
 */
export function expireGrant(deps: LedgerDeps, grant: StoredGrant): void {
  const { store, clock } = deps;
  const state = store.data;
  const now = clock.nowIso();
  const entitlement = state.entitlements[grant.credit_entitlement_id];
  const before = balanceUnits(state, grant.credit_entitlement_id, grant.customer_id);
  const left = grant.remaining_units;
  grant.is_expired = true;
  grant.remaining_units = 0;
  grant.updated_at = now;
  if (!entitlement || left === 0) {
    store.save();
    return;
  }
  touchBalance(state, entitlement.id, grant.customer_id, now);
  const policy = grant.rollover ?? null;
  const ending: Ending = { grant, entitlement, left, before, count: grant.rollover_count ?? 0, now };
  const entries =
    policy && policy.max_count !== null && ending.count >= policy.max_count
      ? [forfeit(deps, ending, policy.max_count)]
      : expireAndRollOver(deps, ending, policy);
  store.save();
  for (const entry of entries) announce(deps.emit, entry);
}

/** At the rollover limit nothing carries over again: the whole leftover is forfeited. */
function forfeit(deps: LedgerDeps, e: Ending, maxCount: number): StoredLedgerEntry {
  return recordEntry(
    deps.store.data,
    { entitlement: e.entitlement, customerId: e.grant.customer_id, isCredit: false, units: e.left },
    {
      ...fromGrant(e.grant),
      transaction_type: 'rollover_forfeited',
      description: `Rollover limit (${maxCount}) reached; unused credits forfeited`,
      allocations: [{ grant_id: e.grant.id, units: e.left }],
    },
    e.before,
    e.now,
  );
}

/** The rule's share (none without a rule) rolls into a new grant; the rest expires. */
function expireAndRollOver(deps: LedgerDeps, e: Ending, policy: RolloverPolicy | null): StoredLedgerEntry[] {
  const entries: StoredLedgerEntry[] = [];
  // Floor: a share that is not a whole unit stays behind and expires.
  const rolled = policy ? Math.floor((e.left * policy.percentage) / 100) : 0;
  const expired = e.left - rolled;
  let balance = e.before;
  if (expired > 0) {
    entries.push(
      recordEntry(
        deps.store.data,
        { entitlement: e.entitlement, customerId: e.grant.customer_id, isCredit: false, units: expired },
        {
          ...fromGrant(e.grant),
          transaction_type: 'credit_expired',
          description: 'Unused credits expired',
          allocations: [{ grant_id: e.grant.id, units: expired }],
        },
        balance,
        e.now,
      ),
    );
    balance -= expired;
  }
  if (rolled > 0 && policy) entries.push(rollOver(deps, e, policy, rolled, balance));
  return entries;
}

/** The rolled share as a child grant, and its credit_rolled_over entry. */
function rollOver(deps: LedgerDeps, e: Ending, policy: RolloverPolicy, rolled: number, balance: number): StoredLedgerEntry {
  const { clock } = deps;
  const state = deps.store.data;
  const { grant, count, now } = e;
  grant.is_rolled_over = true;
  const lifetimeEnd = policy.timeframe
    ? addInterval(clock.now(), policy.timeframe.interval, policy.timeframe.count)
    : policy.lifetime_days !== null
      ? new Date(clock.now().getTime() + policy.lifetime_days * DAY_MS)
      : null;
  const child: StoredGrant = {
    id: newId('cgr'),
    seq: ++state.seq,
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
  state.grants.push(child);
  // A transfer, not new money: the credits move from the old grant to the new one, so
  // balance_before equals balance_after (README: "Rollover").
  return recordEntry(
    state,
    { entitlement: e.entitlement, customerId: grant.customer_id, units: rolled, isCredit: true },
    {
      ...fromGrant(grant),
      grant_id: child.id,
      transaction_type: 'credit_rolled_over',
      description:
        `${policy.percentage}% of unused credits rolled over ` +
        `(rollover ${count + 1}${policy.max_count === null ? '' : ` of ${policy.max_count}`})`,
      allocations: [{ grant_id: child.id, units: rolled }],
    },
    balance,
    now,
    balance,
  );
}

/** What every entry of a grant's ending shares: it refers to the grant and carries its metadata. */
function fromGrant(grant: StoredGrant) {
  return { reference_type: 'grant', reference_id: grant.id, grant_id: grant.id, idempotency_key: null, metadata: grant.metadata ?? {} };
}
