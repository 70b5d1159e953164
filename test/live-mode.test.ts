import { readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { startBanner } from '../src/start-banner';
import { startStack } from '../src/stack';
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

describe('live against unreachable vendors', () => {
  it('the start banner says, for each vendor, where it points and that it did not answer; BASE_URL on localhost is warned about', async () => {
    const stack = await startStack(loadConfig(LIVE_ENV), { inMemory: true, log: createLogger('silent'), dodoMaxRetries: 0 });
    try {
      const banner = await startBanner(stack);
      expect(banner).toMatch(
        /^ {2}Dodo Payments {2}http:\/\/127\.0\.0\.1:9\/unreachable \(DODO_PAYMENTS_BASE_URL\): did not answer: ECONNREFUSED 127\.0\.0\.1:9$/m,
      );
      expect(banner).toMatch(
        /^ {2}Resend {9}http:\/\/127\.0\.0\.1:9\/unreachable \(RESEND_BASE_URL\): did not answer: ECONNREFUSED 127\.0\.0\.1:9$/m,
      );
      expect(banner).toMatch(/^ {2}Database .*: answered$/m);
      expect(banner).toMatch(/^Warning: BASE_URL is http:\/\/localhost:\d+, which Dodo and Resend cannot reach/m);
      expect(banner).not.toContain('test_mode');
      expect(banner).not.toContain(LIVE_ENV.DODO_PAYMENTS_API_KEY);
    } finally {
      await stack.close();
    }
  });

  it('a public BASE_URL is not warned about', async () => {
    const stack = await startStack(loadConfig({ ...LIVE_ENV, BASE_URL: 'https://mailkit.example.com' }), {
      inMemory: true,
      log: createLogger('silent'),
      dodoMaxRetries: 0,
    });
    try {
      const banner = await startBanner(stack);
      expect(banner).toContain('Dodo → https://mailkit.example.com/webhooks/dodo');
      expect(banner).not.toContain('Warning');
    } finally {
      await stack.close();
    }
  });

  it("a request Dodo failed is logged with the host called and the error's code, without a stack", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
    const stack = await startStack(loadConfig(LIVE_ENV), { inMemory: true, log: createLogger('info', sink), dodoMaxRetries: 0 });
    try {
      expect((await request(stack.url).post('/checkout/subscribe').send({ email: 'a@example.com', name: 'A' })).status).toBe(503);
      const failure = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('Dodo '));
      expect(failure?.msg).toBe('Dodo did not answer: ECONNREFUSED 127.0.0.1:9 (calling 127.0.0.1:9)');
      expect(failure?.err).toEqual({
        type: 'DodoUnavailable',
        vendor: 'Dodo',
        host: '127.0.0.1:9',
        cause: 'did not answer: ECONNREFUSED 127.0.0.1:9',
      });
    } finally {
      await stack.close();
    }
  });

  it('a send Resend did not answer is logged once with the host called and the cause', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
    const stack = await startStack(loadConfig(LIVE_ENV), { inMemory: true, log: createLogger('info', sink), mailer: { maxRetries: 0 } });
    try {
      for (let i = 0; i < 3; i++) await stack.mailer.deliver({ to: ['a@example.com'], subject: 's', html: '<p>x</p>' }, `k-${i}`);
      await vi.waitUntil(() => lines.some((l) => l.vendor === 'Resend'), { timeout: 5_000 });
      const said = lines.filter((l) => l.vendor === 'Resend');
      expect(said.map((l) => l.msg)).toEqual(['Resend did not answer: ECONNREFUSED 127.0.0.1:9 (calling 127.0.0.1:9)']);
    } finally {
      await stack.close();
    }
  });
});

describe('live with the tutorial’s variables alone', () => {
  it('listens, warns once that Resend’s events are off, and /webhooks/resend answers 503', async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const sink = { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) };
    // The tutorial's: Dodo's key and webhook key, the entitlement and product ids, Resend's key.
    const { RESEND_WEBHOOK_SECRET: _r, MAILKIT_KEY_SECRET: _k, ...tutorial } = LIVE_ENV;
    const stack = await startStack(loadConfig(tutorial), { inMemory: true, log: createLogger('info', sink) });
    try {
      const warnings = lines.filter((l) => l.level >= 40);
      expect(warnings.map((w) => w.msg)).toEqual([expect.stringMatching(/^RESEND_WEBHOOK_SECRET is not set: .*delivery events.*suppression.*503/)]);
      const r = await request(stack.url).post('/webhooks/resend').set('Content-Type', 'application/json').send('{}');
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('webhook_not_configured');
      expect((await request(stack.url).get('/healthz')).status).toBe(200);
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

// `npm run key` is tested against a running server in test/cli/key.test.ts.
