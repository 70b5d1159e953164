import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createJsonStore } from '../../src/lib/json-store';

describe('createJsonStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailkit-store-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const open = (file = join(dir, 'doc.json')) => createJsonStore<{ n: number; items: string[] }>({ file, initial: () => ({ n: 0, items: [] }) });
  const onDisk = (file = join(dir, 'doc.json')) => JSON.parse(readFileSync(file, 'utf8'));

  it('flush() resolves once the latest document is on disk, and a reopened store reads it back', async () => {
    const store = open();
    store.data.n = 1;
    store.save();
    await store.flush();
    expect(onDisk()).toEqual({ n: 1, items: [] });
    expect(open().data.n).toBe(1);
  });

  it('a change made while a write is in progress is written by the next flush, never lost or overtaken', async () => {
    const store = open();
    for (let i = 1; i <= 50; i++) {
      store.data.n = i;
      store.data.items.push(`item ${i}`);
      store.save();
      if (i % 7 === 0) void store.flush();
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    await store.flush();
    expect(onDisk().n).toBe(50);
    expect(onDisk().items).toHaveLength(50);
    // No temp file left behind.
    expect(readdirSync(dir)).toEqual(['doc.json']);
  });

  it('a failed write rejects flush() and is retried by the next one', async () => {
    const file = join(dir, 'sub', 'doc.json');
    const store = open(file);
    store.data.n = 7;
    store.save();
    writeFileSync(join(dir, 'sub'), 'a file where the directory should be');
    await expect(store.flush()).rejects.toThrow();
    rmSync(join(dir, 'sub'));
    await store.flush();
    expect(onDisk(file).n).toBe(7);
  });

  it('refuses a corrupt file with a message naming it', () => {
    writeFileSync(join(dir, 'doc.json'), '{"n": 1,');
    expect(() => open()).toThrow(/doc\.json is not valid JSON/);
  });
});
