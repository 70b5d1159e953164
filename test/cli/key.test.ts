import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index';
import { generatedSecret } from '../../src/db/secrets';
import { bearer, startTestStack, storedSecrets, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

// Only what npx needs: vitest's own environment (e.g. Vite's BASE_URL=/) must not leak into the CLI.
const cliEnv = (extra: Record<string, string>) => ({ PATH: process.env.PATH, HOME: process.env.HOME, DODO_PAYMENTS_API_KEY: '', ...extra });
const run = (args: string[], env: Record<string, string>) => promisify(execFile)('npx', ['tsx', 'src/cli/key.ts', ...args], { env: cliEnv(env) });
const quiet = (stderr: string) => stderr.replace(/npm warn.*\n/g, '');

/** A sandbox server on a data folder of its own, as `npm start` runs it: the CLI reads its database beside it. */
describe('npm run key', () => {
  let stack: TestStack;
  let dataDir: string;
  let key: string;
  let customerId: string;
  const env = (extra: Record<string, string> = {}) => ({ MAILKIT_DATA_DIR: dataDir, BASE_URL: stack.url, ...extra });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'mailkit-key-'));
    stack = await startTestStack({ MAILKIT_DATA_DIR: dataDir }, { inMemory: false });
    ({ key, customerId } = await subscribe(stack, 'rot@example.com', 'Rot'));
  });
  afterAll(async () => {
    await stack?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("prints only a working key on stdout, read from the server's database (its secret, the customer's rotations) while it runs", async () => {
    // The customer rotated once: only a key at the new epoch works.
    key = await stack.apiKeys.rotate(customerId);
    const { stdout, stderr } = await run([customerId], env());
    expect(quiet(stderr)).toBe('');
    expect(stdout).toMatch(/^mk_test_\S+\n$/);
    expect((await request(stack.url).get('/account').set(bearer(stdout.trim())).expect(200)).body.customer_id).toBe(customerId);
  });

  it('refuses a customer Dodo does not know: exit code 1, no key', async () => {
    const attempt = run(['cus_nosuchcustomer'], env());
    await expect(attempt).rejects.toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringContaining('Dodo does not know customer cus_nosuchcustomer'),
    });
  });

  it('refuses a data folder without a database (a mistyped MAILKIT_DATA_DIR), creating nothing there', async () => {
    const typo = join(dataDir, 'typo');
    await expect(run([customerId], env({ MAILKIT_DATA_DIR: typo }))).rejects.toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringContaining('no MailKit database'),
    });
    expect(existsSync(typo)).toBe(false);
    const empty = mkdtempSync(join(tmpdir(), 'mailkit-key-empty-'));
    await expect(run([customerId], env({ MAILKIT_DATA_DIR: empty }))).rejects.toMatchObject({ code: 1, stdout: '' });
    expect(readdirSync(empty)).toEqual([]);
    rmSync(empty, { recursive: true });
  });

  it('refuses a missing customer id with usage on stderr and exit code 2', async () => {
    await expect(run([], env())).rejects.toMatchObject({ code: 2, stdout: '' });
  });

  it('says when the server (in sandbox mode, Dodo) is not running', async () => {
    const attempt = run([customerId, '--base-url', 'http://127.0.0.1:9'], env());
    await expect(attempt).rejects.toMatchObject({ code: 1, stdout: '', stderr: expect.stringContaining('not running') });
  });

  it('--help documents --rotate', async () => {
    const { stdout } = await run(['--help'], {});
    expect(stdout).toContain('--rotate <customer_id>');
  });

  describe('--rotate', () => {
    it('rotates through the running server and prints only the new key; the old key stops working', async () => {
      const { stdout, stderr } = await run(['--rotate', customerId, '--base-url', stack.url], env());
      expect(quiet(stderr)).toBe('');
      expect(stdout).toMatch(/^mk_test_\S+\n$/);
      const fresh = stdout.trim();
      expect(fresh).not.toBe(key);
      expect((await request(stack.url).get('/account').set(bearer(fresh))).body.customer_id).toBe(customerId);
      expect((await request(stack.url).get('/account').set(bearer(key))).status).toBe(401);
    });

    it('fails with exit code 1 and a hint when the server does not accept the locally minted key', async () => {
      // Another database with the server's secret: it still says epoch 0, the server has rotated.
      const other = mkdtempSync(join(tmpdir(), 'mailkit-key-other-'));
      const database = await openDatabase({ file: join(other, 'mailkit.sqlite') });
      await generatedSecret(database, 'keySecret', () => '');
      await database.db
        .updateTable('secrets')
        .set({ value: (await storedSecrets(stack)).keySecret! })
        .where('name', '=', 'keySecret')
        .execute();
      await database.close();
      const attempt = run(['--rotate', customerId, '--base-url', stack.url], env({ MAILKIT_DATA_DIR: other }));
      await expect(attempt).rejects.toMatchObject({ code: 1, stdout: '', stderr: expect.stringContaining('did not accept a key') });
      rmSync(other, { recursive: true });
    });
  });
});

describe('a key minted for a customer that does not exist', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('GET /account answers 404 unknown_customer, not 500', async () => {
    const ghost = await stack.apiKeys.mint('cus_ghost');
    const res = await request(stack.url).get('/account').set(bearer(ghost));
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('unknown_customer');
  });
});
