import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/index';
import { prepared } from '../../src/db/prepared';
import { ENGINES, freshDatabase } from '../support/stack';

/** A prepared query must answer exactly what the same query built each time answers, with each call's own values. */
describe.each(ENGINES)('prepared queries (%s)', (engine) => {
  let database: Database;
  afterEach(async () => {
    await database?.close();
  });

  const put = prepared((db, v: { sendId: string; body: string }) => db.insertInto('sendPayloads').values({ sendId: v.sendId, body: v.body }));
  const bodyOf = prepared((db, v: { sendId: string }) => db.selectFrom('sendPayloads').select(['sendId', 'body']).where('sendId', '=', v.sendId));
  const rename = prepared((db, v: { from: string; to: string }) => db.updateTable('sendPayloads').set({ body: v.to }).where('body', '=', v.from));

  it('runs with each call’s values, in a transaction or not, and answers camelCased rows as the builder does', async () => {
    database = await freshDatabase(engine);
    await put.run(database.db, { sendId: 'a', body: 'one' });
    await database.db.transaction().execute(async (trx) => {
      await put.run(trx, { sendId: 'b', body: 'two' });
      expect(await bodyOf.run(trx, { sendId: 'b' })).toEqual([{ sendId: 'b', body: 'two' }]);
    });
    expect(await bodyOf.run(database.db, { sendId: 'a' })).toEqual(
      await database.db.selectFrom('sendPayloads').select(['sendId', 'body']).where('sendId', '=', 'a').execute(),
    );
    expect(await bodyOf.run(database.db, { sendId: 'b' })).toEqual([{ sendId: 'b', body: 'two' }]);
    expect(await bodyOf.run(database.db, { sendId: 'c' })).toEqual([]);
    expect(await rename.changed(database.db, { from: 'one', to: 'uno' })).toBe(1);
    expect(await rename.changed(database.db, { from: 'one', to: 'uno' })).toBe(0);
    expect(await bodyOf.run(database.db, { sendId: 'a' })).toEqual([{ sendId: 'a', body: 'uno' }]);
  });

  it('a transaction rolled back takes its prepared writes with it', async () => {
    database = await freshDatabase(engine);
    await expect(
      database.db.transaction().execute(async (trx) => {
        await put.run(trx, { sendId: 'x', body: 'gone' });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await bodyOf.run(database.db, { sendId: 'x' })).toEqual([]);
  });

  it('refuses a build whose text would depend on the values', async () => {
    database = await freshDatabase(engine);
    // Reads a value instead of passing it: the statement would keep the first call's choice.
    const branching = prepared((db, v: { sendId: string; all: string }) =>
      db
        .selectFrom('sendPayloads')
        .select('body')
        .$if(v.all !== 'yes', (q) => q.where('sendId', '=', v.sendId)),
    );
    // Spreads the values: an insert of no columns at all.
    const spreading = prepared((db, v: { sendId: string; body: string }) => db.insertInto('sendPayloads').values({ ...v }));
    await expect(branching.run(database.db, { sendId: 'a', all: 'yes' })).rejects.toThrow(/all did not become parameters/);
    await expect(spreading.run(database.db, { sendId: 'a', body: 'b' })).rejects.toThrow(/cannot be listed or spread/);
  });
});
