import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { bearer, customerWith, startTestStack } from '../support/stack';

/**
 * The old journal store kept every send's full payload and read it whole at startup, so
 * a customer could grow it past what the next start could read. On the database a payload is
 * deleted when its send settles, and a start reads nothing in proportion to the history.
 */
describe('a store a customer fills with large batches', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-large-'));
  const env = { MAILKIT_DATA_DIR: dataDir, MAILKIT_KEY_SECRET: 'large-store-secret-'.repeat(3) };
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps no payload once sends settle, stays small, and the server starts again over it', async () => {
    let stack = await startTestStack(env, { inMemory: false });
    const c = await customerWith(stack, 1000);
    const html = `<p>${'x'.repeat(60 * 1024)}</p>`;
    const batches = async (from: number, to: number) => {
      for (let b = from; b < to; b++) {
        const emails = Array.from({ length: 100 }, (_, i) => ({ to: 'delivered@resend.dev', subject: `big ${b}.${i}`, html }));
        const r = await request(stack.url).post('/send/batch').set(bearer(c.key)).send({ emails });
        expect(r.status).toBe(200);
      }
    };
    // The database file itself, once the WAL is folded into it.
    const size = () => {
      const native = stack.database.native;
      if (native.engine === 'sqlite') native.sqlite.pragma('wal_checkpoint(TRUNCATE)');
      return statSync(join(dataDir, 'mailkit.sqlite')).size;
    };
    await batches(0, 2);
    const afterTwo = size();
    await batches(2, 8);
    const payloads = await stack.database.db
      .selectFrom('sendPayloads')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(payloads.n)).toBe(0);
    // 48 MB of email bodies went through; the file holds at most what was in flight at once
    // (SQLite reuses the freed pages), not the history: three times as many batches, no growth.
    expect(size()).toBeLessThan(afterTwo + 2 * 1024 * 1024);
    await stack.close();

    stack = await startTestStack(env, { inMemory: false });
    try {
      const again = await request(stack.url)
        .post('/send')
        .set(bearer(c.key))
        .send({ to: 'delivered@resend.dev', subject: 'after restart', html: '<p>ok</p>' });
      expect(again.status).toBe(200);
    } finally {
      await stack.close();
    }
  }, 120_000);
});
