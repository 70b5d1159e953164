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
 */
export async function recordFlight(
  database: Database,
  flightId: string,
  owner: string,
  members: FlightMember[],
  bodyOf: (sendId: string) => unknown[],
  at: number,
): Promise<Array<FlightMember & { offset: number }>> {
  return database.db.transaction().execute(async (trx) => {
    const flying: Array<FlightMember & { offset: number }> = [];
    const body: unknown[] = [];
    for (const m of members) {
      const tagged = await trx
        .updateTable('sends')
        .set({ flightId, flightOffset: body.length, deliveringSince: at, updatedAt: at })
        .where('id', '=', m.sendId)
        .where('owner', '=', owner)
        .where('state', '=', 'delivering')
        .returning('id')
        .executeTakeFirst();
      if (!tagged) continue;
      flying.push({ ...m, offset: body.length });
      body.push(...bodyOf(m.sendId));
    }
    if (flying.length > 0) await trx.insertInto('flights').values({ id: flightId, body: JSON.stringify(body), createdAt: at }).execute();
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
          eb.not(eb.exists(eb.selectFrom('sends').select('sends.id').whereRef('sends.flightId', '=', 'flights.id').where('sends.state', '=', 'delivering'))),
        ]),
      ]),
    )
    .execute();
}

/**
 * Forgets the flight that carried `sendId` once none of its sends is still delivering: its
 * outcome is settled for all of them, and its body (the emails themselves) is not kept.
 */
export async function releaseFlightOf(database: Database, sendId: string): Promise<void> {
  const row = await database.db.selectFrom('sends').select('flightId').where('id', '=', sendId).executeTakeFirst();
  const flightId = row?.flightId;
  if (!flightId) return;
  await database.db
    .deleteFrom('flights')
    .where('id', '=', flightId)
    .where((eb) => eb.not(eb.exists(eb.selectFrom('sends').select('sends.id').where('sends.flightId', '=', flightId).where('sends.state', '=', 'delivering'))))
    .execute();
}
