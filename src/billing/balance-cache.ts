import DodoPayments from 'dodopayments';
import type { Billing, BillingObserver } from './billing';
import {
  cachedBalance,
  cachedUsage,
  dodoTimeUs,
  recordBalance,
  recordUndatedBalance,
  storeUsage,
  unconfirmBalanceOf,
  type BalanceFact,
} from '../db/balances';
import type { Database } from '../db/index';
import { heldCredits } from '../db/leases';
import { HttpError } from '../errors';
import type { Logger } from '../logger';

/**
 * How long a balance Dodo gave MailKit is served without asking Dodo again (default 30 s).
 * Every Dodo call (debits, refunds, reads, checkouts, readiness) spends one budget of 240 a
 * minute; at 30 s a customer's open dashboards cost at most 2 balance reads a minute however
 * often they poll (none while the customer sends: each debit's answer refreshes it).
 */
export const DEFAULT_BALANCE_MAX_AGE_MS = 30_000;

/** A value served from the cache, and how: what the route turns into `Age` and `Cache-Status`. */
export interface Served<T> {
  value: T;
  /** Since Dodo last gave this value (balance: last answered MailKit directly; usage: the ledger read). */
  ageMs: number;
  /** The freshness bound it was served under. */
  maxAgeMs: number;
  /**
   * hit: fresh from the cache; miss: read from Dodo now; collapsed: joined a read another
   * request of this instance had in flight; stale: Dodo did not answer the read (fwdStatus), so
   * the last value known is served.
   */
  status: 'hit' | 'miss' | 'collapsed' | 'stale';
  fwdStatus?: number;
}

/** Balances and usage served from what MailKit knows, refreshed from Dodo past a bound. */
export interface BalanceCache {
  readonly maxAgeMs: number;
  /**
   * What the customer can spend, within the bound: Dodo's balance (one Dodo read per instance
   * and customer when stale) plus the credits it holds in leases, unspent (issue 13).
   */
  balance(customerId: string): Promise<Served<string>>;
  /**
   * A usage chart computed by `compute` (which reads the ledger), cached per customer and
   * window within the same bound, and recomputed sooner when the balance moved or the UTC day turned.
   */
  usage<T>(customerId: string, days: number, compute: () => Promise<T>): Promise<Served<T>>;
  /** A balance a ledger webhook brought: `asOf` is its entry's `created_at`. */
  recordWebhook(customerId: string, balance: string, asOf: string, eventType: string): Promise<void>;
  /** A balance a webhook brought with no entry to date it (credit.balance_low): it can only cast doubt. */
  recordUndated(customerId: string, balance: string, eventType: string): Promise<void>;
  /** What billing reports of its own writes (wired in src/stack.ts). */
  readonly observer: BillingObserver;
}

/** Builds the cache on the shared database; `now` is injectable so tests can move past the bound. */
export function createBalanceCache(opts: {
  database: Database;
  /** Reads Dodo; set after billing exists (billing reports its writes to `observer`). */
  billing: () => Pick<Billing, 'balanceRead'>;
  maxAgeMs?: number;
  now?: () => number;
  log?: Logger;
}): BalanceCache {
  const { database, log } = opts;
  const maxAgeMs = opts.maxAgeMs ?? DEFAULT_BALANCE_MAX_AGE_MS;
  const now = opts.now ?? Date.now;
  const balanceReads = new Map<string, Promise<void>>();
  /** When this instance last finished a read per customer: a request that looked before it shares it. */
  const lastRead = new Map<string, number>();
  const usageReads = new Map<string, Promise<unknown>>();

  const record = (fact: BalanceFact) => recordBalance(database, fact, now());

  /** One Dodo read for this customer at a time on this instance; callers that come meanwhile share it. */
  const readDodo = (customerId: string): { done: Promise<void>; joined: boolean } => {
    const running = balanceReads.get(customerId);
    if (running) return { done: running, joined: true };
    const done = (async () => {
      const issuedAt = now();
      const read = await opts.billing().balanceRead(customerId);
      await record({ customerId, balance: read.balance, asOfUs: dodoTimeUs(read.lastTransactionAt), source: 'read', issuedAt, isRead: true });
      if (lastRead.size >= 10_000) lastRead.clear();
      lastRead.set(customerId, now());
    })().finally(() => balanceReads.delete(customerId));
    balanceReads.set(customerId, done);
    return { done, joined: false };
  };

  /** Dodo's balance plus the customer's unspent lease credits (which Dodo's balance no longer counts). */
  async function balance(customerId: string): Promise<Served<string>> {
    const [served, held] = await Promise.all([dodoBalance(customerId), heldCredits(database, customerId)]);
    return held ? { ...served, value: addCredits(served.value, held) } : served;
  }

  async function dodoBalance(customerId: string): Promise<Served<string>> {
    const lookedAt = now();
    const cached = await cachedBalance(database, customerId);
    const age = cached?.confirmedAt != null ? now() - cached.confirmedAt : Infinity;
    if (cached && age < maxAgeMs) return { value: cached.balance, ageMs: Math.max(0, age), maxAgeMs, status: 'hit' };
    // A read that finished after this request looked at the cache already answers it.
    const { done, joined } = (lastRead.get(customerId) ?? -Infinity) >= lookedAt ? { done: Promise.resolve(), joined: true } : readDodo(customerId);
    try {
      await done;
    } catch (err) {
      const status = unanswered(err);
      if (!cached || status === null) throw err;
      log?.warn({ customerId, status, ageMs: age }, 'Dodo did not answer a balance read; serving the last balance known');
      return { value: cached.balance, ageMs: Number.isFinite(age) ? Math.max(0, age) : now() - cached.recordedAt, maxAgeMs, status: 'stale', fwdStatus: status };
    }
    // The row now holds the read, or a newer fact that came in meanwhile (a debit, a webhook).
    const fresh = await cachedBalance(database, customerId);
    if (!fresh) throw new Error(`balance of ${customerId} was read but not recorded`);
    const freshAge = fresh.confirmedAt != null ? Math.max(0, now() - fresh.confirmedAt) : 0;
    return { value: fresh.balance, ageMs: freshAge, maxAgeMs, status: joined ? 'collapsed' : 'miss' };
  }

  async function usage<T>(customerId: string, days: number, compute: () => Promise<T>): Promise<Served<T>> {
    const [cached, bal] = await Promise.all([cachedUsage(database, customerId, days), cachedBalance(database, customerId)]);
    const balanceAsOfUs = bal?.asOfUs ?? -1;
    const t = now();
    const age = cached ? t - cached.fetchedAt : Infinity;
    if (cached && age < maxAgeMs && age >= 0 && cached.balanceAsOfUs === balanceAsOfUs && utcDay(cached.fetchedAt) === utcDay(t)) {
      return { value: JSON.parse(cached.body) as T, ageMs: age, maxAgeMs, status: 'hit' };
    }
    const key = `${customerId}:${days}`;
    let running = usageReads.get(key) as Promise<T> | undefined;
    const joined = running !== undefined;
    if (!running) {
      running = (async () => {
        const fetchedAt = now();
        const value = await compute();
        // Stamped with the balance seen before the ledger read: an entry recorded while it ran
        // moves the balance past the stamp, and the next request reads the ledger again.
        await storeUsage(database, customerId, days, { body: JSON.stringify(value), fetchedAt, balanceAsOfUs });
        return value;
      })().finally(() => usageReads.delete(key));
      usageReads.set(key, running);
    }
    try {
      return { value: await running, ageMs: 0, maxAgeMs, status: joined ? 'collapsed' : 'miss' };
    } catch (err) {
      const status = unanswered(err);
      if (!cached || status === null) throw err;
      log?.warn({ customerId, status, ageMs: age }, 'Dodo did not answer a ledger read; serving the last usage known');
      return { value: JSON.parse(cached.body) as T, ageMs: Math.max(0, age), maxAgeMs, status: 'stale', fwdStatus: status };
    }
  }

  const observer: BillingObserver = {
    now,
    ledgerWrite: (e) =>
      record({ customerId: e.customerId, balance: e.balanceAfter, asOfUs: dodoTimeUs(e.createdAt), source: e.kind, issuedAt: e.issuedAt }),
    debitRefused: (customerId, amount) => unconfirmBalanceOf(database, customerId, amount),
    writeInDoubt: (customerId) => unconfirmBalanceOf(database, customerId, -Infinity),
  };

  return {
    maxAgeMs,
    balance,
    usage,
    recordWebhook: (customerId, value, asOf, eventType) =>
      record({ customerId, balance: value, asOfUs: dodoTimeUs(asOf), source: `webhook:${eventType}`, issuedAt: null }),
    recordUndated: (customerId, value, eventType) => recordUndatedBalance(database, customerId, value, `webhook:${eventType}`, now()),
    observer,
  };
}

/**
 * The status of a Dodo read that got no usable answer (429, 5xx, unreachable: billing's
 * guard turns them into 429 billing_rate_limited and 503 billing_unavailable), else null.
 */
function unanswered(err: unknown): number | null {
  if (err instanceof HttpError && (err.code === 'billing_rate_limited' || err.code === 'billing_unavailable')) return err.status;
  if (err instanceof DodoPayments.APIConnectionError) return 503;
  return null;
}

const utcDay = (t: number) => Math.floor(t / 86_400_000);

/** `balance` (a decimal string, as Dodo gives it) plus `n` whole credits, in the same notation. */
export function addCredits(balance: string, n: number): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(balance.trim());
  if (!m) return String(Number(balance) + n);
  const decimals = m[3]?.length ?? 0;
  const scaled = BigInt(`${m[1]}${m[2]}${m[3] ?? ''}`) + BigInt(n) * 10n ** BigInt(decimals);
  const negative = scaled < 0n;
  const digits = (negative ? -scaled : scaled).toString().padStart(decimals + 1, '0');
  const whole = decimals ? `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}` : digits;
  return negative ? `-${whole}` : whole;
}

/**
 * The response headers that say how fresh a served value is: `Age` (seconds since Dodo gave
 * it) and `Cache-Status` (RFC 9211: hit, or forwarded to Dodo and why, with the seconds of
 * freshness left). `Cache-Control: no-store` stays: a browser must not reuse an answer itself,
 * for the dashboard re-reads at once after a send.
 */
export function freshnessHeaders(served: Served<unknown> | Array<Served<unknown> & { key: string }>): Record<string, string> {
  const list = Array.isArray(served) ? served : [served];
  const age = Math.max(...list.map((s) => s.ageMs));
  return {
    'Cache-Control': 'no-store',
    Age: String(Math.floor(age / 1000)),
    'Cache-Status': list.map((s) => cacheStatus(s, 'key' in s ? (s as { key: string }).key : undefined)).join(', '),
  };
}

function cacheStatus(s: Served<unknown>, key?: string): string {
  const ttl = Math.ceil((s.maxAgeMs - s.ageMs) / 1000);
  const how = {
    hit: 'hit',
    miss: 'fwd=miss; stored',
    collapsed: 'fwd=miss; collapsed',
    stale: `fwd=stale; fwd-status=${s.fwdStatus ?? 503}`,
  }[s.status];
  return `MailKit; ${how}; ttl=${ttl}${key ? `; key="${key}"` : ''}`;
}
