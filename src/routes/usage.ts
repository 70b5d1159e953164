import { Router, type RequestHandler } from 'express';
import type { CreditLedgerEntry } from 'dodopayments/resources/credit-entitlements/balances';
import { z } from 'zod';
import { customerOf } from '../auth/middleware';
import { addCredits, freshnessHeaders, type BalanceCache } from '../billing/balance-cache';
import type { Database } from '../db/index';
import { leaseUnspent } from '../db/leases';
import type { Billing } from '../billing/billing';
import { CATALOG } from '../billing/catalog';
import { parse } from './validate';

/** The plan's low-balance threshold in credits: 20% of 5,000 = 1,000 (the tutorial's numbers). */
export const LOW_BALANCE_THRESHOLD = (CATALOG.plan.credits * CATALOG.plan.lowBalanceThresholdPercent) / 100;

/** At most this many days in one chart. */
export const MAX_USAGE_DAYS = 90;

/**
 * At most this many ledger entries are read per request (100 per page, so 50 pages); a
 * busier window is answered with `truncated: true` and the oldest days' balance unknown.
 */
export const MAX_LEDGER_ENTRIES = 5000;

const DAY_MS = 86_400_000;

export const usageQuery = z.strictObject({
  days: z
    .string({ error: 'must be given once' })
    .regex(/^\d{1,3}$/, `must be a whole number from 1 to ${MAX_USAGE_DAYS}`)
    .transform(Number)
    .refine((n) => n >= 1 && n <= MAX_USAGE_DAYS, `must be a whole number from 1 to ${MAX_USAGE_DAYS}`)
    .optional(),
});

/**
 * One UTC day of the chart. What the customer spent is `emails` (credits debited by sends)
 * plus `adjusted` (debited by hand, in Dodo's dashboard or the sandbox console); `expired`
 * (credits that lapsed unused) is not usage and is kept apart. `credits` is everything added:
 * grants, top-ups, refunds of sends that failed. `balance` is the balance at the end of that
 * day, a decimal string like Dodo's and GET /credits' (null: unknown).
 */
export interface UsageDay {
  date: string;
  emails: number;
  adjusted: number;
  expired: number;
  credits: number;
  balance: string | null;
}

/** Which column of a day a debit lands in, by Dodo's transaction type. */
export function debitKind(type: CreditLedgerEntry['transaction_type']): 'emails' | 'adjusted' | 'expired' {
  switch (type) {
    case 'credit_deducted': // MailKit's own debits: one per send or batch
    case 'overage_charged':
      return 'emails';
    case 'credit_expired':
    case 'rollover_forfeited':
      return 'expired';
    default:
      return 'adjusted';
  }
}

/**
 * GET /credits/usage?days=30: the key's customer's ledger folded into UTC days (emails,
 * adjustments, expiries, credits, end-of-day balance) for the dashboard's chart, with the live balance and the
 * plan's low-balance threshold. Register it before /credits/:customerId, which would
 * otherwise take "usage" for a customer id. The folded chart is cached like the balance (same
 * bound), and read again sooner when the balance moved or the UTC day turned.
 */
export function usageRoutes(deps: { billing: Billing; balances: BalanceCache; database: Database; auth: RequestHandler }): Router {
  const router = Router();

  router.get('/credits/usage', deps.auth, async (req, res) => {
    const days = parse(usageQuery, req.query, 'query').days ?? 30;
    const customerId = customerOf(req);
    // The balance first: a read it makes moves the balance, which the usage cache checks.
    const balance = await deps.balances.balance(customerId);
    const usage = await deps.balances.usage(customerId, days, async () => {
      const since = new Date(utcMidnight(Date.now()) - (days - 1) * DAY_MS);
      const entries = await deps.billing.ledger(customerId, MAX_LEDGER_ENTRIES, { since });
      const truncated = entries.length >= MAX_LEDGER_ENTRIES;
      const leases = await leaseUnspent(deps.database, customerId, [...new Set(entries.flatMap((e) => (leaseOf(e) ? [leaseOf(e)!.id] : [])))]);
      return { days: foldByDay(entries, { days, now: Date.now(), truncated, liveBalance: balance.value, leases }), truncated };
    });
    res.set(freshnessHeaders([{ ...balance, key: 'balance' }, { ...usage, key: 'usage' }]));
    res.json({
      days: usage.value.days,
      // A string, as Dodo, the tutorial and GET /credits give it.
      balance: balance.value,
      low_balance_threshold: LOW_BALANCE_THRESHOLD,
      truncated: usage.value.truncated,
    });
  });

  return router;
}

/**
 * Folds ledger entries (in Dodo's newest-first order) into `days` consecutive UTC days that
 * end today, or on the newest entry's day when Dodo's clock is ahead of ours (a sandbox whose
 * clock was advanced). With `truncated`, the oldest entries of the window are missing, so the
 * balance before the oldest one seen is unknown (null). With no entry at all, nothing changed
 * in the window and every day ends on `liveBalance`.
 */
export function foldByDay(
  entries: CreditLedgerEntry[],
  opts: { days: number; now: number; truncated: boolean; liveBalance: string; leases?: Map<string, number> },
): UsageDay[] {
  const { days, now, truncated, liveBalance } = opts;
  // Credit leases (issue 13): a lease's debit is a block of credits taken ahead, and its return
  // gives back what was not spent. The chart counts what was spent on emails: a lease's debit
  // counts less its unspent credits (still held, or returned), its return not at all; and
  // balances count the unspent credits of a lease as the customer's, as GET /credits does.
  const returned = new Map<string, number>();
  for (const e of entries) {
    const lease = leaseOf(e);
    if (lease?.kind === 'lease_return') returned.set(lease.id, Number(e.amount));
  }
  const unspentOf = (id: string) => opts.leases?.get(id) ?? returned.get(id) ?? 0;
  /** Credits held in leases at this point of the ledger: added to Dodo's balance. */
  let held = 0;
  const shown = (e: CreditLedgerEntry) => (held ? addCredits(e.balance_after, held) : e.balance_after);
  // Oldest first; entries with the same timestamp keep Dodo's order, reversed.
  const chronological = entries
    .map((e, i) => ({ e, t: Date.parse(e.created_at), i }))
    .sort((a, b) => a.t - b.t || b.i - a.i);
  const end = utcMidnight(Math.max(now, chronological.at(-1)?.t ?? now));
  const start = end - (days - 1) * DAY_MS;

  const out: UsageDay[] = [];
  for (let d = 0; d < days; d++) out.push({ date: isoDate(start + d * DAY_MS), emails: 0, adjusted: 0, expired: 0, credits: 0, balance: null });
  if (!chronological.length) {
    for (const day of out) day.balance = liveBalance;
    return out;
  }

  // The balance carried into the window: what the oldest entry found, when we saw them all.
  let balance: string | null = truncated ? null : chronological[0]!.e.balance_before;
  let next = 0; // the first day whose end-of-day balance is not written yet
  for (const { e, t } of chronological) {
    const index = Math.floor((utcMidnight(t) - start) / DAY_MS);
    const lease = leaseOf(e);
    let amount = Number(e.amount);
    if (lease?.kind === 'lease') {
      held += unspentOf(lease.id);
      amount -= unspentOf(lease.id);
    } else if (lease?.kind === 'lease_return') {
      held -= amount;
      amount = 0;
    }
    if (index < 0) {
      balance = shown(e);
      continue;
    }
    for (; next < index; next++) out[next]!.balance = balance;
    const day = out[index]!;
    if (lease?.kind === 'lease') day.emails += amount;
    else if (!lease && e.is_credit) day.credits += amount;
    else if (!lease) day[debitKind(e.transaction_type)] += amount;
    // (a lease's return: neither usage nor credits added)
    balance = shown(e);
    day.balance = balance;
    next = index + 1;
  }
  for (; next < days; next++) out[next]!.balance = balance;
  return out;
}

/**
 * The MailKit lease a ledger entry is (its metadata): the lease's debit, or its return. Only
 * those two: Dodo copies a grant's metadata onto entries about that grant (its expiry, say),
 * which are what they say they are.
 */
function leaseOf(e: CreditLedgerEntry): { id: string; kind: 'lease' | 'lease_return' } | null {
  const id = e.metadata?.mailkit_lease;
  const kind = e.metadata?.mailkit_entry;
  if (typeof id !== 'string') return null;
  if (kind === 'lease' && !e.is_credit && e.transaction_type === 'credit_deducted') return { id, kind };
  if (kind === 'lease_return' && e.is_credit && e.transaction_type !== 'credit_expired') return { id, kind };
  return null;
}

const utcMidnight = (t: number) => Math.floor(t / DAY_MS) * DAY_MS;
const isoDate = (t: number) => new Date(t).toISOString().slice(0, 10);
