import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DodoState } from '../src/sandbox/dodo/state';
import { openDatabase } from '../src/db/index';
import { balanceOf, bearer, startTestStack, subscribe } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/** Credits left for a customer, read from the sandbox's own records (its API is closed by then). */
const creditsLeft = (stack: TestStack, customerId: string) =>
  (stack.sandbox.dodo.state() as DodoState).grants
    .filter((g) => g.customer_id === customerId && !g.is_expired)
    .reduce((sum, g) => sum + g.remaining_units, 0);

describe('graceful shutdown', () => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('a send in flight finishes with its email and its debit; requests arriving meanwhile get 503 shutting_down', async () => {
    stack = await startTestStack();
    const alice = await subscribe(stack, 'alice@example.com', 'Alice');
    const sentBefore = stack.sandbox.resend.messages().length;
    const callsBefore = stack.sandbox.resend.faults.requestCount(/^POST \/emails(\/batch)?$/);
    // Resend takes 400 ms to answer this one, so the send is mid-flight when shutdown starts.
    stack.sandbox.resend.faults.inject({ latencyMs: 400, match: /^POST \/emails(\/batch)?$/, count: 1 });

    const inFlight = request(stack.url)
      .post('/send')
      .set(bearer(alice.key))
      .send({ to: 'delivered@resend.dev', subject: 'in flight', html: '<p>1</p>' });
    const pending = inFlight.then((r) => r); // starts the request
    // Shut down once the email is at Resend (the credit is already debited).
    await vi.waitUntil(() => stack!.sandbox.resend.faults.requestCount(/^POST \/emails(\/batch)?$/) > callsBefore, { timeout: 5_000, interval: 10 });

    const closing = stack.close();
    const refused = await request(stack.url)
      .post('/send')
      .set(bearer(alice.key))
      .send({ to: 'delivered@resend.dev', subject: 'late', html: '<p>2</p>' });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('shutting_down');
    expect(refused.headers['retry-after']).toBe('5');

    const done = await pending;
    expect(done.status).toBe(200);
    expect(done.body.id).toBeTruthy();
    await closing;

    expect(stack.sandbox.resend.messages().length - sentBefore).toBe(1);
    expect(stack.sandbox.resend.messages().some((m) => m.subject === 'late')).toBe(false);
    expect(creditsLeft(stack, alice.customerId)).toBe(4999);
    // Closed for good: the port no longer answers.
    await expect(fetch(`${stack.url}/healthz`)).rejects.toThrow();
  });

  it('a restart on the same data dir replays a finished send and keeps a rotated key revoked', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-restart-'));
    const onDisk = { MAILKIT_DATA_DIR: dataDir, MAILKIT_KEY_SECRET: 'restart-secret-'.repeat(3) };
    try {
      stack = await startTestStack(onDisk, { inMemory: false });
      const alice = await subscribe(stack, 'alice@example.com', 'Alice');
      const rotated = (await request(stack.url).post('/account/key').set(bearer(alice.key)).expect(201)).body.api_key as string;
      const email = { to: 'delivered@resend.dev', subject: 'once', html: '<p>1</p>' };
      const first = await request(stack.url).post('/send').set(bearer(rotated)).set('Idempotency-Key', 'restart-1').send(email).expect(200);
      await stack.close();

      stack = await startTestStack(onDisk, { inMemory: false });
      const again = await request(stack.url).post('/send').set(bearer(rotated)).set('Idempotency-Key', 'restart-1').send(email).expect(200);
      expect(again.body).toEqual(first.body);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(stack.sandbox.resend.messages().filter((m) => m.subject === 'once')).toHaveLength(1);
      expect(await balanceOf(stack, rotated)).toBe(4999);
      expect((await request(stack.url).get('/account').set(bearer(alice.key))).status).toBe(401);
    } finally {
      await stack?.close();
      stack = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('SIGTERM stops `npm start`, exits 0 and leaves its state flushed to the data dir', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-sigterm-'));
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'server.ts'], {
        // Vitest sets BASE_URL=/ in its own environment: not for the server.
        env: { ...process.env, BASE_URL: '', PORT: '0', MAILKIT_DATA_DIR: dataDir, LOG_LEVEL: 'info', DODO_PAYMENTS_API_KEY: '', RESEND_API_KEY: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      let exitCode: number | null | undefined;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve((exitCode = code))));
      await vi
        .waitUntil(() => out.includes('MailKit running on') || exitCode !== undefined, { timeout: 30_000, interval: 10 })
        .catch((err: Error) => {
          throw new Error(`${err.message}; the server printed:\n${out}`);
        });
      expect(exitCode, out).toBeUndefined();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toMatch(/"msg":"shutting down"/);
      // What the next start reads back: the database, committed.
      const database = await openDatabase({ file: join(dataDir, 'mailkit.sqlite') });
      expect(await database.db.selectFrom('secrets').select('value').where('name', '=', 'keySecret').executeTakeFirst()).toBeTruthy();
      await database.close();
      expect(JSON.parse(readFileSync(join(dataDir, 'sandbox-dodo.json'), 'utf8')).products).toBeTruthy();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
