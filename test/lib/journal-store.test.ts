import { appendFileSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createJournalStore, type JournalStore, type JournalStoreOptions } from '../../src/lib/journal-store';

interface Item {
  n: number;
  pad?: string;
}
interface Doc {
  items: Record<string, Item>;
  tags: Record<string, string>;
}

describe('createJournalStore', () => {
  let dir: string;
  let opened: JournalStore<Doc>[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailkit-journal-'));
    opened = [];
  });
  afterEach(async () => {
    await Promise.allSettled(opened.map((store) => store.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  const snapshotPath = () => join(dir, 'mailkit.json');
  const open = (opts: Partial<JournalStoreOptions<Doc>> = {}) => {
    const store = createJournalStore<Doc>({ file: snapshotPath(), initial: () => ({ items: {}, tags: {} }), ...opts });
    opened.push(store);
    return store;
  };
  const files = () => readdirSync(dir).sort();
  const journalLines = (generation: number) => readFileSync(join(dir, `mailkit.${generation}.journal`), 'utf8').split('\n').filter(Boolean);

  describe('reopening', () => {
    it('reads back what was set, including a record mutated in place and set again', async () => {
      const store = open();
      store.set('items', 'a', { n: 1 });
      store.set('tags', 'x', 'hello');
      const record = store.data.items.a!;
      Object.assign(record, { n: 2, pad: 'patched' });
      store.set('items', 'a', record);
      await store.flush();
      expect(open().data).toEqual({ items: { a: { n: 2, pad: 'patched' } }, tags: { x: 'hello' } });
    });

    it('a delete survives the reopen', async () => {
      const store = open();
      store.set('items', 'a', { n: 1 });
      store.set('items', 'b', { n: 2 });
      store.delete('items', 'a');
      await store.flush();
      expect(open().data.items).toEqual({ b: { n: 2 } });
    });

    it('each mutation appends one line holding only that entry', async () => {
      const store = open();
      for (let i = 0; i < 100; i++) store.set('items', `k${i}`, { n: i });
      await store.flush();
      store.set('items', 'k5', { n: 500 });
      await store.flush();
      const lines = journalLines(0);
      expect(lines).toHaveLength(101);
      expect(JSON.parse(lines[100]!)).toEqual({ c: 'items', k: 'k5', v: { n: 500 } });
    });

    it('ignores a torn last line (a crash mid-append), and appends cleanly after it', async () => {
      const store = open();
      store.set('items', 'a', { n: 1 });
      await store.flush();
      appendFileSync(join(dir, 'mailkit.0.journal'), '{"c":"items","k":"b","v":{"n"');
      const reopened = open();
      expect(reopened.data.items).toEqual({ a: { n: 1 } });
      reopened.set('items', 'c', { n: 3 });
      await reopened.flush();
      expect(open().data.items).toEqual({ a: { n: 1 }, c: { n: 3 } });
    });

    it('close() leaves everything on disk, and a set after it appends to what is there', async () => {
      const store = open();
      store.set('items', 'a', { n: 1 });
      await store.close();
      expect(open().data.items).toEqual({ a: { n: 1 } });
      store.set('items', 'b', { n: 2 });
      await store.close();
      expect(open().data.items).toEqual({ a: { n: 1 }, b: { n: 2 } });
    });

    it('refuses a journal corrupt before its last line, naming the file and the line', async () => {
      const store = open();
      store.set('items', 'a', { n: 1 });
      await store.flush();
      appendFileSync(join(dir, 'mailkit.0.journal'), 'garbage\n{"c":"items","k":"b","v":{"n":2}}\n');
      expect(() => open()).toThrow(/mailkit\.0\.journal: line 2 is not a valid journal line/);
    });

    it('refuses a corrupt snapshot with a message naming it', () => {
      writeFileSync(snapshotPath(), '{"generation": 1,');
      expect(() => open()).toThrow(/mailkit\.json is not valid JSON/);
    });
  });

  describe('keys()', () => {
    const order = (store: JournalStore<Doc>) => [...store.keys('items')];
    const shuffle = (store: JournalStore<Doc>) => {
      for (const k of ['a', 'b', 'c', 'd']) store.set('items', k, { n: 0 });
      store.set('items', 'b', { n: 1 }); // an update keeps its place
      store.delete('items', 'a');
      store.set('items', 'a', { n: 2 }); // removed and set again: the newest
    };

    it('lists a collection oldest first, across a reopen and a compaction', async () => {
      const store = open();
      shuffle(store);
      expect(order(store)).toEqual(['b', 'c', 'd', 'a']);
      await store.flush();
      expect(order(open({ readOnly: true }))).toEqual(['b', 'c', 'd', 'a']);
      await store.compact();
      store.set('items', 'e', { n: 3 });
      await store.flush();
      expect(order(open({ readOnly: true }))).toEqual(['b', 'c', 'd', 'a', 'e']);
    });

    it('is live: a caller may delete the entries it has read', () => {
      const store = open();
      shuffle(store);
      for (const k of store.keys('items')) {
        if (k === 'd') break;
        store.delete('items', k);
      }
      expect(order(store)).toEqual(['d', 'a']);
      expect(Object.keys(store.data.items).sort()).toEqual(['a', 'd']);
    });

    it('in memory too', () => {
      const store = createJournalStore<Doc>({ file: null, initial: () => ({ items: {}, tags: {} }) });
      shuffle(store);
      expect(order(store)).toEqual(['b', 'c', 'd', 'a']);
    });
  });

  describe('compaction', () => {
    it('writes a snapshot and starts a fresh journal; a reopen reads the same data', async () => {
      const store = open();
      for (let i = 0; i < 50; i++) store.set('items', `k${i % 10}`, { n: i });
      store.delete('items', 'k3');
      await store.compact();
      expect(files()).toEqual(['mailkit.json']);
      expect(JSON.parse(readFileSync(snapshotPath(), 'utf8')).generation).toBe(1);

      store.set('tags', 'after', 'yes');
      await store.flush();
      expect(files()).toEqual(['mailkit.1.journal', 'mailkit.json']);
      expect(journalLines(1)).toHaveLength(1);
      expect(open().data).toEqual(store.data);
      expect(open().data.items.k3).toBeUndefined();
    });

    it('close() lets a compaction in progress finish', async () => {
      const store = open();
      for (let i = 0; i < 5_000; i++) store.set('items', `k${i}`, { n: i, pad: 'x'.repeat(100) });
      void store.compact();
      store.set('tags', 'during', 'compaction');
      await store.close();
      expect(files()).toEqual(['mailkit.1.journal', 'mailkit.json']);
      expect(open().data).toEqual(store.data);
    });

    it('happens on its own once the journal outgrows twice the live entries', async () => {
      const store = open({ compactFloor: 50 });
      for (let i = 0; i < 120; i++) store.set('items', `k${i % 5}`, { n: i });
      await vi.waitUntil(() => !files().includes('mailkit.0.journal') && files().includes('mailkit.json'), { timeout: 5_000, interval: 10 });
      await store.flush();
      expect(open().data).toEqual(store.data);
      expect(open().data.items.k4).toEqual({ n: 119 });
    });

    it('loses nothing after a crash between "new generation started" and "snapshot renamed"', async () => {
      const store = open();
      store.set('items', 'a', { n: 1 });
      store.set('items', 'b', { n: 1 });
      await store.compact(); // snapshot generation 1
      store.set('items', 'c', { n: 1 });
      store.set('items', 'a', { n: 2 });
      store.delete('items', 'b');
      await store.flush();
      const oldSnapshot = readFileSync(snapshotPath());
      copyFileSync(join(dir, 'mailkit.1.journal'), join(dir, 'saved.journal'));

      await store.compact(); // generation 2
      store.set('items', 'd', { n: 1 });
      store.set('items', 'a', { n: 3 });
      store.delete('items', 'c');
      await store.flush();

      // The crash: the old snapshot still in place, both journals, a half-written temp snapshot.
      writeFileSync(snapshotPath(), oldSnapshot);
      copyFileSync(join(dir, 'saved.journal'), join(dir, 'mailkit.1.journal'));
      rmSync(join(dir, 'saved.journal'));
      writeFileSync(join(dir, 'mailkit.json.4242.tmp'), '{"generation":2,"data":{"ite');
      expect(files()).toEqual(['mailkit.1.journal', 'mailkit.2.journal', 'mailkit.json', 'mailkit.json.4242.tmp']);

      const reopened = open();
      expect(reopened.data).toEqual({ items: { a: { n: 3 }, d: { n: 1 } }, tags: {} });
      expect(reopened.data).toEqual(store.data);
      // The next compaction leaves one snapshot and nothing else.
      await reopened.compact();
      expect(files()).toEqual(['mailkit.json']);
      expect(open().data).toEqual(store.data);
    });

    it('keeps the mutations made while a large snapshot is being written', async () => {
      const store = open();
      for (let i = 0; i < 30_000; i++) store.set('items', `k${i}`, { n: i, pad: 'x'.repeat(100) });
      await store.flush();

      let seed = 42;
      const random = (n: number) => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed % n;
      };
      let finished = false;
      const compaction = store.compact().then(() => (finished = true));
      let rounds = 0;
      while (!finished) {
        for (let j = 0; j < 20; j++) {
          const key = `k${random(35_000)}`;
          const op = random(3);
          const existing = store.data.items[key];
          if (op === 0) store.delete('items', key);
          else if (op === 1 && existing) store.set('items', key, Object.assign(existing, { n: existing.n + 1_000_000, pad: 'patched in place' }));
          else store.set('items', key, { n: rounds });
        }
        rounds++;
        await new Promise((resolve) => setImmediate(resolve));
      }
      await compaction;
      // The snapshot really was written a chunk at a time, with mutations in between.
      expect(rounds).toBeGreaterThan(5);
      await store.flush();
      expect(files()).toEqual(['mailkit.1.journal', 'mailkit.json']);
      expect(open().data).toEqual(store.data);
    });
  });

  describe('a data dir from before the journal', () => {
    it('reads the old single-document mailkit.json as generation 0 and keeps it through compaction', async () => {
      const old = { items: { a: { n: 1 }, b: { n: 2 } }, tags: { x: 'old' } };
      writeFileSync(snapshotPath(), JSON.stringify(old));
      const store = open();
      expect(store.data).toEqual(old);

      store.set('items', 'c', { n: 3 });
      store.delete('items', 'a');
      await store.flush();
      expect(open().data).toEqual({ items: { b: { n: 2 }, c: { n: 3 } }, tags: { x: 'old' } });

      await store.compact();
      expect(JSON.parse(readFileSync(snapshotPath(), 'utf8'))).toMatchObject({ generation: 1 });
      expect(open().data).toEqual({ items: { b: { n: 2 }, c: { n: 3 } }, tags: { x: 'old' } });
    });
  });

  describe('read-only', () => {
    /** A dir a writable open would tidy: a stale journal, a torn tail, a temp snapshot. */
    async function untidyDir() {
      const store = open();
      store.set('items', 'a', { n: 1 });
      await store.compact();
      store.set('items', 'b', { n: 2 });
      await store.flush();
      writeFileSync(join(dir, 'mailkit.0.journal'), '{"c":"items","k":"stale","v":{"n":0}}\n');
      appendFileSync(join(dir, 'mailkit.1.journal'), '{"c":"items","k":"torn"');
      writeFileSync(join(dir, 'mailkit.json.4242.tmp'), '{');
    }
    const listing = () => files().map((name) => ({ name, mtimeMs: statSync(join(dir, name)).mtimeMs, size: statSync(join(dir, name)).size }));

    it('reads everything and writes, compacts and deletes nothing', async () => {
      await untidyDir();
      const before = listing();
      const dirMtime = statSync(dir).mtimeMs;

      const store = open({ readOnly: true, compactFloor: 1 });
      expect(store.data.items).toEqual({ a: { n: 1 }, b: { n: 2 } });
      expect(() => store.set('items', 'c', { n: 3 })).toThrow(/read-only/);
      expect(() => store.delete('items', 'a')).toThrow(/read-only/);
      await store.flush();
      await store.compact();
      await new Promise((resolve) => setTimeout(resolve, 50));

      expect(listing()).toEqual(before);
      expect(statSync(dir).mtimeMs).toBe(dirMtime);
    });

    it('whereas a writable open tidies the same dir', async () => {
      await untidyDir();
      open();
      expect(files()).toEqual(['mailkit.1.journal', 'mailkit.json']);
    });
  });

  describe('when the disk refuses a write', () => {
    it('flush() rejects, nothing is left unhandled, and a later flush writes it all', async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (err: unknown) => unhandled.push(err);
      process.on('unhandledRejection', onUnhandled);
      try {
        const sub = join(dir, 'sub');
        const store = open({ file: join(sub, 'mailkit.json') });
        store.set('items', 'a', { n: 1 });
        writeFileSync(sub, 'a file where the data dir should be');
        await expect(store.flush()).rejects.toThrow();
        store.set('items', 'b', { n: 2 });
        await new Promise((resolve) => setTimeout(resolve, 50)); // the background write fails too
        expect(unhandled).toEqual([]);

        rmSync(sub);
        await store.flush();
        const reopened = open({ file: join(sub, 'mailkit.json') });
        expect(reopened.data.items).toEqual({ a: { n: 1 }, b: { n: 2 } });
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });
  });

  describe('in memory', () => {
    it('keeps the same API and touches no file', async () => {
      const store = createJournalStore<Doc>({ file: null, initial: () => ({ items: {}, tags: {} }) });
      store.set('items', 'a', { n: 1 });
      store.set('items', 'b', { n: 2 });
      store.delete('items', 'a');
      await store.flush();
      await store.compact();
      expect(store.data).toEqual({ items: { b: { n: 2 } }, tags: {} });
      expect(files()).toEqual([]);
    });
  });
});
