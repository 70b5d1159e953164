import type { Database } from './index';

/** A send's place in a flight: its emails are items `offset` … `offset + count - 1` of the call. */
export interface FlightMember {
  sendId: string;
  count: number;
}

/**
 * Records a flight before it flies, in one transaction: each member is tagged with the flight
 * and its offset if this owner still holds it and it is delivering (a conditional update, as
 * every transition); the flight's body is then the emails of the tagged members only. Returns
 * the members that fly, with their offsets; the others are no longer this instance's.
 *
 * All members are tagged by one update (each offset computed as if all of them fly). When one
 * was not tagged (lost to another instance meanwhile: rare), the offsets of the others are set
 * again, as they are in the body, in the same transaction.
 */
export async function recordFlight(
  database: Database,
  flightId: string,
  owner: string,
  members: FlightMember[],
  bodyOf: (sendId: string) => unknown[],
  at: number,
): Promise<Array<FlightMember & { offset: number }>> {
  if (members.length === 0) return [];
  return database.db.transaction().execute(async (trx) => {
    const offsets = (ms: FlightMember[]) => {
      let next = 0;
      return ms.map((m) => {
        const offset = next;
        next += m.count;
        return { ...m, offset };
      });
    };
    const tag = (ms: Array<FlightMember & { offset: number }>) =>
      trx
        .updateTable('sends')
        .set((eb) => ({
          flightId,
          // One member: its offset; several: a CASE on the id (cast: PostgreSQL types a CASE of bare parameters as text).
          flightOffset:
            ms.length === 1
              ? ms[0]!.offset
              : eb.cast<number>(
                  ms
                    .slice(1)
                    .reduce((c, m) => c.when('id', '=', m.sendId).then(m.offset), eb.case().when('id', '=', ms[0]!.sendId).then(ms[0]!.offset))
                    .end(),
                  'integer',
                ),
          deliveringSince: at,
          updatedAt: at,
        }))
        .where(
          'id',
          'in',
          ms.map((m) => m.sendId),
        )
        .where('owner', '=', owner)
        .where('state', '=', 'delivering')
        .returning('id')
        .execute();
    const all = offsets(members);
    const tagged = new Set((await tag(all)).map((r) => r.id));
    let flying = all;
    if (tagged.size < members.length) {
      flying = offsets(members.filter((m) => tagged.has(m.sendId)));
      if (flying.some((m) => m.offset !== all.find((a) => a.sendId === m.sendId)!.offset)) await tag(flying);
    }
    if (flying.length > 0) {
      const body = flying.flatMap((m) => bodyOf(m.sendId));
      await trx
        .insertInto('flights')
        .values({ id: flightId, body: JSON.stringify(body), createdAt: at })
        .execute();
    }
    return flying;
  });
}

export async function flightBody(database: Database, flightId: string): Promise<string | undefined> {
  const row = await database.db.selectFrom('flights').select('body').where('id', '=', flightId).executeTakeFirst();
  return row?.body;
}

/**
 * Forgets flights no send waits on any more (none of their sends is still delivering), and
 * every flight older than `cutoff` (Resend forgets keys after 24 h: such a flight can never be
 * re-sent safely anyway). A flight's body is the emails themselves: it is kept only while an
 * outcome is open.
 */
export async function pruneFlights(database: Database, settledBefore: number, cutoff: number): Promise<void> {
  await database.db
    .deleteFrom('flights')
    .where((eb) =>
      eb.or([
        eb('createdAt', '<', cutoff),
        eb.and([
          eb('createdAt', '<', settledBefore),
          eb.not(
            eb.exists(
              eb.selectFrom('sends').select('sends.id').whereRef('sends.flightId', '=', 'flights.id').where('sends.state', '=', 'delivering'),
            ),
          ),
        ]),
      ]),
    )
    .execute();
}

/**
 * Forgets the flight that carried `sendId` once none of its sends is still delivering: its
 * outcome is settled for all of them, and its body (the emails themselves) is not kept. One
 * statement; nothing to do when the send's own settling transition already forgot it
 * (releaseFlight, in transitionSend's transaction), as it usually has. On SQLite it always has:
 * writers take turns, each seeing every commit before its own (a stale one is refused with
 * SQLITE_BUSY_SNAPSHOT), so the last send of a flight to settle sees the others settled.
 */
export async function releaseFlightOf(database: Database, sendId: string): Promise<void> {
  if (database.engine === 'sqlite') return;
  await database.db
    .deleteFrom('flights')
    .where('id', '=', (eb) => eb.selectFrom('sends').select('sends.flightId').where('sends.id', '=', sendId))
    .where((eb) =>
      eb.not(
        eb.exists(eb.selectFrom('sends').select('sends.id').whereRef('sends.flightId', '=', 'flights.id').where('sends.state', '=', 'delivering')),
      ),
    )
    .execute();
}

/**
 * Forgets flight `flightId` if none of its sends is still delivering: run by a send's own
 * transition out of `delivering`, in its transaction. On PostgreSQL two sends of one flight
 * settling at once may each still see the other delivering; releaseFlightOf, after the commit,
 * and pruneFlights catch that.
 */
export async function releaseFlight(db: Database['db'], flightId: string): Promise<void> {
  await db
    .deleteFrom('flights')
    .where('id', '=', flightId)
    .where((eb) =>
      eb.not(eb.exists(eb.selectFrom('sends').select('sends.id').where('sends.flightId', '=', flightId).where('sends.state', '=', 'delivering'))),
    )
    .execute();
}
