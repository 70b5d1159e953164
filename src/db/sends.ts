import type { Selectable, Updateable } from 'kysely';
import type { Database } from './index';
import type { SendsTable } from './schema';

/** A send as stored. */
export type SendRow = Selectable<SendsTable>;
export type SendPatch = Omit<Updateable<SendsTable>, 'id' | 'owner' | 'claimedUntil' | 'createdAt'>;

/** States in which a send holds, or may hold, credits whose outcome is still open: the reconciler's. */
export const UNSETTLED_STATES = ['reserving', 'delivering', 'refunding'] as const;

/** Thrown when a transition finds the row no longer owned by this instance, or not in the state it expected. */
export class LostClaim extends Error {
  override name = 'LostClaim';
  constructor(readonly sendId: string) {
    super(`send ${sendId} is no longer ours to change`);
  }
}

/**
 * The idempotency claim: one atomic insert. Returns the new row (owned by `row.owner`) when
 * this call created it, together with its payload in one transaction; otherwise the row
 * someone else created, untouched (undefined when it was deleted between the two statements).
 */
export async function insertOrGetSend(database: Database, row: SendRow, payload: string): Promise<{ created: boolean; row: SendRow | undefined }> {
  return database.db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('sends')
      .values(row)
      .onConflict((oc) => oc.column('id').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) {
      await trx.insertInto('sendPayloads').values({ sendId: row.id, body: payload }).onConflict((oc) => oc.column('sendId').doNothing()).execute();
      return { created: true, row: inserted };
    }
    const existing = await trx.selectFrom('sends').selectAll().where('id', '=', row.id).executeTakeFirst();
    // Deleted between the two statements (a refused first attempt): the caller tries again.
    return { created: false, row: existing };
  });
}

export async function findSend(database: Database, id: string): Promise<SendRow | undefined> {
  return database.db.selectFrom('sends').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Takes the send for `owner` until `until`, if nobody holds it (no owner, or an expired
 * claim) or `owner` already does: one conditional update, so of several instances asking at
 * once exactly one gets it.
 */
export async function acquireSend(database: Database, id: string, owner: string, now: number, until: number): Promise<SendRow | undefined> {
  return database.db
    .updateTable('sends')
    .set({ owner, claimedUntil: until })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('owner', 'is', null), eb('claimedUntil', '<', now), eb('owner', '=', owner)]))
    .returningAll()
    .executeTakeFirst();
}

/**
 * A state transition: applies `patch` only if `owner` still holds the send and it is in one of
 * `from`. A slow or stale instance therefore can never overwrite a newer state. `dropPayload`
 * deletes the payload in the same transaction (the send has settled).
 */
export async function transitionSend(
  database: Database,
  id: string,
  owner: string,
  from: readonly string[],
  patch: SendPatch,
  opts: { dropPayload?: boolean } = {},
): Promise<SendRow> {
  const apply = async (db: Database['db']) => {
    const row = await db
      .updateTable('sends')
      .set(patch)
      .where('id', '=', id)
      .where('owner', '=', owner)
      .where('state', 'in', [...from])
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new LostClaim(id);
    if (opts.dropPayload) await db.deleteFrom('sendPayloads').where('sendId', '=', id).execute();
    return row;
  };
  return opts.dropPayload ? database.db.transaction().execute((trx) => apply(trx)) : apply(database.db);
}

/** Deletes a send this owner holds and its payload (a first attempt refused outright: as if it never was). */
export async function deleteSend(database: Database, id: string, owner: string): Promise<void> {
  await database.db.transaction().execute(async (trx) => {
    const gone = await trx.deleteFrom('sends').where('id', '=', id).where('owner', '=', owner).executeTakeFirst();
    if (Number(gone.numDeletedRows) > 0) await trx.deleteFrom('sendPayloads').where('sendId', '=', id).execute();
  });
}

/** Lets go of the send (its claim), whatever state it is in. */
export async function releaseSend(database: Database, id: string, owner: string): Promise<void> {
  await database.db.updateTable('sends').set({ owner: null, claimedUntil: null }).where('id', '=', id).where('owner', '=', owner).execute();
}

/** Extends this owner's claims on `ids` (the sends it is running) to `until`. */
export async function renewClaims(database: Database, owner: string, ids: string[], until: number): Promise<void> {
  if (ids.length === 0) return;
  await database.db.updateTable('sends').set({ claimedUntil: until }).where('owner', '=', owner).where('id', 'in', ids).execute();
}

export async function payloadOf(database: Database, id: string): Promise<string | undefined> {
  const row = await database.db.selectFrom('sendPayloads').select('body').where('sendId', '=', id).executeTakeFirst();
  return row?.body;
}

/** Stores the payload unless one is there: an attempt in doubt must be retried with exactly the bytes it first sent. */
export async function putPayload(database: Database, id: string, body: string): Promise<void> {
  await database.db.insertInto('sendPayloads').values({ sendId: id, body }).onConflict((oc) => oc.column('sendId').doNothing()).execute();
}

/** Unsettled sends untouched since `touchedBefore` and held by nobody (or by a claim that expired), oldest first. */
export async function unsettledSends(database: Database, touchedBefore: number, now: number, limit: number): Promise<SendRow[]> {
  return database.db
    .selectFrom('sends')
    .selectAll()
    .where('state', 'in', [...UNSETTLED_STATES])
    .where('updatedAt', '<=', touchedBefore)
    .where((eb) => eb.or([eb('owner', 'is', null), eb('claimedUntil', '<', now)]))
    .orderBy('updatedAt')
    .limit(limit)
    .execute();
}

/**
 * Drops settled sends last touched before `cutoff` (retention runs from the last change, not
 * the creation: a send retried near the end of its window keeps its key a full window more),
 * and any payload left without an unsettled send. Two indexed deletes.
 */
export async function pruneSends(database: Database, cutoff: number): Promise<number> {
  return database.db.transaction().execute(async (trx) => {
    const gone = await trx.deleteFrom('sends').where('state', 'in', ['done', 'failed']).where('updatedAt', '<', cutoff).executeTakeFirst();
    await trx
      .deleteFrom('sendPayloads')
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('sends').select('sends.id').whereRef('sends.id', '=', 'sendPayloads.sendId').where('sends.state', 'in', [...UNSETTLED_STATES, 'failed']))),
      )
      .execute();
    return Number(gone.numDeletedRows);
  });
}
