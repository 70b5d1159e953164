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
import { openDatabase } from '../src/db/index';
import { generatedSecret } from '../src/db/secrets';
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
    const keys = createApiKeys({ database: await openDatabase({ file: ':memory:' }), secret, env: 'test' });
    expect(await keys.verify(stdout.trim())).toBe('cus_abc123');
  });

  it("reads the server's secret and the customer's rotations from its database, while the server holds it open", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-key-'));
    const server = await openDatabase({ file: join(dataDir, 'mailkit.sqlite') });
    try {
      const secret = await generatedSecret(server, 'keySecret', () => 's'.repeat(40));
      await createApiKeys({ database: server, secret, env: 'test' }).rotate('cus_abc123');

      const { stdout } = await promisify(execFile)('npx', ['tsx', 'src/cli/key.ts', 'cus_abc123'], { env: { ...cleanEnv, MAILKIT_DATA_DIR: dataDir } });
      // Only a key at the rotated epoch verifies against the server's state.
      expect(await createApiKeys({ database: server, secret, env: 'test' }).verify(stdout.trim())).toBe('cus_abc123');
    } finally {
      await server.close();
    }
  });

  it('refuses a missing customer id with usage on stderr and exit code 2', async () => {
    const run = promisify(execFile)('npx', ['tsx', 'src/cli/key.ts'], { env: cleanEnv });
    await expect(run).rejects.toMatchObject({ code: 2, stdout: '' });
  });
});
