import type { Selectable, Updateable } from 'kysely';
import { endSpendIn, type SpendEnd } from './credits';
import { applyEarlyEvents, insertEmails, refuseEmails, type NewEmail, type RefusedEmail } from './emails';
import { releaseFlight } from './flights';
import type { Database } from './index';
import { prepared, type Prepared, type Scalar } from './prepared';
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
    const [inserted] = await claimQuery(Object.keys(row) as Array<keyof SendRow>).run(trx, row);
    if (inserted) {
      await storePayload.run(trx, { sendId: row.id, body: payload });
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

/** What a transition commits besides the row's new state, in the same transaction. */
export interface TransitionOptions {
  /** Deletes the payload (the send has settled: `done` or `failed`). */
  dropPayload?: boolean;
  /**
   * Lets go of the claim in the same update (`owner` and `claimed_until` cleared): for the
   * transition that ends this instance's run of the send. The run's own release is then
   * skipped (releasedByTransition).
   */
  release?: boolean;
  /**
   * Enters the send's emails in the email history (db/emails.ts; their early events are applied
   * right after the commit); `refused`: those Resend refused for good end failed.
   */
  history?: { emails: NewEmail[]; refused?: RefusedEmail[]; at: number };
  /** The send's end in its customer's balance (db/credits.ts): what it held is owed to Dodo or given back. */
  spend?: SpendEnd;
}

/**
 * A state transition: applies `patch` only if `owner` still holds the send and it is in one of
 * `from`. A slow or stale instance therefore can never overwrite a newer state. `opts` adds
 * what commits with it (TransitionOptions); a transition out of `delivering` also forgets the
 * send's flight when none of its sends is still delivering (db/flights.ts releaseFlight).
 */
export async function transitionSend(
  database: Database,
  id: string,
  owner: string,
  from: readonly string[],
  patch: SendPatch,
  opts: TransitionOptions = {},
): Promise<SendRow> {
  const apply = (db: Database['db']) => applyTransition(db, database.engine, id, owner, from, patch, opts);
  const row = await (opts.dropPayload || opts.history || opts.spend ? database.db.transaction().execute((trx) => apply(trx)) : apply(database.db));
  if (opts.release) releasedClaims(database).add(claimKey(id, owner));
  // Events that beat the history are applied once it is committed (emails.ts applyEarlyEvents).
  if (opts.history) await applyEarlyEvents(database.db, opts.history.emails, opts.history.at);
  return row;
}

/** What a transition commits, on `db` (a transaction when it commits more than the row). */
async function applyTransition(
  db: Database['db'],
  engine: Database['engine'],
  id: string,
  owner: string,
  from: readonly string[],
  patch: SendPatch,
  opts: TransitionOptions,
): Promise<SendRow> {
  const set = opts.release ? { ...patch, owner: null, claimedUntil: null } : patch;
  const columns = Object.keys(set).filter((c) => set[c as keyof typeof set] !== undefined) as Array<keyof typeof set>;
  const [row] = await transitionQuery(columns, from).run(db, {
    ...Object.fromEntries(columns.map((c) => [`set:${c}`, set[c] as Scalar])),
    id,
    owner,
  });
  if (!row) throw new LostClaim(id);
  if (opts.spend) await endSpendIn(db, engine, opts.spend);
  if (opts.history) {
    await insertEmails(db, opts.history.emails, opts.history.at);
    await refuseEmails(db, opts.history.refused ?? [], opts.history.at);
  }
  if (opts.dropPayload) await db.deleteFrom('sendPayloads').where('sendId', '=', id).execute();
  if (row.flightId && row.state !== 'delivering' && from.includes('delivering')) await releaseFlight(db, row.flightId);
  return row;
}

/**
 * The conditional update of a transition, one per shape: the columns it sets and the states it
 * moves from (a transition's text depends on both; a send runs a few shapes, always the same).
 */
const transitions = new Map<string, Prepared<Record<string, Scalar>, SendRow>>();
function transitionQuery(columns: string[], from: readonly string[]): Prepared<Record<string, Scalar>, SendRow> {
  const shape = `${columns.join(',')}|${from.join(',')}`;
  let query = transitions.get(shape);
  if (!query) {
    // Values: `set:<column>` for the columns set (owner among them, when the claim is let go),
    // `id` and `owner` for the row's conditions.
    query = prepared((db, v: Record<string, Scalar>) =>
      db
        .updateTable('sends')
        .set(Object.fromEntries(columns.map((c) => [c, v[`set:${c}`]])))
        .where('id', '=', v.id as string)
        .where('owner', '=', v.owner as string)
        .where('state', 'in', [...from])
        .returningAll(),
    );
    transitions.set(shape, query);
  }
  return query;
}

/** The claim's insert, per list of columns (a new row always has the same: sender.ts newRow). */
const claims = new Map<string, Prepared<SendRow, SendRow>>();
function claimQuery(columns: Array<keyof SendRow>): Prepared<SendRow, SendRow> {
  const shape = columns.join(',');
  let query = claims.get(shape);
  if (!query) {
    query = prepared((db, row: SendRow) =>
      db
        .insertInto('sends')
        .values(Object.fromEntries(columns.map((c) => [c, row[c]])) as SendRow)
        .onConflict((oc) => oc.column('id').doNothing())
        .returningAll(),
    );
    claims.set(shape, query);
  }
  return query;
}

/**
 * Claims let go of by a transition (`release`), until the run that held them asks: a run ends
 * with releaseSend unless its last transition already released the claim, which saves a commit
 * per send. Per database, by owner and send.
 */
const released = new WeakMap<Database, Set<string>>();
const claimKey = (id: string, owner: string) => `${owner}\u0000${id}`;
function releasedClaims(database: Database): Set<string> {
  let set = released.get(database);
  if (!set) released.set(database, (set = new Set()));
  return set;
}

/**
 * True if a transition by `owner` let go of the send's claim since the last call (and forgets
 * it): the run that held the claim has nothing left to release. A run calls it as it starts
 * too, so that nothing left from an earlier one counts.
 */
export function releasedByTransition(database: Database, id: string, owner: string): boolean {
  return released.get(database)?.delete(claimKey(id, owner)) ?? false;
}

/**
 * Deletes a send this owner holds in one of `from` (a first attempt refused outright: as if it
 * never was), with its payload. Conditional like every transition: a row that moved on meanwhile
 * (its payment committed, though the commit's acknowledgement was lost) is left alone, and
 * false says so.
 */
export async function deleteSend(database: Database, id: string, owner: string, from: readonly SendRow['state'][]): Promise<boolean> {
  return database.db.transaction().execute(async (trx) => {
    const gone = await trx
      .deleteFrom('sends')
      .where('id', '=', id)
      .where('owner', '=', owner)
      .where('state', 'in', [...from])
      .executeTakeFirst();
    if (Number(gone.numDeletedRows) === 0) return false;
    await trx.deleteFrom('sendPayloads').where('sendId', '=', id).execute();
    return true;
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
  const [row] = await payloadQuery.run(database.db, { sendId: id });
  return row?.body;
}

/** Stores the payload unless one is there: an attempt in doubt must be retried with exactly the bytes it first sent. */
export async function putPayload(database: Database, id: string, body: string): Promise<void> {
  await storePayload.run(database.db, { sendId: id, body });
}

// What every send runs, compiled once (db/prepared.ts): its claim (claimQuery), its payload
// stored and read back, its transitions (transitionQuery).
const storePayload = prepared((db, v: { sendId: string; body: string }) =>
  db
    .insertInto('sendPayloads')
    .values({ sendId: v.sendId, body: v.body })
    .onConflict((oc) => oc.column('sendId').doNothing()),
);
const payloadQuery = prepared((db, v: { sendId: string }) => db.selectFrom('sendPayloads').select('body').where('sendId', '=', v.sendId));

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
        not(
          exists(
            selectFrom('sends')
              .select('sends.id')
              .whereRef('sends.id', '=', 'sendPayloads.sendId')
              .where('sends.state', 'in', [...UNSETTLED_STATES, 'failed']),
          ),
        ),
      )
      .execute();
    return Number(gone.numDeletedRows);
  });
}
