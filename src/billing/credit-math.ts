import type { BalanceRow, BalancePatch } from '../db/credits';

/**
 * The arithmetic of the balance MailKit keeps, as pure functions of the stored row
 * (src/billing/README.md has the model). Credits are whole: every email costs one per
 * recipient, and grants are read as whole credits.
 */

/** One of Dodo's grants as mirrored: what is left of it, and when it lapses (epoch ms; null: never). */
export interface Grant {
  id: string;
  expiresAt: number | null;
  remaining: number;
}

/**
 * Within this long of its expiry, a grant's credits are no longer spent: a settlement asked now
 * reaches Dodo before it lapses (a Dodo call takes well under a second; its retries, seconds).
 */
export const EXPIRY_MARGIN_MS = 60_000;

/** What the customer owes Dodo and Dodo does not know yet: held by sends in flight (less what a lapse paid), spent, being settled. */
export function owedOf(row: Pick<BalanceRow, 'held' | 'prepaid' | 'unsettled' | 'settling'>): number {
  return row.held - row.prepaid + row.unsettled + row.settling;
}

export function grantsOf(row: Pick<BalanceRow, 'grants'>): Grant[] {
  return JSON.parse(row.grants) as Grant[];
}

/**
 * What can be spent at `now`: Dodo draws a debit from its grants in order, so what is owed
 * (settled later) comes first out of the first grants; what is left of each grant counts
 * unless it lapses within the margin. Negative when more is owed than Dodo holds.
 */
export function spendable(grants: Grant[], owed: number, now: number): number {
  let rest = owed;
  let available = 0;
  for (const g of grants) {
    const take = Math.min(g.remaining, Math.max(rest, 0));
    rest -= take;
    if (g.expiresAt === null || g.expiresAt - EXPIRY_MARGIN_MS > now) available += g.remaining - take;
  }
  return available - Math.max(rest, 0);
}

/** The grants after Dodo drew a debit of `amount` from them, in order (those lapsed by `at` skipped). */
export function drawn(grants: Grant[], amount: number, at: number): Grant[] {
  let rest = amount;
  return grants
    .map((g) => {
      if (g.expiresAt !== null && g.expiresAt <= at) return g;
      const take = Math.min(g.remaining, rest);
      rest -= take;
      return { ...g, remaining: g.remaining - take };
    })
    .filter((g) => g.remaining > 0);
}

/** Of `owed`, what falls in each grant named in `ids`, drawn in order: what their lapse takes with them. */
export function lapsedOwed(grants: Grant[], owed: number, ids: Set<string>): number {
  let rest = owed;
  let lapsed = 0;
  for (const g of grants) {
    const take = Math.min(g.remaining, Math.max(rest, 0));
    rest -= take;
    if (ids.has(g.id)) lapsed += take;
  }
  return lapsed;
}

/**
 * The balance with `grants` as Dodo's (after a sync, a settlement, an expiry): `available`
 * computed afresh, and when to look again (the next grant entering its margin, or expiring).
 * `lapsed`: grants that expired with credits owed in them, which Dodo's lapse has already
 * taken: owed no more (spent emails first, then what sends in flight hold, as `prepaid`).
 */
export function rebalanced(row: BalanceRow, grants: Grant[], now: number, lapsed = 0): BalancePatch {
  const fromUnsettled = Math.min(row.unsettled, lapsed);
  const fromHeld = Math.min(row.held - row.prepaid, lapsed - fromUnsettled);
  const next = { ...row, unsettled: row.unsettled - fromUnsettled, prepaid: row.prepaid + fromHeld };
  const live = grants.filter((g) => g.remaining > 0 && (g.expiresAt === null || g.expiresAt > now));
  return {
    unsettled: next.unsettled,
    prepaid: next.prepaid,
    grants: JSON.stringify(live),
    available: spendable(live, owedOf(next), now),
    nextCheck: nextCheckOf(live, now),
    updatedAt: now,
  };
}

/** When a grant next enters its margin or expires. */
export function nextCheckOf(grants: Grant[], now: number): number | null {
  const times = grants.flatMap((g) => (g.expiresAt === null ? [] : [g.expiresAt - EXPIRY_MARGIN_MS, g.expiresAt])).filter((t) => t > now);
  return times.length ? Math.min(...times) : null;
}
