import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database } from './index';
import { prepared } from './prepared';
import type { CreditBalancesTable, CreditDaysTable, SettlementsTable, Tables } from './schema';
import { LostClaim, type SendRow } from './sends';

/** A customer's balance as stored (src/billing/README.md). */
export type BalanceRow = Selectable<CreditBalancesTable>;
export type SettlementRow = Selectable<SettlementsTable>;
/** The columns of a balance that its arithmetic may change together (src/billing/credits.ts). */
export type BalancePatch = Partial<Omit<BalanceRow, 'customerId' | 'owner' | 'ownerUntil'>>;

/**
 * Pays a send from its customer's balance, in one transaction: `available` drops by the send's
 * credits only if it holds them (one conditional update, so concurrent sends on any instance
 * never overdraw it), they are held for the send, and the send moves from reserving to
 * delivering. Both or neither. Undefined when the balance is short (or not seeded yet).
 */
export async function payFromBalance(database: Database, send: SendRow, owner: string, at: number): Promise<SendRow | undefined> {
  return database.db.transaction().execute(async (trx) => {
    const spent = await spend.changed(trx, { customerId: send.customerId, credits: send.credits, at });
    if (spent === 0) return undefined;
    const [paid] = await payWith.run(trx, { sendId: send.id, owner, at });
    if (!paid) throw new LostClaim(send.id); // rolls the spending back
    return paid;
  });
}

// Every send runs both: compiled once (db/prepared.ts).
const spend = prepared((db, v: { customerId: string; credits: number; at: number }) =>
  db
    .updateTable('creditBalances')
    .set((eb) => ({ available: eb('available', '-', v.credits), held: eb('held', '+', v.credits), lastSpentAt: v.at }))
    .where('customerId', '=', v.customerId)
    .where('available', '>=', v.credits),
);
const payWith = prepared((db, v: { sendId: string; owner: string; at: number }) =>
  db
    .updateTable('sends')
    .set({ state: 'delivering', funding: 'balance', inDoubt: 0, deliveringSince: v.at, flightId: null, flightOffset: null, updatedAt: v.at })
    .where('id', '=', v.sendId)
    .where('owner', '=', v.owner)
    .where('state', '=', 'reserving')
    .returningAll(),
);

/** How a send that ends settles the credits it held: `sent` are now owed to Dodo, `refunded` go back to the customer. */
export type SpendEnd = {
  customerId: string;
  held: number;
  sent: number;
  refunded: number;
};

/**
 * A send's end in its balance, inside the transaction of the send's last transition (so a
 * retry never counts it twice). Usually one update; when some held credits were already paid
 * by a lapse (`prepaid`), those are neither owed again nor given back.
 */
export async function endSpendIn(trx: Kysely<Tables>, engine: Database['engine'], end: SpendEnd): Promise<void> {
  const quick = await endQuick.changed(trx, end);
  if (quick > 0) return;
  const row = await lockedBalance(trx, engine, end.customerId);
  if (!row) return; // a legacy row: nothing held here
  const fromSent = Math.min(row.prepaid, end.sent);
  const fromRefund = Math.min(row.prepaid - fromSent, end.refunded);
  await trx
    .updateTable('creditBalances')
    .set({
      held: row.held - end.held,
      prepaid: row.prepaid - fromSent - fromRefund,
      unsettled: row.unsettled + end.sent - fromSent,
      available: row.available + end.refunded - fromRefund,
    })
    .where('customerId', '=', end.customerId)
    .execute();
}

const endQuick = prepared((db, v: SpendEnd) =>
  db
    .updateTable('creditBalances')
    .set((eb) => ({ held: eb('held', '-', v.held), unsettled: eb('unsettled', '+', v.sent), available: eb('available', '+', v.refunded) }))
    .where('customerId', '=', v.customerId)
    .where('prepaid', '=', 0),
);

export async function findBalance(database: Database, customerId: string): Promise<BalanceRow | undefined> {
  return database.db.selectFrom('creditBalances').selectAll().where('customerId', '=', customerId).executeTakeFirst();
}

/** The row, locked until the transaction ends (PostgreSQL; SQLite's transactions are serialized already). */
async function lockedBalance(trx: Kysely<Tables>, engine: Database['engine'], customerId: string): Promise<BalanceRow | undefined> {
  const q = trx.selectFrom('creditBalances').selectAll().where('customerId', '=', customerId);
  return (engine === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
}

/**
 * Reads the balance locked, computes its new state, writes it: the arithmetic that spans
 * several columns (a sync, a settlement's answer, a grant's expiry). Sends keep spending
 * meanwhile; on PostgreSQL they wait for the lock and apply their update to the new row.
 */
export async function updateBalance(
  database: Database,
  customerId: string,
  change: (row: BalanceRow, trx: Kysely<Tables>) => Promise<BalancePatch | null> | BalancePatch | null,
): Promise<BalanceRow | undefined> {
  return database.db.transaction().execute(async (trx) => {
    const row = await lockedBalance(trx, database.engine, customerId);
    if (!row) return undefined;
    const patch = await change(row, trx);
    if (!patch) return row;
    return trx.updateTable('creditBalances').set(patch).where('customerId', '=', customerId).returningAll().executeTakeFirstOrThrow();
  });
}

/** Creates a customer's balance from Dodo's grants, unless another instance did first; answers the row, and whether this call made it. */
export async function seedBalance(
  database: Database,
  customerId: string,
  row: Omit<BalanceRow, 'customerId' | 'owner' | 'ownerUntil'>,
): Promise<{ row: BalanceRow; inserted: boolean }> {
  const result = await database.db
    .insertInto('creditBalances')
    .values({ customerId, ...row, owner: null, ownerUntil: null })
    .onConflict((oc) => oc.column('customerId').doNothing())
    .executeTakeFirst();
  return { row: (await findBalance(database, customerId))!, inserted: Number(result.numInsertedOrUpdatedRows ?? 0n) > 0 };
}

/**
 * Takes a customer's balance for `owner` until `until`, to settle or sync it: one conditional
 * update, so one instance at a time asks Dodo about one customer.
 */
export async function claimBalance(
  database: Database,
  customerId: string,
  owner: string,
  now: number,
  until: number,
): Promise<BalanceRow | undefined> {
  return database.db
    .updateTable('creditBalances')
    .set({ owner, ownerUntil: until })
    .where('customerId', '=', customerId)
    .where((eb) => eb.or([eb('owner', 'is', null), eb('ownerUntil', '<', now), eb('owner', '=', owner)]))
    .returningAll()
    .executeTakeFirst();
}

export async function releaseBalance(database: Database, customerId: string, owner: string): Promise<void> {
  await database.db
    .updateTable('creditBalances')
    .set({ owner: null, ownerUntil: null })
    .where('customerId', '=', customerId)
    .where('owner', '=', owner)
    .execute();
}

/** Marks a balance for a read of Dodo's grants (a change MailKit did not make). */
export async function markNeedsSync(database: Database, customerId: string): Promise<void> {
  await database.db.updateTable('creditBalances').set({ needsSync: 1 }).where('customerId', '=', customerId).execute();
}

/**
 * Customers whose balance has work, held by nobody: a settlement left asking, spends to settle
 * (last settled before `settleBefore`, or a grant about to expire: `nextCheck` passed), a sync
 * asked for, or a refresh (active since `activeSince`, grants confirmed before `refreshBefore`).
 * Those settled longest ago first, so Dodo's turns go round the customers fairly.
 */
export async function dueBalances(
  database: Database,
  opts: { now: number; settleBefore: number; refreshBefore: number; activeSince: number; owner: string; all?: boolean },
  limit: number,
): Promise<string[]> {
  const { now, settleBefore } = opts;
  const rows = await database.db
    .selectFrom('creditBalances')
    .select('customerId')
    // (Held by `owner` itself: a claim its last pass could not let go of, the database failing then.)
    .where((eb) => eb.or([eb('owner', 'is', null), eb('ownerUntil', '<', now), eb('owner', '=', opts.owner)]))
    .where((eb) =>
      eb.or([
        eb('settling', '>', 0),
        eb('needsSync', '=', 1),
        eb('nextCheck', '<=', now),
        eb.and([eb('unsettled', '>', 0), opts.all ? eb.lit(true) : eb('lastSettledAt', '<=', settleBefore)]),
        // A customer spending lately whose grants Dodo has not confirmed for a while: read again.
        eb.and([eb('lastSpentAt', '>=', opts.activeSince), eb('syncedAt', '<', opts.refreshBefore)]),
      ]),
    )
    .orderBy('lastSettledAt')
    .limit(limit)
    .execute();
  return rows.map((r) => r.customerId);
}

/** The settlement of a customer still being asked of Dodo (at most one at a time). */
export async function openSettlement(database: Database, customerId: string): Promise<SettlementRow | undefined> {
  return database.db.selectFrom('settlements').selectAll().where('customerId', '=', customerId).where('state', '=', 'asking').executeTakeFirst();
}

/**
 * Records the settlement of everything the customer spent and did not settle yet, before it
 * is asked of Dodo: `unsettled` moves to `settling` in the same transaction. Undefined when
 * there is nothing to settle. Its id is its Dodo key: a crash or a lost answer asks it again.
 */
export async function recordSettlement(database: Database, customerId: string, id: string, now: number): Promise<SettlementRow | undefined> {
  return database.db.transaction().execute(async (trx) => {
    const row = await lockedBalance(trx, database.engine, customerId);
    if (!row || row.unsettled <= 0 || row.settling > 0) return undefined;
    const settlement: SettlementRow = {
      id,
      customerId,
      credits: row.unsettled,
      state: 'asking',
      inDoubt: 0,
      partial: null,
      paid: null,
      balanceAfter: null,
      createdAt: now,
      updatedAt: now,
    };
    await trx.insertInto('settlements').values(settlement).execute();
    await trx.updateTable('creditBalances').set({ unsettled: 0, settling: row.unsettled }).where('customerId', '=', customerId).execute();
    return settlement;
  });
}

/** Changes a settlement still asking (in doubt; its partial amount fixed before it is asked). */
export async function updateSettlement(
  database: Database,
  id: string,
  patch: Partial<Pick<SettlementRow, 'inDoubt' | 'partial' | 'updatedAt'>>,
): Promise<void> {
  await database.db.updateTable('settlements').set(patch).where('id', '=', id).where('state', '=', 'asking').execute();
}

/**
 * A settlement Dodo answered: done, with what Dodo took, in the transaction that applies it to
 * the balance (`apply`, given the locked row). False when it was done already (another answer).
 */
export async function closeSettlement(
  database: Database,
  s: SettlementRow,
  answer: { paid: number; balanceAfter: string | null; at: number; day: string },
  apply: (row: BalanceRow) => BalancePatch,
): Promise<boolean> {
  return database.db.transaction().execute(async (trx) => {
    const closed = await trx
      .updateTable('settlements')
      .set({ state: 'done', paid: answer.paid, balanceAfter: answer.balanceAfter, updatedAt: answer.at })
      .where('id', '=', s.id)
      .where('state', '=', 'asking')
      .executeTakeFirst();
    if (Number(closed.numUpdatedRows) === 0) return false;
    const row = await lockedBalance(trx, database.engine, s.customerId);
    if (row) await trx.updateTable('creditBalances').set(apply(row)).where('customerId', '=', s.customerId).execute();
    await addToDay(trx, s.customerId, answer.day, 'emails', s.credits);
    return true;
  });
}

/** Adds `amount` to one column of a customer's day (the usage chart). */
export async function addToDay(
  db: Kysely<Tables>,
  customerId: string,
  day: string,
  column: 'emails' | 'adjusted' | 'expired' | 'credits',
  amount: number,
): Promise<void> {
  if (amount === 0) return;
  await db
    .insertInto('creditDays')
    .values({ customerId, day, emails: 0, adjusted: 0, expired: 0, credits: 0, [column]: amount })
    .onConflict((oc) => oc.columns(['customerId', 'day']).doUpdateSet({ [column]: sql`credit_days.${sql.ref(snake(column))} + ${amount}` }))
    .execute();
}

/** Counts a Dodo ledger entry in its customer's day, once (a webhook handled twice, or by two instances, counts once). */
export async function countDodoEntry(
  database: Database,
  entry: { id: string; customerId: string; day: string; column: 'adjusted' | 'expired' | 'credits'; amount: number },
  now: number,
): Promise<void> {
  await database.db.transaction().execute(async (trx) => {
    const fresh = await trx
      .insertInto('dodoEntries')
      .values({ id: entry.id, recordedAt: now })
      .onConflict((oc) => oc.column('id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (fresh) await addToDay(trx, entry.customerId, entry.day, entry.column, entry.amount);
  });
}

/** A customer's days from `fromDay` on (YYYY-MM-DD), oldest first. */
export async function creditDays(database: Database, customerId: string, fromDay: string): Promise<Array<Selectable<CreditDaysTable>>> {
  return database.db.selectFrom('creditDays').selectAll().where('customerId', '=', customerId).where('day', '>=', fromDay).orderBy('day').execute();
}

/** The first day anything moved in a customer's balance (null: never). */
export async function firstCreditDay(database: Database, customerId: string): Promise<string | null> {
  const row = await database.db
    .selectFrom('creditDays')
    .select((eb) => eb.fn.min('day').as('first'))
    .where('customerId', '=', customerId)
    .executeTakeFirst();
  return (row?.first as string | null) ?? null;
}

/** Drops settlements done before `cutoff`, and days older than `dayCutoff`. */
export async function pruneCredits(database: Database, cutoff: number, dayCutoff: string): Promise<void> {
  await database.db.deleteFrom('settlements').where('state', '=', 'done').where('updatedAt', '<', cutoff).execute();
  await database.db.deleteFrom('creditDays').where('day', '<', dayCutoff).execute();
  await database.db.deleteFrom('dodoEntries').where('recordedAt', '<', cutoff).execute();
}

export const utcDay = (t: number) => new Date(t).toISOString().slice(0, 10);
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
