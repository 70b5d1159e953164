import type { CreditLedgerEntry } from 'dodopayments/resources/credit-entitlements/balances';
import {
  claimBalance,
  countDodoEntry,
  findBalance,
  openSettlement,
  releaseBalance,
  seedBalance,
  updateBalance,
  utcDay,
  type BalanceRow,
} from '../db/credits';
import { grantsOf, lapsedOwed, nextCheckOf, owedOf, rebalanced, spendable, type Grant } from './credit-math';
import { CLAIM_MS, type CreditsContext } from './credits-context';

/*
 * Following Dodo (src/billing/README.md, "Following Dodo"): the balance MailKit keeps is
 * seeded from Dodo's grants, read again when Dodo changed in a way MailKit did not make, and
 * rid of the grants that lapse.
 */

/** Dodo's grants: the live ones (unexpired, not empty) in the order Dodo draws from them (oldest first), and the ids of those that lapsed. */
export async function dodoGrants(c: CreditsContext, customerId: string): Promise<{ live: Grant[]; lapsed: Set<string> }> {
  const grants = await c.billing.grants(customerId);
  const live = grants
    .filter((g) => !g.isExpired && Math.floor(g.remainingAmount) > 0)
    .sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt))
    .map((g) => ({ id: g.id, expiresAt: g.expiresAt ? Date.parse(g.expiresAt) : null, remaining: Math.floor(g.remainingAmount) }));
  return { live, lapsed: new Set(grants.filter((g) => g.isExpired).map((g) => g.id)) };
}

export async function ensureBalance(c: CreditsContext, customerId: string): Promise<BalanceRow> {
  return (await seed(c, customerId)).row;
}

/**
 * The customer's balance, seeded from Dodo's grants when MailKit has none (one read, shared by
 * the callers of this process that arrive together); `inserted` when this seed's own read made
 * it (not a row found, nor one another instance inserted first).
 */
function seed(c: CreditsContext, customerId: string): Promise<{ row: BalanceRow; inserted: boolean }> {
  const running = c.seeding.get(customerId);
  if (running) return running.then(({ row }) => ({ row, inserted: false }));
  const p = (async () => {
    const known = await findBalance(c.database, customerId);
    if (known) return { row: known, inserted: false };
    const grants = (await dodoGrants(c, customerId)).live;
    const t = c.now();
    const seeded = await seedBalance(c.database, customerId, {
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
    if (seeded.inserted) c.log?.info({ customerId, available: seeded.row.available }, 'credit balance seeded from Dodo');
    return seeded;
  })().finally(() => c.seeding.delete(customerId));
  c.seeding.set(customerId, p);
  return p;
}

/**
 * Reads Dodo's grants again and makes them the mirror's: grants that lapsed meanwhile take
 * with them the credits owed in them (Dodo's lapse already accounted for them). Only while no
 * settlement is being asked: its outcome would be ambiguous in what Dodo shows.
 */
export async function syncBalance(c: CreditsContext, customerId: string): Promise<void> {
  const fresh = await dodoGrants(c, customerId);
  const t = c.now();
  await updateBalance(c.database, customerId, (row) => {
    // A settlement's outcome would be ambiguous in what Dodo shows: read again after it.
    if (row.settling > 0) return { needsSync: 1 };
    const before = grantsOf(row);
    return { ...rebalanced(row, fresh.live, t, lapsedOwed(before, owedOf(row), fresh.lapsed)), syncedAt: t, needsSync: 0 };
  });
}

/** Grants that lapsed on MailKit's clock (Dodo's runs alongside): they go, with what was owed in them. */
export async function expireGrants(c: CreditsContext, customerId: string): Promise<void> {
  const t = c.now();
  await updateBalance(c.database, customerId, (row) => {
    if (row.settling > 0) return null;
    const grants = grantsOf(row);
    const lapsed = new Set(grants.filter((g) => g.expiresAt !== null && g.expiresAt <= t).map((g) => g.id));
    return rebalanced(row, grants, t, lapsedOwed(grants, owedOf(row), lapsed));
  });
}

/**
 * A ledger entry Dodo announced (a credit.* webhook): MailKit's own settlements are known; any
 * other change is counted in its day for the usage chart (once per entry) and the grants are
 * read again, now when nobody is settling the customer, else after the settlement.
 */
export async function dodoChanged(
  c: CreditsContext,
  entry: Pick<CreditLedgerEntry, 'id' | 'customer_id' | 'amount' | 'is_credit' | 'transaction_type' | 'created_at' | 'metadata'>,
): Promise<void> {
  const customerId = entry.customer_id;
  // MailKit's own settlement: its answer applied it already (or will).
  if (typeof entry.metadata?.mailkit_settlement === 'string') return;
  const amount = Math.abs(Math.floor(Number(entry.amount)));
  const column = entry.is_credit
    ? 'credits'
    : entry.transaction_type === 'credit_expired' || entry.transaction_type === 'rollover_forfeited'
      ? 'expired'
      : 'adjusted';
  await countDodoEntry(c.database, { id: entry.id, customerId, day: utcDay(Date.parse(entry.created_at) || c.now()), column, amount }, c.now());
  if (!(await findBalance(c.database, customerId))) {
    // A new customer (its first credits): seeded now, so its first send or balance read waits
    // for no Dodo call. A seed of its own read the grants after this change: done. One that
    // was already under way (a send's, another instance's for the dashboard's first balance
    // read) may have read them before it: they are read again below, as for any customer.
    // If Dodo does not answer, the first need seeds it instead.
    const seeded = await seed(c, customerId).catch((err: unknown) => {
      c.log?.warn({ err, customerId }, 'credit balance not seeded yet: seeded on first need');
      return null;
    });
    if (!seeded || seeded.inserted) return;
  }
  // Read back now when nobody is settling this customer (the webhook's sender then sees the
  // balance moved when it hears back); otherwise after the settlement, by the next pass.
  const t = c.now();
  const mine = !c.busy.has(customerId) && (await claimBalance(c.database, customerId, c.owner, t, t + CLAIM_MS));
  if (!mine || (await openSettlement(c.database, customerId))) {
    if (mine) await releaseBalance(c.database, customerId, c.owner);
    await updateBalance(c.database, customerId, () => ({ needsSync: 1 }));
    return;
  }
  c.busy.add(customerId);
  try {
    await syncBalance(c, customerId);
  } catch (err) {
    await updateBalance(c.database, customerId, () => ({ needsSync: 1 }));
    throw err;
  } finally {
    c.busy.delete(customerId);
    await releaseBalance(c.database, customerId, c.owner).catch(() => undefined);
  }
}
