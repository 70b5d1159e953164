import { chmodSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db';
import { importJournal } from '../../src/db/import-journal';
import { createLogger } from '../../src/logger';
import { forEachEngine } from '../support/database';

const at = (time: string) => `2026-11-29T${time}.000Z`;
const ms = (time: string) => Date.parse(at(time));

/** A send record as src/sending wrote it before the database. */
function oldSend(state: string, extra: Record<string, unknown> = {}) {
  return { customerId: 'cus_a', fingerprint: `fp_${state}`, credits: 1, attempt: 0, state, createdAt: at('10:00:00'), updatedAt: at('10:00:05'), ...extra };
}

const payload = (to: string) => ({ batch: false, emails: [{ from: 'MailKit <onboarding@resend.dev>', to, subject: 'Hi', html: '<p>hi</p>' }] });

/**
 * An old data dir, written by hand in the journal store's format: a snapshot of generation 2,
 * a stale journal 1 (folded into the snapshot already: must not be replayed), journal 2 with
 * overrides and removals, journal 3 ending in a line torn by a crash.
 */
function oldDataDir(dir: string) {
  const snapshot = {
    generation: 2,
    data: {
      keyEpochs: { cus_a: 1, cus_b: 3 },
      sends: {
        snd_done: oldSend('done', { result: { status: 200, body: { id: 'em_1' } } }),
        snd_delivering: oldSend('new', { customerId: 'cus_b' }),
        snd_unsure: oldSend('unsure', { attempt: 1 }),
        snd_refunding: oldSend('refunding', { credits: 3, refund: { credits: 3, retryable: true, reason: 'resend_rejected' } }),
        snd_failed: oldSend('failed', { attempt: 2 }),
        snd_pruned: oldSend('done', { result: { status: 200, body: { id: 'em_0' } } }),
      },
      payloads: { snd_delivering: payload('b@example.com'), snd_orphan: payload('nobody@example.com') },
      webhooks: { msg_1: at('09:00:00'), msg_2: at('09:30:00') },
      generated: { keySecret: 'ks_old', sandboxWebhookSecret: 'whsec_old' },
    },
  };
  writeFileSync(join(dir, 'mailkit.json'), JSON.stringify(snapshot));
  const lines = (entries: object[]) => entries.map((e) => `${JSON.stringify(e)}\n`).join('');
  writeFileSync(join(dir, 'mailkit.1.journal'), lines([{ c: 'keyEpochs', k: 'cus_a', v: 99 }]));
  writeFileSync(
    join(dir, 'mailkit.2.journal'),
    lines([
      { c: 'keyEpochs', k: 'cus_a', v: 2 },
      { c: 'sends', k: 'snd_pruned', d: 1 },
      { c: 'webhooks', k: 'msg_3', v: at('10:00:00') },
      { c: 'sends', k: 'snd_delivering', v: oldSend('delivering', { customerId: 'cus_b', updatedAt: at('10:00:07') }) },
      { c: 'sends', k: 'snd_new', v: oldSend('new', { credits: 2 }) },
    ]),
  );
  writeFileSync(
    join(dir, 'mailkit.3.journal'),
    `${lines([
      { c: 'webhooks', k: 'msg_1', d: 1 },
      { c: 'keyEpochs', k: 'cus_c', v: 1 },
      { c: 'payloads', k: 'snd_new', v: payload('new@example.com') },
    ])}{"c":"keyEpochs","k":"cus_b","v":7`,
  );
  // As the journal store left them under the usual umask: readable by everyone, secrets included.
  for (const name of readdirSync(dir)) chmodSync(join(dir, name), 0o644);
}

/** Every table the import fills, in a stable order. */
async function tables(database: Database) {
  const { db } = database;
  return {
    apiKeyEpochs: await db.selectFrom('apiKeyEpochs').selectAll().orderBy('customerId').execute(),
    secrets: await db.selectFrom('secrets').selectAll().orderBy('name').execute(),
    webhookEvents: await db.selectFrom('webhookEvents').selectAll().orderBy('id').execute(),
    sends: await db.selectFrom('sends').selectAll().orderBy('id').execute(),
    sendPayloads: await db.selectFrom('sendPayloads').selectAll().orderBy('sendId').execute(),
    journalImports: await db.selectFrom('journalImports').select(['name', 'summary']).execute(),
  };
}

const send = (id: string, fields: Record<string, unknown>) => ({
  id,
  customerId: 'cus_a',
  clientKey: '',
  fingerprint: `fp_${fields.state}`,
  credits: 1,
  attempt: 0,
  nonce: '',
  flightId: null,
  flightOffset: null,
  // Imported sends were each paid by their own debit, under the journal store's keys.
  funding: 'debit',
  leaseId: null,
  inDoubt: 0,
  refundCredits: null,
  refundReason: null,
  refundRetryable: null,
  resultStatus: null,
  resultBody: null,
  owner: null,
  claimedUntil: null,
  createdAt: ms('10:00:00'),
  updatedAt: ms('10:00:05'),
  deliveringSince: null,
  ...fields,
});

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailkit-old-data-'));
  dirs.push(dir);
  return dir;
}

function capturingLog() {
  const lines: { level: number; msg: string }[] = [];
  const log = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

forEachEngine('importJournal', ({ open }) => {
  describe('with an old data directory', () => {
    it('copies key epochs, secrets, webhook ids and sends with their payloads, as the journal left them', async () => {
      const dir = tempDir();
      oldDataDir(dir);
      const database = await open();
      const { log, lines } = capturingLog();
      const result = await importJournal(database, dir, log);
      expect(result).toMatchObject({ status: 'imported', summary: { keyEpochs: 3, secrets: 2, webhookEvents: 2, sends: 6, payloads: 2, skipped: 1 } });

      const t = await tables(database);
      // cus_a: journal 2 overrides the snapshot (the stale journal 1 does not); cus_b: the torn line is ignored.
      expect(t.apiKeyEpochs).toEqual([
        { customerId: 'cus_a', epoch: 2 },
        { customerId: 'cus_b', epoch: 3 },
        { customerId: 'cus_c', epoch: 1 },
      ]);
      expect(t.secrets).toEqual([
        { name: 'keySecret', value: 'ks_old' },
        { name: 'sandboxWebhookSecret', value: 'whsec_old' },
      ]);
      expect(t.webhookEvents).toEqual([
        { id: 'msg_2', receivedAt: ms('09:30:00') },
        { id: 'msg_3', receivedAt: ms('10:00:00') },
      ]);
      expect(t.sends).toEqual([
        send('snd_delivering', { customerId: 'cus_b', fingerprint: 'fp_delivering', state: 'delivering', inDoubt: 1, updatedAt: ms('10:00:07'), deliveringSince: ms('10:00:00') }),
        send('snd_done', { state: 'done', resultStatus: 200, resultBody: '{"id":"em_1"}' }),
        send('snd_failed', { state: 'failed', attempt: 2 }),
        send('snd_new', { fingerprint: 'fp_new', state: 'reserving', inDoubt: 1, credits: 2 }),
        send('snd_refunding', { state: 'refunding', credits: 3, refundCredits: 3, refundReason: 'resend_rejected', refundRetryable: 1 }),
        send('snd_unsure', { fingerprint: 'fp_unsure', state: 'reserving', inDoubt: 1, attempt: 1 }),
      ]);
      // No nonce: imported sends keep the journal store's upstream keys (see upstreamKeys).
      expect(t.sends.every((s) => s.nonce === '')).toBe(true);
      // The orphan payload (its send is not there) is the one skipped entry.
      expect(t.sendPayloads.map((p) => ({ sendId: p.sendId, body: JSON.parse(p.body) }))).toEqual([
        { sendId: 'snd_delivering', body: payload('b@example.com') },
        { sendId: 'snd_new', body: payload('new@example.com') },
      ]);

      expect(readdirSync(dir).sort()).toEqual(['mailkit.1.journal.imported', 'mailkit.2.journal.imported', 'mailkit.3.journal.imported', 'mailkit.json.imported']);
      // They hold the key secret: kept, but readable by MailKit's user only.
      for (const name of readdirSync(dir)) expect([name, (statSync(join(dir, name)).mode & 0o777).toString(8)]).toEqual([name, '600']);
      expect(lines.some((l) => l.msg === 'imported the old data directory into the database')).toBe(true);
    });

    it('imports nothing on the next boot', async () => {
      const dir = tempDir();
      oldDataDir(dir);
      const database = await open();
      const { log } = capturingLog();
      await importJournal(database, dir, log);
      const before = await tables(database);
      expect(await importJournal(database, dir, log)).toEqual({ status: 'nothing-to-import' });
      expect(await tables(database)).toEqual(before);
    });

    it('finishes the renaming after a crash between the commit and the renames, importing nothing twice', async () => {
      const dir = tempDir();
      oldDataDir(dir);
      const database = await open();
      const { log } = capturingLog();
      await importJournal(database, dir, log);
      const before = await tables(database);
      for (const name of readdirSync(dir)) renameSync(join(dir, name), join(dir, name.replace(/\.imported$/, '')));
      expect(await importJournal(database, dir, log)).toMatchObject({ status: 'already-imported' });
      expect(await tables(database)).toEqual(before);
      expect(readdirSync(dir).every((n) => n.endsWith('.imported'))).toBe(true);
    });

    it('imports nothing at all when any row fails, and leaves the files in place', async () => {
      const dir = tempDir();
      oldDataDir(dir);
      const database = await open();
      // The last table written collides: everything before it must be rolled back too.
      await database.db.insertInto('sendPayloads').values({ sendId: 'snd_new', body: '{}' }).execute();
      await expect(importJournal(database, dir, capturingLog().log)).rejects.toThrow(/nothing was imported/);
      const t = await tables(database);
      expect(t).toEqual({ apiKeyEpochs: [], secrets: [], webhookEvents: [], sends: [], sendPayloads: [{ sendId: 'snd_new', body: '{}' }], journalImports: [] });
      expect(existsSync(join(dir, 'mailkit.json'))).toBe(true);
      expect(existsSync(join(dir, 'mailkit.3.journal'))).toBe(true);
    });

    it('leaves newer old-format files alone once an import happened, and says so', async () => {
      const dir = tempDir();
      oldDataDir(dir);
      const database = await open();
      await importJournal(database, dir, capturingLog().log);
      const before = await tables(database);
      // An older MailKit ran on the directory again.
      writeFileSync(join(dir, 'mailkit.0.journal'), `${JSON.stringify({ c: 'keyEpochs', k: 'cus_z', v: 1 })}\n`);
      const { log, lines } = capturingLog();
      expect(await importJournal(database, dir, log)).toMatchObject({ status: 'left-untouched' });
      expect(await tables(database)).toEqual(before);
      expect(existsSync(join(dir, 'mailkit.0.journal'))).toBe(true);
      expect(lines.some((l) => l.level === 40 && /not imported/.test(l.msg))).toBe(true);
    });

    it('refuses a journal with a broken line before others, naming it, and imports nothing', async () => {
      const dir = tempDir();
      oldDataDir(dir);
      writeFileSync(join(dir, 'mailkit.4.journal'), `{"c":"keyEpochs","k":"cus_a","v":5}\nnot json\n{"c":"keyEpochs","k":"cus_a","v":6}\n`);
      const database = await open();
      await expect(importJournal(database, dir, capturingLog().log)).rejects.toThrow(/mailkit\.4\.journal: line 2 is not a valid journal line/);
      expect((await tables(database)).apiKeyEpochs).toEqual([]);
      expect(existsSync(join(dir, 'mailkit.json'))).toBe(true);
    });
  });

  describe('with the older formats', () => {
    it("reads json-store's bare mailkit.json", async () => {
      const dir = tempDir();
      writeFileSync(join(dir, 'mailkit.json'), JSON.stringify({ keyEpochs: { cus_a: 4 }, sends: {}, webhooks: { msg_1: at('08:00:00') }, generated: { keySecret: 'ks_bare' } }));
      const database = await open();
      expect(await importJournal(database, dir, capturingLog().log)).toMatchObject({ status: 'imported', summary: { keyEpochs: 1, secrets: 1, webhookEvents: 1 } });
      const t = await tables(database);
      expect(t.apiKeyEpochs).toEqual([{ customerId: 'cus_a', epoch: 4 }]);
      expect(t.secrets).toEqual([{ name: 'keySecret', value: 'ks_bare' }]);
      expect(t.webhookEvents).toEqual([{ id: 'msg_1', receivedAt: ms('08:00:00') }]);
      expect(readdirSync(dir)).toEqual(['mailkit.json.imported']);
    });

    it('reads a journal with no snapshot yet (a store that never compacted)', async () => {
      const dir = tempDir();
      writeFileSync(join(dir, 'mailkit.0.journal'), `${JSON.stringify({ c: 'keyEpochs', k: 'cus_a', v: 1 })}\n${JSON.stringify({ c: 'keyEpochs', k: 'cus_a', v: 2 })}\n`);
      const database = await open();
      await importJournal(database, dir, capturingLog().log);
      expect((await tables(database)).apiKeyEpochs).toEqual([{ customerId: 'cus_a', epoch: 2 }]);
      expect(readdirSync(dir)).toEqual(['mailkit.0.journal.imported']);
    });
  });

  describe('with no old data', () => {
    it('does nothing, for an empty or missing directory', async () => {
      const database = await open();
      const { log, lines } = capturingLog();
      expect(await importJournal(database, tempDir(), log)).toEqual({ status: 'nothing-to-import' });
      expect(await importJournal(database, join(tempDir(), 'missing'), log)).toEqual({ status: 'nothing-to-import' });
      expect((await tables(database)).journalImports).toEqual([]);
      expect(lines).toEqual([]);
    });
  });
});
