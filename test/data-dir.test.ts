import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { startStack, type Stack } from '../src/stack';
import { ENGINES, freshDatabase, subscribe } from './support/stack';

/**
 * MailKit's local files hold customers' recipients, subjects and suppression lists, and in
 * sandbox mode the key secret: only the user running MailKit may read them, whatever the umask.
 */
const modeOf = (path: string) => statSync(path).mode & 0o777;
const octal = (mode: number) => `0${mode.toString(8)}`;

/** Every file and folder under `dir`, with its mode in octal. */
function modes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) out[entry] = octal(modeOf(join(dir, entry)));
  return out;
}

describe.each(ENGINES)('the data folder (%s)', (engine) => {
  let umask: number;
  const roots: string[] = [];
  let stack: Stack | undefined;

  beforeAll(() => {
    // The usual umask, which leaves files readable by everyone unless MailKit asks otherwise.
    umask = process.umask(0o022);
  });
  afterAll(() => {
    process.umask(umask);
  });
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
    for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
  });

  const start = async (dataDir: string) => {
    const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', MAILKIT_DATA_DIR: dataDir });
    stack = await startStack(config, {
      log: createLogger('silent'),
      webhookRetryDelaysMs: [20, 50, 100],
      // PostgreSQL holds MailKit's state; the folder still holds the sandbox's.
      ...(engine === 'postgres' ? { database: await freshDatabase('postgres') } : {}),
    });
    return stack;
  };

  it('is created 0700 and every file in it 0600 (the database with its -wal and -shm, the sandbox state)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mailkit-perms-'));
    roots.push(root);
    const dataDir = join(root, 'nested', '.data');
    const running = await start(dataDir);
    await subscribe(running as never, 'perms@example.com', 'Perms');
    expect(octal(modeOf(dataDir))).toBe('0700');
    if (engine === 'sqlite') {
      // While the server runs, SQLite's write-ahead log and shared memory are there too.
      for (const name of ['mailkit.sqlite', 'mailkit.sqlite-wal', 'mailkit.sqlite-shm'])
        expect([name, octal(modeOf(join(dataDir, name)))]).toEqual([name, '0600']);
    }
    await running.close();
    stack = undefined;
    const files = modes(dataDir);
    expect(Object.keys(files)).toEqual(
      expect.arrayContaining(['sandbox-dodo.json', 'sandbox-resend.json', ...(engine === 'sqlite' ? ['mailkit.sqlite'] : [])]),
    );
    expect(files).toEqual(Object.fromEntries(Object.keys(files).map((name) => [name, '0600'])));
    expect(octal(modeOf(join(root, 'nested')))).toBe('0700');
  });

  it.runIf(engine === 'sqlite')(
    "tightens the files of an existing folder: a database left 0644, and an old install's snapshot holding the key secret",
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'mailkit-perms-'));
      roots.push(root);
      const dataDir = join(root, '.data');
      mkdirSync(dataDir, { mode: 0o755 });
      // The store from before the database, imported by an older version, kept its secrets there, readable by everyone.
      writeFileSync(join(dataDir, 'mailkit.json.imported'), JSON.stringify({ generation: 0, data: { generated: { keySecret: 'k'.repeat(43) } } }), {
        mode: 0o644,
      });
      await (await start(dataDir)).close();
      expect(octal(modeOf(join(dataDir, 'mailkit.json.imported')))).toBe('0600');
      chmodSync(join(dataDir, 'mailkit.sqlite'), 0o644);
      await start(dataDir);
      expect(octal(modeOf(join(dataDir, 'mailkit.sqlite')))).toBe('0600');
    },
  );
});
