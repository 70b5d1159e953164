import { Writable } from 'node:stream';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger';
import { bearer, startTestStack, storedSecrets, subscribe } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * The whole flow at the most verbose level, with failures on every path, and a scan of every
 * log line for anything secret: API keys, the key secret, the webhook secret, upstream API
 * keys, email bodies.
 */
describe('logs', () => {
  let stack: TestStack;
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const BODY_MARKER = 'SECRET-BODY-7f3a9c';
  const keys: string[] = [];

  beforeAll(async () => {
    stack = await startTestStack({}, { log: createLogger('trace', sink) });
    const alice = await subscribe(stack, 'alice@example.com', 'Alice');
    keys.push(alice.key);
    const email = { to: 'delivered@resend.dev', subject: 'Quarterly numbers', html: `<p>${BODY_MARKER}</p>` };

    await request(stack.url).post('/send').set(bearer(alice.key)).set('Idempotency-Key', 'log-test-1').send(email).expect(200);
    // An upstream failure on the send path (logged with its error).
    stack.sandbox.resend.faults.inject({ status: 500, match: /^POST \/emails(\/batch)?$/ });
    await request(stack.url).post('/send').set(bearer(alice.key)).send(email);
    stack.sandbox.resend.faults.clear();
    stack.sandbox.dodo.faults.inject({ status: 503, match: /ledger-entries/ });
    await request(stack.url).post('/send').set(bearer(alice.key)).send(email);
    stack.sandbox.dodo.faults.clear();
    // A forged key, a forged webhook, a key rotation.
    await request(stack.url)
      .get('/credits')
      .set(bearer(`${alice.key}x`))
      .expect(401);
    await request(stack.url)
      .post('/webhooks/dodo')
      .set('webhook-id', 'msg_x')
      .set('webhook-timestamp', '1')
      .set('webhook-signature', 'v1,AAAA')
      .send('{}')
      .expect(401);
    const rotated = await request(stack.url).post('/account/key').set(bearer(alice.key)).expect(201);
    keys.push(rotated.body.api_key);
    // The low-balance alert (webhook → email with the balance).
    await stack.sandbox.dodo.adjustBalance(alice.customerId, stack.catalog.creditEntitlementId, -4500, 'log test');
    await stack.sandbox.dodo.webhooks.idle();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('were written (the scan below has something to scan)', () => {
    expect(lines.length).toBeGreaterThan(20);
    expect(lines.some((l) => l.includes('"statusCode":500') || l.includes('"statusCode":503'))).toBe(true);
    expect(lines.every((l) => JSON.parse(l) && true)).toBe(true);
  });

  it('carry a request id on every request line', () => {
    const requestLines = lines.map((l) => JSON.parse(l)).filter((l) => l.req);
    expect(requestLines.length).toBeGreaterThan(5);
    for (const l of requestLines) expect(l.req.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('never contain an API key, a secret, an upstream credential or an email body', async () => {
    const generated = await storedSecrets(stack);
    const secrets = [
      ...keys,
      ...keys.map((k) => k.split('.').at(-1)!), // the MAC part alone
      generated.keySecret!,
      generated.sandboxWebhookSecret!,
      generated.sandboxWebhookSecret!.replace(/^whsec_/, ''),
      generated.sandboxResendWebhookSecret!.replace(/^whsec_/, ''),
      'sandbox_dodo_key',
      're_sandbox_key',
      BODY_MARKER,
    ];
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8);
      const leak = lines.find((l) => l.includes(secret));
      expect(leak, `log line leaks ${secret.slice(0, 6)}…`).toBeUndefined();
    }
    // Nothing that even looks like a MailKit key.
    expect(lines.filter((l) => /mk_(test|live)_[A-Za-z0-9_-]+\./.test(l))).toEqual([]);
  });
});

describe('the access log at info', () => {
  it('leaves out reads that went well (polling), keeps sends, refusals and errors', async () => {
    const lines: Array<{ level: number; msg: string; req?: { method: string; url: string }; res?: { statusCode: number } }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    });
    const stack = await startTestStack({}, { log: createLogger('info', sink) });
    try {
      const { key } = await subscribe(stack, 'quiet@example.com', 'Quiet');
      lines.length = 0;
      for (let i = 0; i < 5; i++) await request(stack.url).get('/credits').set(bearer(key)).expect(200);
      await request(stack.url).get('/credits/usage').set(bearer(key)).expect(200);
      await request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' }).expect(200);
      await request(stack.url).get('/credits').set(bearer('mk_test_wrong')).expect(401);
      await request(stack.url).get('/no-such-route').expect(404);
      const access = lines.filter((l) => l.msg === 'request completed').map((l) => `${l.req!.method} ${l.req!.url} ${l.res!.statusCode}`);
      // (Resend's delivery events reach /webhooks/resend meanwhile: inbound traffic, kept.)
      expect(access.filter((l) => !l.startsWith('POST /webhooks/resend 200'))).toEqual([
        'POST /send 200',
        'GET /credits 401',
        'GET /no-such-route 404',
      ]);
    } finally {
      await stack.close();
    }
  });
});
