import { randomBytes } from 'node:crypto';
import type { CreditLedgerEntry } from 'dodopayments/resources/credit-entitlements/balances';
import {
  claimBalance,
  countDodoEntry,
  closeSettlement,
  dueBalances,
  findBalance,
  openSettlement,
  pruneCredits,
  recordSettlement,
  releaseBalance,
  seedBalance,
  updateBalance,
  updateSettlement,
  utcDay,
  type BalanceRow,
  type SettlementRow,
} from '../db/credits';
import type { Database } from '../db/index';
import { HttpError } from '../errors';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { DodoUnavailable, InsufficientCredits, type Billing } from './billing';
import { drawn, grantsOf, lapsedOwed, nextCheckOf, owedOf, rebalanced, spendable, type Grant } from './credit-math';

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
  dodoChanged(entry: Pick<CreditLedgerEntry, 'id' | 'customer_id' | 'amount' | 'is_credit' | 'transaction_type' | 'created_at' | 'metadata'>): Promise<void>;
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

/** How long an instance's claim on a customer's settlement holds: longer than a Dodo call with its wait for a turn and its retries. */
const CLAIM_MS = 30_000;
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

export function createCredits(deps: { database: Database; billing: Billing; owner: string; now?: () => number; log?: Logger; metrics?: Metrics; options?: CreditsOptions }): Credits {
  const { database, billing, owner, log } = deps;
  const now = deps.now ?? Date.now;
  const settleEveryMs = deps.options?.settleEveryMs ?? 5_000;
  const intervalMs = deps.options?.intervalMs ?? 1_000;
  /** Customers this instance is settling or syncing now: its claim on them is its own, so it keeps them apart itself. */
  const busy = new Set<string>();
  /** Seeds under way, per customer: concurrent first sends read Dodo once. */
  const seeding = new Map<string, Promise<BalanceRow>>();
  let ticking: Promise<void> | null = null;
  let closed = false;

  /** Dodo's grants: the live ones (unexpired, not empty) in the order Dodo draws from them (oldest first), and the ids of those that lapsed. */
  async function dodoGrants(customerId: string): Promise<{ live: Grant[]; lapsed: Set<string> }> {
    const grants = await billing.grants(customerId);
    const live = grants
      .filter((g) => !g.isExpired && Math.floor(g.remainingAmount) > 0)
      .sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt))
      .map((g) => ({ id: g.id, expiresAt: g.expiresAt ? Date.parse(g.expiresAt) : null, remaining: Math.floor(g.remainingAmount) }));
    return { live, lapsed: new Set(grants.filter((g) => g.isExpired).map((g) => g.id)) };
  }

  function ensure(customerId: string): Promise<BalanceRow> {
    const running = seeding.get(customerId);
    if (running) return running;
    const p = (async () => {
      const known = await findBalance(database, customerId);
      if (known) return known;
      const grants = (await dodoGrants(customerId)).live;
      const t = now();
      const row = await seedBalance(database, customerId, {
        available: spendable(grants, 0, t),
        held: 0,
        unsettled: 0,
        settling: 0,
        prepaid: 0,
        grants: JSON.stringify(grants),
        nextCheck: nextCheckOf(grants, t),
        syncedAt: t,
        needsSync: 0,
        lastSettledAt: 0,
        lastSpentAt: 0,
        updatedAt: t,
      });
      log?.info({ customerId, available: row.available }, 'credit balance seeded from Dodo');
      return row;
    })().finally(() => seeding.delete(customerId));
    seeding.set(customerId, p);
    return p;
  }

  /**
   * Reads Dodo's grants again and makes them the mirror's: grants that lapsed meanwhile take
   * with them the credits owed in them (Dodo's lapse already accounted for them). Only while no
   * settlement is being asked: its outcome would be ambiguous in what Dodo shows.
   */
  async function sync(customerId: string): Promise<void> {
    const fresh = await dodoGrants(customerId);
    const t = now();
    await updateBalance(database, customerId, (row) => {
      // A settlement's outcome would be ambiguous in what Dodo shows: read again after it.
      if (row.settling > 0) return { needsSync: 1 };
      const before = grantsOf(row);
      return { ...rebalanced(row, fresh.live, t, lapsedOwed(before, owedOf(row), fresh.lapsed)), syncedAt: t, needsSync: 0 };
    });
  }

  /** Grants that lapsed on MailKit's clock (Dodo's runs alongside): they go, with what was owed in them. */
  async function expire(customerId: string): Promise<void> {
    const t = now();
    await updateBalance(database, customerId, (row) => {
      if (row.settling > 0) return null;
      const grants = grantsOf(row);
      const lapsed = new Set(grants.filter((g) => g.expiresAt !== null && g.expiresAt <= t).map((g) => g.id));
      return rebalanced(row, grants, t, lapsedOwed(grants, owedOf(row), lapsed));
    });
  }

  /**
   * Asks Dodo for a recorded settlement under its own key, until a definite answer: a lost
   * answer or a 5xx is asked again later under the same key, never with another amount. Dodo
   * refusing it for want of credits (a change MailKit had not heard of yet) settles what Dodo
   * holds instead, under `<id>.part`, fixed before it is asked; the rest is logged as unpaid.
   */
  async function ask(s: SettlementRow): Promise<void> {
    const amount = s.partial ?? s.credits;
    const key = s.partial === null ? s.id : `${s.id}.part`;
    let answer: { balanceAfter: string; createdAt: string } | 'exists' | null = null;
    if (amount > 0) {
      try {
        answer = await billing.debit(s.customerId, amount, key, `${s.credits} email credits spent (settlement ${s.id})`, { mailkit_settlement: s.id });
      } catch (err) {
        if (err instanceof InsufficientCredits && s.partial === null) {
          const held = Math.max(0, Math.floor(Number(await billing.balance(s.customerId))));
          const partial = Math.min(held, s.credits - 1);
          await updateSettlement(database, s.id, { partial, updatedAt: now() });
          return ask({ ...s, partial });
        }
        if (!(err instanceof InsufficientCredits)) {
          if (err instanceof DodoUnavailable) await updateSettlement(database, s.id, { inDoubt: 1, updatedAt: now() });
          throw err;
        }
        // The partial amount refused too: Dodo's balance fell again. Nothing more is taken.
      }
    }
    const paid = answer === null ? 0 : amount;
    const t = now();
    const dodoAt = answer && answer !== 'exists' ? Date.parse(answer.createdAt) : t;
    let mismatch = false;
    // Charted on Dodo's day of the debit (the sandbox's clock may run ahead of this machine's).
    const day = utcDay(Number.isFinite(dodoAt) ? dodoAt : t);
    const closedNow = await closeSettlement(database, s, { paid, balanceAfter: answer && answer !== 'exists' ? answer.balanceAfter : null, at: t, day }, (row) => {
      const grants = drawn(grantsOf(row), paid, dodoAt);
      const after = { ...row, settling: 0 };
      const patch = rebalanced(after, grants, t);
      const mirrored = grants.reduce((n, g) => n + g.remaining, 0);
      // Dodo's balance after the debit should be what the mirror holds; anything else (a change
      // not heard of yet, a debit that drew other grants than the mirror assumed) is read back.
      mismatch = answer === 'exists' || answer === null || (answer !== null && Math.floor(Number(answer.balanceAfter)) !== mirrored);
      // A match confirms the mirror as a read would.
      return { ...patch, settling: 0, lastSettledAt: t, needsSync: mismatch ? 1 : row.needsSync, ...(mismatch ? {} : { syncedAt: t }) };
    });
    if (!closedNow) return;
    deps.metrics?.settled.inc({ outcome: paid < s.credits ? 'partial' : 'paid' }, paid);
    if (paid < s.credits) {
      deps.metrics?.unpaid.inc(s.credits - paid);
      log?.error({ customerId: s.customerId, settlementId: s.id, credits: s.credits, paid, unpaid: s.credits - paid }, 'settlement: Dodo held less than was spent; the rest is unpaid');
    } else log?.debug({ customerId: s.customerId, settlementId: s.id, credits: s.credits }, 'settled with Dodo');
  }

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
        await ask(open);
        return;
      }
      const expiring = row.nextCheck !== null && row.nextCheck <= t;
      if (expiring) await expire(customerId);
      if (row.needsSync || (row.lastSpentAt >= t - ACTIVE_MS && (row.syncedAt ?? 0) < t - REFRESH_MS)) await sync(customerId);
      const current = await findBalance(database, customerId);
      if (current && current.unsettled > 0 && (all || expiring || current.lastSettledAt <= t - settleEveryMs)) {
        const s = await recordSettlement(database, customerId, `stl_${randomBytes(12).toString('base64url')}`, now());
        if (s) await ask(s);
      }
    } catch (err) {
      if (err instanceof HttpError && (err.status === 429 || err.status === 503)) log?.debug({ customerId, code: err.code }, 'settlement waits for Dodo');
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
    const due = await dueBalances(database, { now: t, settleBefore: t - settleEveryMs, refreshBefore: t - REFRESH_MS, activeSince: t - ACTIVE_MS, owner, all: opts.all }, 100);
    const queue = [...due];
    const worker = async () => {
      for (let c = queue.shift(); c && now() < (opts.until ?? Infinity); c = queue.shift()) await work(c, opts.all ?? false);
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
  }

  const timer = intervalMs > 0 ? setInterval(() => void credits.tick().catch((err: unknown) => log?.warn({ err }, 'credit pass failed')), intervalMs) : null;
  timer?.unref();

  const credits: Credits = {
    async balance(customerId) {
      const row = await ensure(customerId);
      return { available: row.available, held: row.held, owed: owedOf(row) };
    },
    ensure,
    async dodoChanged(entry) {
      const customerId = entry.customer_id;
      // MailKit's own settlement: its answer applied it already (or will).
      if (typeof entry.metadata?.mailkit_settlement === 'string') return;
      const amount = Math.abs(Math.floor(Number(entry.amount)));
      const column = entry.is_credit ? 'credits' : entry.transaction_type === 'credit_expired' || entry.transaction_type === 'rollover_forfeited' ? 'expired' : 'adjusted';
      await countDodoEntry(database, { id: entry.id, customerId, day: utcDay(Date.parse(entry.created_at) || now()), column, amount }, now());
      const row = await findBalance(database, customerId);
      if (!row) return; // seeded from Dodo, with this change in it, when first needed
      // Read back now when nobody is settling this customer (the webhook's sender then sees the
      // balance moved when it hears back); otherwise after the settlement, by the next pass.
      const t = now();
      const mine = !busy.has(customerId) && (await claimBalance(database, customerId, owner, t, t + CLAIM_MS));
      if (!mine || (await openSettlement(database, customerId))) {
        if (mine) await releaseBalance(database, customerId, owner);
        await updateBalance(database, customerId, () => ({ needsSync: 1 }));
        return;
      }
      busy.add(customerId);
      try {
        await sync(customerId);
      } catch (err) {
        await updateBalance(database, customerId, () => ({ needsSync: 1 }));
        throw err;
      } finally {
        busy.delete(customerId);
        await releaseBalance(database, customerId, owner).catch(() => undefined);
      }
    },
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
