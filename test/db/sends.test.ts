import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/index';
import { findEmail } from '../../src/db/emails';
import { flightBody, recordFlight } from '../../src/db/flights';
import { findSend, insertOrGetSend, LostClaim, payloadOf, releasedByTransition, transitionSend, type SendRow } from '../../src/db/sends';
import { sendRow } from '../support/rows';
import { ENGINES, freshDatabase } from '../support/stack';

const row = (id: string, owner: string): SendRow => sendRow({ id, owner, claimedUntil: 10_000, funding: 'debit' });
const history = (id: string, sendId: string) => ({
  emails: [{ id, providerId: id, customerId: 'cus_a', sendId, recipients: { to: ['a@example.com'], cc: [], bcc: [] }, subject: 'Hi', credits: 1 }],
  at: 5,
});
const done = { state: 'done', inDoubt: 0, resultStatus: 200, resultBody: '{}', updatedAt: 5 };

describe.each(ENGINES)('send rows (%s)', (engine) => {
  let database: Database;
  afterEach(async () => {
    await database?.close();
  });

  it('the done transition commits the history, the claim let go, the payload and the flight forgotten, together', async () => {
    database = await freshDatabase(engine);
    await insertOrGetSend(database, row('snd_1', 'me'), '{"emails":[1]}');
    await insertOrGetSend(database, row('snd_2', 'me'), '{"emails":[2]}');
    const flying = await recordFlight(
      database,
      'flt_1',
      'me',
      [
        { sendId: 'snd_1', count: 1 },
        { sendId: 'snd_2', count: 2 },
      ],
      (id) => (id === 'snd_1' ? ['a'] : ['b', 'c']),
      2,
    );
    expect(flying.map((m) => [m.sendId, m.offset])).toEqual([
      ['snd_1', 0],
      ['snd_2', 1],
    ]);

    // The first send of the flight settles: its flight stays, the other is still delivering.
    await transitionSend(database, 'snd_1', 'me', ['delivering'], done, { dropPayload: true, release: true, history: history('em_1', 'snd_1') });
    expect(await findSend(database, 'snd_1')).toMatchObject({ state: 'done', owner: null, claimedUntil: null, flightId: 'flt_1' });
    expect(await payloadOf(database, 'snd_1')).toBeUndefined();
    expect((await findEmail(database, 'cus_a', 'em_1'))?.email.sendId).toBe('snd_1');
    expect(await flightBody(database, 'flt_1')).toBe('["a","b","c"]');
    expect(releasedByTransition(database, 'snd_1', 'me')).toBe(true);
    expect(releasedByTransition(database, 'snd_1', 'me')).toBe(false);

    // A stale owner's done changes nothing at all: no history, the payload kept.
    await expect(
      transitionSend(database, 'snd_2', 'someone-else', ['delivering'], done, {
        dropPayload: true,
        release: true,
        history: history('em_2', 'snd_2'),
      }),
    ).rejects.toBeInstanceOf(LostClaim);
    expect(await findEmail(database, 'cus_a', 'em_2')).toBeUndefined();
    expect(await payloadOf(database, 'snd_2')).toBe('{"emails":[2]}');
    expect(releasedByTransition(database, 'snd_2', 'someone-else')).toBe(false);

    // The last one settles: the flight's body goes with it.
    await transitionSend(database, 'snd_2', 'me', ['delivering'], done, { dropPayload: true, release: true, history: history('em_2', 'snd_2') });
    expect(await flightBody(database, 'flt_1')).toBeUndefined();
    expect((await findEmail(database, 'cus_a', 'em_2'))?.email.sendId).toBe('snd_2');
  });

  it('a flight leaves out a send no longer held, and the offsets of the others follow its body', async () => {
    database = await freshDatabase(engine);
    for (const [id, owner] of [
      ['snd_a', 'me'],
      ['snd_b', 'other'],
      ['snd_c', 'me'],
    ] as const)
      await insertOrGetSend(database, row(id, owner), '{}');
    const members = [
      { sendId: 'snd_a', count: 2 },
      { sendId: 'snd_b', count: 1 },
      { sendId: 'snd_c', count: 1 },
    ];
    const flying = await recordFlight(database, 'flt_2', 'me', members, (id) => [`${id}.0`, ...(id === 'snd_a' ? [`${id}.1`] : [])], 3);
    expect(flying.map((m) => [m.sendId, m.offset])).toEqual([
      ['snd_a', 0],
      ['snd_c', 2],
    ]);
    expect(JSON.parse((await flightBody(database, 'flt_2'))!)).toEqual(['snd_a.0', 'snd_a.1', 'snd_c.0']);
    expect(await findSend(database, 'snd_c')).toMatchObject({ flightId: 'flt_2', flightOffset: 2 });
    expect(await findSend(database, 'snd_b')).toMatchObject({ flightId: null, flightOffset: null });
  });
});

describe('SQLite prepared statements', () => {
  it('are kept by their text, but a PRAGMA is prepared each time (SQLite applies it when it is prepared)', async () => {
    const database = await freshDatabase('sqlite');
    try {
      if (database.native.engine !== 'sqlite') throw new Error('not sqlite');
      const { prepare, sqlite } = database.native;
      expect(prepare('select 1')).toBe(prepare('select 1'));
      expect(prepare('PRAGMA synchronous')).not.toBe(prepare('PRAGMA synchronous'));
      prepare('PRAGMA synchronous = NORMAL').run();
      prepare('PRAGMA synchronous = FULL').run();
      expect(sqlite.pragma('synchronous', { simple: true })).toBe(2);
      // A statement still being iterated is not handed out again.
      const iterating = prepare('select 1 union all select 2').iterate();
      iterating.next();
      expect(prepare('select 1 union all select 2').all()).toHaveLength(2);
      iterating.return?.();
    } finally {
      await database.close();
    }
  });
});
