import type { Database } from './index';
import { prepared } from './prepared';

/** The customer's API key epoch (0 until its first rotation). */
export async function keyEpoch(database: Database, customerId: string): Promise<number> {
  const [row] = await epochQuery.run(database.db, { customerId });
  return row?.epoch ?? 0;
}

/** Every authenticated request reads it: compiled once (db/prepared.ts). */
const epochQuery = prepared((db, v: { customerId: string }) => db.selectFrom('apiKeyEpochs').select('epoch').where('customerId', '=', v.customerId));

/**
 * Bumps the customer's epoch in one statement and returns the new one: two rotations at once,
 * on any instances, give two different epochs, and the later one wins. Committed before the
 * caller answers, so an acknowledged rotation survives a crash.
 */
export async function bumpKeyEpoch(database: Database, customerId: string): Promise<number> {
  const row = await database.db
    .insertInto('apiKeyEpochs')
    .values({ customerId, epoch: 1 })
    .onConflict((oc) => oc.column('customerId').doUpdateSet((eb) => ({ epoch: eb('apiKeyEpochs.epoch', '+', 1) })))
    .returning('epoch')
    .executeTakeFirstOrThrow();
  return row.epoch;
}
