import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseDotenv } from 'dotenv';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createApiKeys } from '../src/auth/api-keys';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { startStack } from '../src/stack';
import { createAppStore, generatedSecret } from '../src/state';
import { LIVE_ENV } from './support/stack';


describe('live mode', () => {
  it('has no /sandbox route at all', async () => {
    const stack = await startStack(loadConfig(LIVE_ENV), { inMemory: true, log: createLogger('silent') });
    try {
      expect(stack.sandbox).toBeUndefined();
      for (const path of ['/sandbox', '/sandbox/outbox', '/sandbox/dodo/products', '/sandbox/checkout/cks_x']) {
        const r = await request(stack.url).get(path);
        expect(r.status).toBe(404);
        expect(r.body.error.code).toBe('not_found');
      }
      expect((await request(stack.url).get('/config')).body).toMatchObject({ mode: 'live', outbox_url: null });
    } finally {
      await stack.close();
    }
  });

  it('an unreachable Dodo is a clear 503, never a crash or a leaked upstream message', async () => {
    const stack = await startStack(loadConfig(LIVE_ENV), { inMemory: true, log: createLogger('silent'), dodoMaxRetries: 0 });
    try {
      const r = await request(stack.url).post('/checkout/subscribe').send({ email: 'a@example.com', name: 'A' });
      expect(r.status).toBe(503);
      expect(r.body).toEqual({ error: { code: 'billing_unavailable', message: expect.any(String) } });
      expect(r.headers['retry-after']).toBeDefined();
      expect(JSON.stringify(r.body)).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|stack/i);
      expect((await request(stack.url).get('/healthz')).status).toBe(200);
      const ready = await request(stack.url).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: 'unavailable', checks: { dodo: { ok: false }, resend: { ok: false } } });
    } finally {
      await stack.close();
    }
  });
});

describe('.env.example', () => {
  it('runs as-is: it parses to a sandbox configuration', () => {
    const env = parseDotenv(readFileSync(new URL('../.env.example', import.meta.url)));
    const config = loadConfig(env);
    expect(config.mode).toBe('sandbox');
    expect(config.port).toBe(3000);
  });
});

// Only what npx needs: vitest's own environment (e.g. Vite's BASE_URL=/) must not leak into the CLI.
const cleanEnv = { PATH: process.env.PATH, HOME: process.env.HOME, DODO_PAYMENTS_API_KEY: '' };

describe('npm run key', () => {
  it('prints only a working key for the customer on stdout', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-key-'));
    const secret = 'k'.repeat(40);
    const { stdout, stderr } = await promisify(execFile)('npx', ['tsx', 'src/cli/key.ts', 'cus_abc123'], {
      env: { ...cleanEnv, MAILKIT_DATA_DIR: dataDir, MAILKIT_KEY_SECRET: secret },
    });
    expect(stderr.replace(/npm warn.*\n/g, '')).toBe('');
    expect(stdout).toMatch(/^mk_test_\S+\n$/);
    const keys = createApiKeys({ store: createAppStore(null), secret, env: 'test' });
    expect(keys.verify(stdout.trim())).toBe('cus_abc123');
  });

  it("reads the server's secret and the customer's rotations from its data dir, and changes nothing there", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-key-'));
    const server = createAppStore(dataDir);
    const secret = generatedSecret(server, 'keySecret', () => 's'.repeat(40));
    createApiKeys({ store: server, secret, env: 'test' }).rotate('cus_abc123');
    await server.close();
    // Left by a server that crashed mid-compaction: a writable open would remove it.
    writeFileSync(join(dataDir, 'mailkit.json.4242.tmp'), '{');
    const listing = () => readdirSync(dataDir).map((name) => [name, statSync(join(dataDir, name)).mtimeMs]);
    const before = listing();

    const { stdout } = await promisify(execFile)('npx', ['tsx', 'src/cli/key.ts', 'cus_abc123'], { env: { ...cleanEnv, MAILKIT_DATA_DIR: dataDir } });
    // Only a key at the rotated epoch verifies against the server's state.
    expect(createApiKeys({ store: server, secret, env: 'test' }).verify(stdout.trim())).toBe('cus_abc123');
    expect(listing()).toEqual(before);
  });

  it('refuses a missing customer id with usage on stderr and exit code 2', async () => {
    const run = promisify(execFile)('npx', ['tsx', 'src/cli/key.ts'], { env: cleanEnv });
    await expect(run).rejects.toMatchObject({ code: 2, stdout: '' });
  });
});
