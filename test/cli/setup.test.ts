import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseDotenv } from 'dotenv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSetup } from '../../src/cli/setup';
import { startHarness, type Harness } from '../sandbox/dodo/harness';
import { startTestStack } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const example = new URL('../../.env.example', import.meta.url).pathname;
const tempDir = (withExample = true) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailkit-setup-'));
  if (withExample) copyFileSync(example, join(dir, '.env.example'));
  return dir;
};

async function setup(argv: string[], env: Record<string, string>, cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runSetup({ argv, env, cwd, out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('npm run setup', () => {
  describe('against the running sandbox (no DODO_PAYMENTS_API_KEY)', () => {
    let stack: TestStack;
    beforeAll(async () => {
      stack = await startTestStack();
    });
    afterAll(async () => {
      await stack?.close();
    });

    it('finds the catalog MailKit provisioned, prints the ids and writes nothing without --write', async () => {
      const cwd = tempDir();
      const r = await setup([], { BASE_URL: stack.url }, cwd);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toContain(`${stack.url}/sandbox/dodo`);
      const { creditEntitlementId, planProductId, topupProductId } = stack.catalog;
      for (const id of [creditEntitlementId, planProductId, topupProductId]) expect(r.out).toContain(id);
      expect(r.out).not.toContain('(created)');
      expect(r.out).toMatch(/Not written to \.env/);
      expect(existsSync(join(cwd, '.env'))).toBe(false);
    });

    it('with --write creates .env from .env.example, changing only the three id lines, and stays in sandbox mode', async () => {
      const cwd = tempDir();
      const r = await setup(['--write'], { BASE_URL: stack.url }, cwd);
      expect(r.code).toBe(0);
      const written = readFileSync(join(cwd, '.env'), 'utf8');
      const original = readFileSync(example, 'utf8');
      const expected = original
        .replace(/^CREDIT_ENTITLEMENT_ID=.*$/m, `CREDIT_ENTITLEMENT_ID=${stack.catalog.creditEntitlementId}`)
        .replace(/^PLAN_PRODUCT_ID=.*$/m, `PLAN_PRODUCT_ID=${stack.catalog.planProductId}`)
        .replace(/^TOPUP_PRODUCT_ID=.*$/m, `TOPUP_PRODUCT_ID=${stack.catalog.topupProductId}`);
      expect(written).toBe(expected);
      expect(parseDotenv(written).DODO_PAYMENTS_API_KEY).toBe('');
    });

    it('replaces existing lines in place and keeps every other byte (CRLF, comments, secrets)', async () => {
      const cwd = tempDir(false);
      const before = '# mine\r\nDODO_WEBHOOK_KEY=whsec_secret_value\r\nPLAN_PRODUCT_ID=pdt_old\r\nexport TOPUP_PRODUCT_ID = pdt_old2\r\nOTHER=1';
      writeFileSync(join(cwd, '.env'), before);
      const r = await setup(['--write'], { BASE_URL: stack.url }, cwd);
      expect(r.code).toBe(0);
      expect(r.out).not.toContain('whsec_secret_value');
      const after = readFileSync(join(cwd, '.env'), 'utf8');
      expect(after).toBe(
        `# mine\r\nDODO_WEBHOOK_KEY=whsec_secret_value\r\nPLAN_PRODUCT_ID=${stack.catalog.planProductId}\r\n` +
          `export TOPUP_PRODUCT_ID = ${stack.catalog.topupProductId}\r\nOTHER=1\nCREDIT_ENTITLEMENT_ID=${stack.catalog.creditEntitlementId}\n`,
      );
    });

    it('says clearly when the server is not running', async () => {
      const r = await setup([], { BASE_URL: 'http://127.0.0.1:9' }, tempDir());
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/MailKit is not running at http:\/\/127\.0\.0\.1:9.*npm start/);
    });
  });

  describe('against a Dodo API (DODO_PAYMENTS_API_KEY set; here an empty sandbox stands in for test mode)', () => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness();
    });
    afterAll(async () => {
      await h?.close();
    });
    const liveEnv = () => ({ DODO_PAYMENTS_API_KEY: 'dodo_test_secret_key', DODO_PAYMENTS_BASE_URL: h.apiUrl });

    it('--dry-run creates and writes nothing', async () => {
      const cwd = tempDir();
      const r = await setup(['--dry-run'], liveEnv(), cwd);
      expect(r.code).toBe(0);
      expect(r.out.match(/would be created/g)).toHaveLength(3);
      expect((await h.client.creditEntitlements.list()).items).toHaveLength(0);
      expect((await h.client.products.list()).items).toHaveLength(0);
      expect(existsSync(join(cwd, '.env'))).toBe(false);
    });

    it('creates the three once, writes them to .env, never prints the key; a second run finds them', async () => {
      const cwd = tempDir();
      const first = await setup([], liveEnv(), cwd);
      expect(first.code).toBe(0);
      expect(first.out.match(/\(created\)/g)).toHaveLength(3);
      expect(first.out).not.toContain('dodo_test_secret_key');
      const env = parseDotenv(readFileSync(join(cwd, '.env')));
      expect(env.CREDIT_ENTITLEMENT_ID).toMatch(/^cde_/);
      expect(env.PLAN_PRODUCT_ID).toMatch(/^pdt_/);
      expect(env.TOPUP_PRODUCT_ID).toMatch(/^pdt_/);

      const second = await setup([], liveEnv(), cwd);
      expect(second.code).toBe(0);
      expect(second.out.match(/\(found\)/g)).toHaveLength(3);
      expect((await h.client.creditEntitlements.list()).items).toHaveLength(1);
      expect((await h.client.products.list()).items).toHaveLength(2);
      expect(parseDotenv(readFileSync(join(cwd, '.env')))).toEqual(env);
    });
  });

  it('--help prints usage and exits 0 (spawned, as npm runs it)', async () => {
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'src/cli/setup.ts', '--help'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    expect(stdout).toMatch(/^Usage: npm run setup/);
    expect(stdout).toContain('--dry-run');
  });

  it('refuses an unknown argument with exit code 2', async () => {
    const r = await setup(['--nope'], {}, tempDir());
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown argument "--nope"');
  });
});
