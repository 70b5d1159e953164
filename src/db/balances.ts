import { sql } from 'kysely';
import type { Database } from './index';

/** One thing Dodo said about a customer's balance. */
export interface BalanceFact {
  customerId: string;
  /** A decimal string, as Dodo gives it. */
  balance: string;
  /** Dodo's time of the fact, microseconds since the epoch (see `dodoTimeUs`). */
  asOfUs: number;
  /** read | debit | credit | webhook:<event type> */
  source: string;
  /**
   * For Dodo's direct answer to MailKit (a balance read, or its answer to one of MailKit's own
   * debits or refunds): when MailKit sent that request, on MailKit's clock. Null for a webhook.
   */
  issuedAt: number | null;
  /** A balance read (a sum of every entry up to its time), rather than one ledger entry's balance_after. */
  isRead?: boolean;
}

/** The newest balance MailKit knows for a customer. */
export interface CachedBalance {
  balance: string;
  asOfUs: number;
  source: string;
  recordedAt: number;
  /** When Dodo last answered MailKit directly with it (null: only webhooks so far). */
  confirmedAt: number | null;
}

/** The cached balance of a customer, or undefined. */
export async function cachedBalance(database: Database, customerId: string): Promise<CachedBalance | undefined> {
  return database.db
    .selectFrom('balanceCache')
    .select(['balance', 'asOfUs', 'source', 'recordedAt', 'confirmedAt'])
    .where('customerId', '=', customerId)
    .executeTakeFirst();
}

/**
 * Records a fact in one atomic upsert, so that concurrent writers (any instance) cannot
 * interleave. Which fact wins:
 *
 * - Facts are ordered by Dodo's own time (`asOfUs`): a ledger entry's `created_at`, a read's
 *   `last_transaction_at` (`credit.balance_low`: see recordUndatedBalance). A webhook replaces the
 *   stored value only when strictly newer: a late or redelivered one changes nothing.
 * - A direct answer (a read, or Dodo's answer to MailKit's own debit or refund) also replaces it
 *   when MailKit sent that request after the stored value was written (`issuedAt` later than
 *   `recorded_at`): Dodo then already held the stored fact, so its answer includes it. This
 *   lets a read correct the value even when Dodo dates an entry in the past (an expiry).
 * - At equal Dodo times a read wins (it sums every entry up to that instant). Two entries of
 *   the same instant (Dodo stamps a payment's entries alike) cannot be ordered: when they
 *   disagree the value is kept but marked unconfirmed, so the next request reads Dodo.
 * - A direct answer that replaces the value, or agrees with it at the same instant, confirms
 *   it: `confirmed_at` moves to `now`, the age the freshness bound is measured from. A webhook
 *   never moves it.
 */
export async function recordBalance(database: Database, fact: BalanceFact, now: number): Promise<void> {
  const direct = fact.issuedAt !== null;
  const later = fact.isRead ? sql<boolean>`excluded.as_of_us >= balance_cache.as_of_us` : sql<boolean>`excluded.as_of_us > balance_cache.as_of_us`;
  const replaces = direct ? sql<boolean>`(${later} or balance_cache.recorded_at < ${fact.issuedAt})` : later;
  const sameInstant = sql<boolean>`excluded.as_of_us = balance_cache.as_of_us`;
  const keepOrTake = <T>(column: string) => sql<T>`case when ${replaces} then excluded.${sql.raw(column)} else balance_cache.${sql.raw(column)} end`;
  const confirmedAt = direct
    ? sql<number | null>`case when ${replaces} or excluded.balance = balance_cache.balance then excluded.confirmed_at else null end`
    : sql<number | null>`case when ${replaces} or excluded.balance = balance_cache.balance then balance_cache.confirmed_at else null end`;
  await database.db
    .insertInto('balanceCache')
    .values({
      customerId: fact.customerId,
      balance: fact.balance,
      asOfUs: fact.asOfUs,
      source: fact.source,
      recordedAt: now,
      confirmedAt: direct ? now : null,
    })
    .onConflict((oc) =>
      oc
        .column('customerId')
        .doUpdateSet({
          balance: keepOrTake<string>('balance'),
          asOfUs: keepOrTake<number>('as_of_us'),
          source: keepOrTake<string>('source'),
          recordedAt: keepOrTake<number>('recorded_at'),
          confirmedAt,
        })
        // Anything else (an older fact) changes nothing.
        .where(sql<boolean>`${replaces} or ${sameInstant}`),
    )
    .execute();
}

/**
 * Marks a customer's cached balance unconfirmed, so the next request reads Dodo: when it claimed
 * at least `atLeast` and Dodo just refused a debit of that many (the cache is wrong), or, with
 * `-Infinity`, when a write went unanswered (the balance may have moved).
 */
export async function unconfirmBalanceOf(database: Database, customerId: string, atLeast: number): Promise<void> {
  const row = await cachedBalance(database, customerId);
  if (!row || row.confirmedAt === null || !(Number(row.balance) >= atLeast)) return;
  await database.db
    .updateTable('balanceCache')
    .set({ confirmedAt: null })
    .where('customerId', '=', customerId)
    .where('recordedAt', '=', row.recordedAt)
    .execute();
}

/**
 * A balance with no time of its own to order it by (`credit.balance_low` carries none of its
 * ledger entry): it never replaces the cached one, but a cached balance that disagrees with it
 * is left unconfirmed, so the next request reads Dodo. With nothing cached it is kept as the
 * oldest possible fact, unconfirmed (anything else replaces it).
 */
export async function recordUndatedBalance(database: Database, customerId: string, balance: string, source: string, now: number): Promise<void> {
  await database.db
    .insertInto('balanceCache')
    .values({ customerId, balance, asOfUs: 0, source, recordedAt: now, confirmedAt: null })
    .onConflict((oc) => oc.column('customerId').doUpdateSet({ confirmedAt: null }).where(sql<boolean>`balance_cache.balance <> excluded.balance`))
    .execute();
}

/** A folded usage chart as cached. */
export interface CachedUsage {
  body: string;
  fetchedAt: number;
  balanceAsOfUs: number;
}

export async function cachedUsage(database: Database, customerId: string, days: number): Promise<CachedUsage | undefined> {
  return database.db
    .selectFrom('usageCache')
    .select(['body', 'fetchedAt', 'balanceAsOfUs'])
    .where('customerId', '=', customerId)
    .where('days', '=', days)
    .executeTakeFirst();
}

/** Stores a folded usage chart, unless a newer one (by fetch time) is there already. */
export async function storeUsage(database: Database, customerId: string, days: number, usage: CachedUsage): Promise<void> {
  await database.db
    .insertInto('usageCache')
    .values({ customerId, days, ...usage })
    .onConflict((oc) =>
      oc
        .columns(['customerId', 'days'])
        .doUpdateSet({ body: sql<string>`excluded.body`, fetchedAt: sql<number>`excluded.fetched_at`, balanceAsOfUs: sql<number>`excluded.balance_as_of_us` })
        .where(sql<boolean>`excluded.fetched_at >= usage_cache.fetched_at`),
    )
    .execute();
}

/**
 * Dodo's ISO 8601 time as microseconds since the epoch (Dodo writes up to microseconds; a
 * JavaScript Date keeps milliseconds). 0 for a missing or unreadable time: older than anything.
 */
export function dodoTimeUs(iso: string | null | undefined): number {
  if (!iso) return 0;
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(.*)$/.exec(iso);
  if (!m) return 0;
  const seconds = Date.parse(`${m[1]}${m[3] || 'Z'}`);
  if (!Number.isFinite(seconds)) return 0;
  const fraction = Number(((m[2] ?? '') + '000000').slice(0, 6));
  return seconds * 1000 + fraction;
}
