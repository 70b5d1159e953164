import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const secret = 'rotate-secret-'.repeat(3);
// Only what npx needs: vitest's own environment (e.g. Vite's BASE_URL=/) must not leak into the CLI.
const cliEnv = (extra: Record<string, string>) => ({ PATH: process.env.PATH, HOME: process.env.HOME, DODO_PAYMENTS_API_KEY: '', MAILKIT_KEY_SECRET: secret, ...extra });
const run = (args: string[], env: Record<string, string>) => promisify(execFile)('npx', ['tsx', 'src/cli/key.ts', ...args], { env: cliEnv(env) });

describe('npm run key -- --rotate', () => {
  let stack: TestStack;
  let key: string;
  let customerId: string;

  beforeAll(async () => {
    stack = await startTestStack({ MAILKIT_KEY_SECRET: secret });
    ({ key, customerId } = await subscribe(stack, 'rot@example.com', 'Rot'));
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('rotates through the running server and prints only the new key; the old key stops working', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-rotate-'));
    const { stdout, stderr } = await run(['--rotate', customerId, '--base-url', stack.url], { MAILKIT_DATA_DIR: dataDir });
    expect(stderr.replace(/npm warn.*\n/g, '')).toBe('');
    expect(stdout).toMatch(/^mk_test_\S+\n$/);
    const fresh = stdout.trim();
    expect(fresh).not.toBe(key);
    expect((await request(stack.url).get('/account').set(bearer(fresh))).body.customer_id).toBe(customerId);
    expect((await request(stack.url).get('/account').set(bearer(key))).status).toBe(401);
  });

  it('fails with exit code 1 and a hint when the server does not accept the locally minted key', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-rotate-'));
    // The server has rotated once (epoch 1); this empty data dir still says epoch 0.
    const attempt = run(['--rotate', customerId, '--base-url', stack.url], { MAILKIT_DATA_DIR: dataDir });
    await expect(attempt).rejects.toMatchObject({ code: 1, stdout: '', stderr: expect.stringContaining('did not accept a key') });
  });

  it('says when the server is not running', async () => {
    const attempt = run(['--rotate', customerId, '--base-url', 'http://127.0.0.1:9'], { MAILKIT_DATA_DIR: mkdtempSync(join(tmpdir(), 'mailkit-rotate-')) });
    await expect(attempt).rejects.toMatchObject({ code: 1, stdout: '', stderr: expect.stringContaining('not running') });
  });

  it('--help documents --rotate', async () => {
    const { stdout } = await run(['--help'], {});
    expect(stdout).toContain('--rotate <customer_id>');
  });
});
