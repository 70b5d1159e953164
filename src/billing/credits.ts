import { randomBytes } from 'node:crypto';
import type { CreditLedgerEntry } from 'dodopayments/resources/credit-entitlements/balances';
import {
  claimBalance,
  dueBalances,
  findBalance,
  openSettlement,
  pruneCredits,
  recordSettlement,
  releaseBalance,
  utcDay,
  type BalanceRow,
} from '../db/credits';
import type { Database } from '../db/index';
import { HttpError } from '../errors';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { Billing } from './billing';
import { owedOf } from './credit-math';
import { CLAIM_MS, type CreditsContext } from './credits-context';
import { dodoChanged, ensureBalance, expireGrants, syncBalance } from './mirror';
import { askSettlement } from './settlement';

/**
 * The balance MailKit keeps, and its settlement to Dodo in arrears (src/billing/README.md).
 * Sends are paid from a row of MailKit's database (db/credits.ts payFromBalance), with no Dodo
 * call: 402 or paid in milliseconds, whatever Dodo's quota. This module keeps that row true to
 * Dodo: it seeds it from Dodo's grants, settles what was spent (one debit per customer every
 * few seconds while it sends, before a grant it draws from lapses, and at shutdown), applies
 * each settlement's answer, the grants' expiries and the changes Dodo's webhooks announce.
 */
export interface Credits {
  /**
   * The customer's balance (seeded from Dodo's grants the first time): what it can spend, what
   * its emails in flight hold, and what it spent that Dodo has not been told yet (`owed`).
   */
  balance(customerId: string): Promise<{ available: number; held: number; owed: number }>;
  /** Seeds the customer's balance from Dodo if MailKit has none yet (one grants read). */
  ensure(customerId: string): Promise<BalanceRow>;
  /** A ledger entry Dodo announced (a credit.* webhook): MailKit's own settlements are known; anything else is read back. */
  dodoChanged(
    entry: Pick<CreditLedgerEntry, 'id' | 'customer_id' | 'amount' | 'is_credit' | 'transaction_type' | 'created_at' | 'metadata'>,
  ): Promise<void>;
  /** One pass over the customers with work (it also runs every `intervalMs` on its own). */
  tick(): Promise<void>;
  /** Settles everything spent, now (before reading Dodo's balance directly: it then equals the customers'). */
  settleNow(): Promise<void>;
  /** Stops the passes and settles everything spent until `until` (shutdown): what is left is settled by another instance, or this one restarted. */
  settleAll(until: number): Promise<void>;
  close(): void;
}

export interface CreditsOptions {
  /** A customer sending is settled at most this often (default 5 s). */
  settleEveryMs?: number;
  /** How often this instance looks for work (default 1 s; 0: only when tick() is called). */
  intervalMs?: number;
}

/** Customers worked on at once by one instance. */
const PARALLEL = 4;
/** Settlements are kept a week (the usage chart reads its days from credit_days, kept 100 days: it shows up to 90). */
const SETTLEMENT_RETENTION_MS = 7 * 86_400_000;
const DAYS_RETENTION_MS = 100 * 86_400_000;
const PRUNE_EVERY_MS = 10 * 60_000;
/**
 * A customer that spent in the last hour has Dodo's grants read again when Dodo has not
 * confirmed them (a settlement's balance_after matching them, a sync) for this long: a change
 * whose webhook never came (the endpoint not subscribed to credit.*) shows within it.
 */
const REFRESH_MS = 15 * 60_000;
const ACTIVE_MS = 60 * 60_000;

export function createCredits(deps: {
  database: Database;
  billing: Billing;
  owner: string;
  now?: () => number;
  log?: Logger;
  metrics?: Metrics;
  options?: CreditsOptions;
}): Credits {
  const { database, billing, owner, log } = deps;
  const now = deps.now ?? Date.now;
  const settleEveryMs = deps.options?.settleEveryMs ?? 5_000;
  const intervalMs = deps.options?.intervalMs ?? 1_000;
  const c: CreditsContext = { database, billing, owner, now, log, metrics: deps.metrics, busy: new Set(), seeding: new Map() };
  const { busy } = c;
  let ticking: Promise<void> | null = null;
  let closed = false;

  /** The work one customer has, done under a claim on its balance (one instance at a time). */
  async function work(customerId: string, all: boolean): Promise<void> {
    if (busy.has(customerId)) return;
    const t = now();
    const row = await claimBalance(database, customerId, owner, t, t + CLAIM_MS);
    if (!row) return;
    busy.add(customerId);
    try {
      const open = await openSettlement(database, customerId);
      if (open) {
        await askSettlement(c, open);
        return;
      }
      const expiring = row.nextCheck !== null && row.nextCheck <= t;
      if (expiring) await expireGrants(c, customerId);
      if (row.needsSync || (row.lastSpentAt >= t - ACTIVE_MS && (row.syncedAt ?? 0) < t - REFRESH_MS)) await syncBalance(c, customerId);
      const current = await findBalance(database, customerId);
      if (current && current.unsettled > 0 && (all || expiring || current.lastSettledAt <= t - settleEveryMs)) {
        const s = await recordSettlement(database, customerId, `stl_${randomBytes(12).toString('base64url')}`, now());
        if (s) await askSettlement(c, s);
      }
    } catch (err) {
      if (err instanceof HttpError && (err.status === 429 || err.status === 503))
        log?.debug({ customerId, code: err.code }, 'settlement waits for Dodo');
      else log?.warn({ customerId, err }, 'could not settle or sync a balance yet');
    } finally {
      busy.delete(customerId);
      await releaseBalance(database, customerId, owner).catch(() => undefined);
    }
  }

  let prunedAt = 0;
  async function pass(opts: { all?: boolean; until?: number } = {}): Promise<void> {
    const t = now();
    if (t - prunedAt > PRUNE_EVERY_MS) {
      prunedAt = t;
      await pruneCredits(database, t - SETTLEMENT_RETENTION_MS, utcDay(t - DAYS_RETENTION_MS));
    }
    const due = await dueBalances(
      database,
      { now: t, settleBefore: t - settleEveryMs, refreshBefore: t - REFRESH_MS, activeSince: t - ACTIVE_MS, owner, all: opts.all },
      100,
    );
    const queue = [...due];
    const worker = async () => {
      for (let c = queue.shift(); c && now() < (opts.until ?? Infinity); c = queue.shift()) await work(c, opts.all ?? false);
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
  }

  const timer =
    intervalMs > 0 ? setInterval(() => void credits.tick().catch((err: unknown) => log?.warn({ err }, 'credit pass failed')), intervalMs) : null;
  timer?.unref();

  const credits: Credits = {
    async balance(customerId) {
      const row = await ensureBalance(c, customerId);
      return { available: row.available, held: row.held, owed: owedOf(row) };
    },
    ensure: (customerId) => ensureBalance(c, customerId),
    dodoChanged: (entry) => dodoChanged(c, entry),
    tick() {
      if (closed) return Promise.resolve();
      ticking ??= pass().finally(() => {
        ticking = null;
      });
      return ticking;
    },
    async settleNow() {
      // One pass at a time on an instance: a claim it holds is then never another pass's own.
      while (ticking) await ticking.catch(() => undefined);
      ticking = pass({ all: true }).finally(() => {
        ticking = null;
      });
      await ticking;
    },
    async settleAll(until) {
      closed = true;
      if (timer) clearInterval(timer);
      while (ticking) await ticking.catch(() => undefined);
      await pass({ all: true, until }).catch((err: unknown) => log?.warn({ err }, 'could not settle every balance at shutdown'));
    },
    close() {
      closed = true;
      if (timer) clearInterval(timer);
    },
  };
  return credits;
}
