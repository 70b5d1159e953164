import type { Expression, ExpressionBuilder, Kysely, Selectable, SelectQueryBuilder } from 'kysely';
import type { Database } from './index';
import { prepared } from './prepared';
import type { LeasesTable, Tables } from './schema';
import { LostClaim, type SendRow } from './sends';

/** A lease as stored (sending/README.md, "Leases"). */
export type LeaseRow = Selectable<LeasesTable>;

/** Records a lease before its debit is asked for: a crash during the call leaves a row that says so. */
export async function insertLease(database: Database, lease: LeaseRow): Promise<void> {
  await database.db.insertInto('leases').values(lease).execute();
}

export async function findLease(database: Database, id: string): Promise<LeaseRow | undefined> {
  return database.db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Pays a send from a lease of its customer, in one transaction: `credits` more of an active
 * lease with room are spent, and the send moves from reserving to delivering, paid by that
 * lease. Both or neither: a send is never delivering without its credits spent, and credits are
 * never spent for a send that did not move on. Any instance may spend any active lease (the
 * update is conditional on the room left, so two spenders never overdraw one). `leaseId`: that
 * lease only (the one taken for this send); `exclude`: leases whose room is kept for others.
 * Undefined when no lease has room.
 */
export async function payFromLease(database: Database, send: SendRow, owner: string, at: number, pick: { leaseId?: string; exclude?: string[] } = {}): Promise<SendRow | undefined> {
  const { leaseId, exclude = [] } = pick;
  return database.db.transaction().execute(async (trx) => {
    const spending = { credits: send.credits, at, customerId: send.customerId };
    const [lease] = leaseId
      ? await spendFromNamed.run(trx, { ...spending, leaseId })
      : exclude.length === 0
        ? await spendFromFirst.run(trx, spending)
        : await spendFrom(trx, spending, firstWithRoom(spending, exclude)).execute();
    if (!lease) return undefined;
    const [paid] = await payWith.run(trx, { sendId: send.id, owner, leaseId: lease.id, at });
    if (!paid) throw new LostClaim(send.id); // rolls the spending back
    return paid;
  });
}

type Spending = { credits: number; at: number; customerId: string };

/** `credits` more spent from the lease `which` names, if it is still the customer's, active, with that room. */
function spendFrom(db: Kysely<Tables>, v: Spending, which: (eb: ExpressionBuilder<Tables, 'leases'>) => Expression<string> | SelectQueryBuilder<Tables, 'leases', { id: string }>) {
  return (
    db
      .updateTable('leases')
      .set((eb) => ({ spent: eb('spent', '+', v.credits), lastUsedAt: v.at }))
      .where('id', '=', which)
      .where('customerId', '=', v.customerId)
      // Checked again on the row itself: another spender may have taken the room meanwhile.
      .where('state', '=', 'active')
      .where((e) => e(e('credits', '-', e.ref('spent')), '>=', v.credits))
      .returning('id')
  );
}

/** The customer's oldest active lease with room for `credits`, but for those in `exclude`. */
function firstWithRoom(v: Spending, exclude: string[]) {
  return (eb: ExpressionBuilder<Tables, 'leases'>) =>
    eb
      .selectFrom('leases')
      .select('id')
      .where('customerId', '=', v.customerId)
      .where('state', '=', 'active')
      .where((e) => e(e('credits', '-', e.ref('spent')), '>=', v.credits))
      .$if(exclude.length > 0, (q) => q.where('id', 'not in', exclude))
      .orderBy('createdAt')
      .limit(1);
}

// Every send runs one of the first two and the third: compiled once (db/prepared.ts).
const spendFromNamed = prepared((db, v: Spending & { leaseId: string }) => spendFrom(db, v, (eb) => eb.val(v.leaseId)));
const spendFromFirst = prepared((db, v: Spending) => spendFrom(db, v, firstWithRoom(v, [])));
/** The send moves from reserving to delivering, paid by the lease. */
const payWith = prepared((db, v: { sendId: string; owner: string; leaseId: string; at: number }) =>
  db
    .updateTable('sends')
    .set({ state: 'delivering', funding: 'lease', leaseId: v.leaseId, inDoubt: 0, deliveringSince: v.at, flightId: null, flightOffset: null, updatedAt: v.at })
    .where('id', '=', v.sendId)
    .where('owner', '=', v.owner)
    .where('state', '=', 'reserving')
    .returningAll(),
);

/** The room left in a customer's active leases, but for those named in `exclude`. */
export async function roomFor(database: Database, customerId: string, exclude: string[]): Promise<number> {
  const row = await database.db
    .selectFrom('leases')
    .select((eb) => eb.fn.sum<number | string | null>(eb('credits', '-', eb.ref('spent'))).as('room'))
    .where('customerId', '=', customerId)
    .where('state', '=', 'active')
    .$if(exclude.length > 0, (q) => q.where('id', 'not in', exclude))
    .executeTakeFirst();
  return Number(row?.room ?? 0);
}

/**
 * Gives a send's credits back to the lease that paid them, while that lease is active, in the
 * same transaction as the send's transition (`apply`). False when the lease is no longer active
 * (its return has started, so its unspent count is fixed): the caller refunds through Dodo.
 */
export async function refundToLease(database: Database, leaseId: string, credits: number, apply: (trx: Kysely<Tables>) => Promise<SendRow>): Promise<SendRow | false> {
  return database.db.transaction().execute(async (trx) => {
    const back = await trx
      .updateTable('leases')
      .set((eb) => ({ spent: eb('spent', '-', credits) }))
      .where('id', '=', leaseId)
      .where('state', '=', 'active')
      .where('spent', '>=', credits)
      .executeTakeFirst();
    if (Number(back.numUpdatedRows) === 0) return false;
    return apply(trx);
  });
}

/** A conditional transition of a lease this owner holds, from one of `from`; undefined when it is not (any more). */
export async function transitionLease(database: Database, id: string, owner: string, from: readonly string[], patch: Partial<Omit<LeaseRow, 'id' | 'customerId' | 'nonce' | 'createdAt'>>): Promise<LeaseRow | undefined> {
  return database.db.updateTable('leases').set(patch).where('id', '=', id).where('owner', '=', owner).where('state', 'in', [...from]).returningAll().executeTakeFirst();
}

/** Forgets a lease whose debit was refused outright: nothing was debited, nothing is owed. */
export async function deleteLease(database: Database, id: string, owner: string): Promise<void> {
  await database.db.deleteFrom('leases').where('id', '=', id).where('owner', '=', owner).where('state', '=', 'reserving').execute();
}

/**
 * Starts returning an active lease: one conditional update fixes what goes back (credits less
 * spent, at this instant: no spending can follow, for spending needs `active`) and claims the
 * call for `owner`. With `idleBefore`, only if nothing was spent from it since then.
 */
export async function startReturn(database: Database, id: string, owner: string, at: number, until: number, idleBefore?: number): Promise<LeaseRow | undefined> {
  let q = database.db
    .updateTable('leases')
    .set((eb) => ({ state: 'returning', returnCredits: eb('credits', '-', eb.ref('spent')), owner, claimedUntil: until, updatedAt: at }))
    .where('id', '=', id)
    .where('state', '=', 'active');
  if (idleBefore !== undefined) q = q.where('lastUsedAt', '<', idleBefore);
  return q.returningAll().executeTakeFirst();
}

/**
 * Active leases nothing was spent from since `idleBefore` of customers that spent from none of
 * their leases since then (any owner's: a lease taken ahead of the one being spent is not
 * idle, its customer is not), or this owner's whatever their use.
 */
export async function leasesToReturn(database: Database, opts: { idleBefore?: number; owner?: string }, limit: number): Promise<LeaseRow[]> {
  let q = database.db.selectFrom('leases').selectAll().where('state', '=', 'active');
  const idleBefore = opts.idleBefore;
  if (idleBefore !== undefined) {
    q = q
      .where('lastUsedAt', '<', idleBefore)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('leases as used')
              .select('used.id')
              .whereRef('used.customerId', '=', 'leases.customerId')
              .where('used.state', '=', 'active')
              .where('used.lastUsedAt', '>=', idleBefore),
          ),
        ),
      );
  }
  if (opts.owner !== undefined) q = q.where('owner', '=', opts.owner);
  return q.orderBy('lastUsedAt').limit(limit).execute();
}

/** Leases whose Dodo call is unfinished (reserving, returning) and held by nobody, or by an expired claim. */
export async function unsettledLeases(database: Database, now: number, limit: number, customerId?: string): Promise<LeaseRow[]> {
  let q = database.db
    .selectFrom('leases')
    .selectAll()
    .where('state', 'in', ['reserving', 'returning'])
    .where((eb) => eb.or([eb('owner', 'is', null), eb('claimedUntil', '<', now)]));
  if (customerId) q = q.where('customerId', '=', customerId);
  return q.orderBy('updatedAt').limit(limit).execute();
}

/** Takes a lease's unfinished call for `owner` (nobody holds it, its claim expired, or `owner` already does). */
export async function acquireLease(database: Database, id: string, owner: string, now: number, until: number): Promise<LeaseRow | undefined> {
  return database.db
    .updateTable('leases')
    .set({ owner, claimedUntil: until })
    .where('id', '=', id)
    .where('state', 'in', ['reserving', 'returning'])
    .where((eb) => eb.or([eb('owner', 'is', null), eb('claimedUntil', '<', now), eb('owner', '=', owner)]))
    .returningAll()
    .executeTakeFirst();
}

/**
 * Credits a customer holds in leases and can still spend: the unspent part of active leases,
 * and what returning leases are giving back. Dodo's balance does not count them (they were
 * debited), so what the customer can spend is Dodo's balance plus this.
 */
export async function heldCredits(database: Database, customerId: string): Promise<number> {
  const row = await database.db
    .selectFrom('leases')
    .select((eb) =>
      eb.fn
        .sum<number | string | null>(eb.case().when('state', '=', 'active').then(eb('credits', '-', eb.ref('spent'))).else(eb.fn.coalesce('returnCredits', eb.lit(0))).end())
        .as('held'),
    )
    .where('customerId', '=', customerId)
    .where('state', 'in', ['active', 'returning'])
    .executeTakeFirst();
  return Number(row?.held ?? 0);
}

/** What the usage chart needs of a customer's leases: by id, the credits not (yet) spent on emails. */
export async function leaseUnspent(database: Database, customerId: string, ids: string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const rows = await database.db.selectFrom('leases').select(['id', 'state', 'credits', 'spent', 'returnCredits']).where('customerId', '=', customerId).where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r.state === 'active' ? r.credits - r.spent : (r.returnCredits ?? r.credits - r.spent)]));
}

/** Drops closed leases last changed before `cutoff` (kept as long as the usage chart looks back). */
export async function pruneLeases(database: Database, cutoff: number): Promise<number> {
  const gone = await database.db.deleteFrom('leases').where('state', '=', 'closed').where('updatedAt', '<', cutoff).executeTakeFirst();
  return Number(gone.numDeletedRows);
}
