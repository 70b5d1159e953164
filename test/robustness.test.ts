import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bearer, startTestStack, subscribe } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * Clients that go away mid-request and upstreams that fail mid-flight must not crash the
 * process, leave an unhandled rejection behind, or lose money: after each, emails sent equal
 * credits debited and the server answers.
 */
describe('requests that end badly', () => {
  let stack: TestStack;
  let alice: { key: string; customerId: string };
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  let sentBefore = 0;

  beforeAll(async () => {
    stack = await startTestStack();
    alice = await subscribe(stack, 'alice@example.com', 'Alice');
    sentBefore = stack.sandbox.resend.messages().filter((m) => m.to.includes('delivered@resend.dev')).length;
    process.on('unhandledRejection', onUnhandled);
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await stack?.close();
  });

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    httpRequest(`${stack.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${alice.key}`, ...headers },
    });

  it('a client that disconnects while its send is at Resend: the send completes exactly once', async () => {
    stack.sandbox.resend.faults.inject({ latencyMs: 300, match: /^POST \/emails(\/batch)?$/, count: 1 });
    const calls = stack.sandbox.resend.faults.requestCount(/^POST \/emails(\/batch)?$/);
    const req = post('/send', '', { 'Idempotency-Key': 'abandoned-1' });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ to: 'delivered@resend.dev', subject: 'abandoned', html: '<p>x</p>' }));
    await vi.waitUntil(() => stack.sandbox.resend.faults.requestCount(/^POST \/emails(\/batch)?$/) > calls, { timeout: 5_000, interval: 5 });
    req.destroy();
    await stack.sender.drain();
    // The client retries with its key: the stored outcome, no second email.
    const retry = await request(stack.url)
      .post('/send')
      .set(bearer(alice.key))
      .set('Idempotency-Key', 'abandoned-1')
      .send({ to: 'delivered@resend.dev', subject: 'abandoned', html: '<p>x</p>' });
    expect(retry.status).toBe(200);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(stack.sandbox.resend.messages().filter((m) => m.subject === 'abandoned')).toHaveLength(1);
  });

  it('a client that disconnects halfway through its body: nothing sent, nothing debited', async () => {
    const req = post('/send', '', { 'Content-Length': '500' });
    req.on('error', () => undefined);
    req.write('{"to":"delivered@resend.dev","subject":"half');
    await new Promise((r) => setTimeout(r, 50));
    req.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(stack.sandbox.resend.messages().some((m) => m.subject.startsWith('half'))).toBe(false);
  });

  it('garbage on the socket, a bare request line and a huge header are answered or dropped, never fatal', async () => {
    for (const raw of [
      '\x00\x01\x02 not http\r\n\r\n',
      'GET /credits\r\n\r\n',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    ]) {
      await new Promise<void>((resolve) => {
        const { port } = new URL(stack.url);
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(raw));
        socket.on('data', () => undefined);
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
      });
    }
    await request(stack.url).get('/healthz').expect(200);
  });

  it('upstreams that drop the connection after acting: answered 503, money still exact', async () => {
    stack.sandbox.dodo.faults.inject({ dropAfterProcessing: true, match: /ledger-entries/, count: 1 });
    const r1 = await request(stack.url)
      .post('/send')
      .set(bearer(alice.key))
      .set('Idempotency-Key', 'dodo-drop')
      .send({ to: 'delivered@resend.dev', subject: 'dodo drop', html: '<p>x</p>' });
    expect([200, 503]).toContain(r1.status);
    stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, match: /^POST \/emails(\/batch)?$/, count: 1 });
    const r2 = await request(stack.url)
      .post('/send')
      .set(bearer(alice.key))
      .set('Idempotency-Key', 'resend-drop')
      .send({ to: 'delivered@resend.dev', subject: 'resend drop', html: '<p>x</p>' });
    expect([200, 503]).toContain(r2.status);
    // Both clients retry with their keys, as the 503 tells them to; each completes once.
    for (const [key, subject] of [
      ['dodo-drop', 'dodo drop'],
      ['resend-drop', 'resend drop'],
    ] as const) {
      const again = await request(stack.url)
        .post('/send')
        .set(bearer(alice.key))
        .set('Idempotency-Key', key)
        .send({ to: 'delivered@resend.dev', subject, html: '<p>x</p>' });
      expect(again.status).toBe(200);
    }
  });

  it('after all of it: emails sent equal credits debited, the server answers, no unhandled rejection', async () => {
    await stack.sender.drain();
    await stack.sandbox.dodo.webhooks.idle();
    const sent = stack.sandbox.resend.messages().filter((m) => m.to.includes('delivered@resend.dev')).length - sentBefore;
    const balance = Number((await request(stack.url).get('/credits').set(bearer(alice.key)).expect(200)).body.balance);
    expect(sent).toBe(3); // abandoned, dodo drop, resend drop
    expect(5000 - balance).toBe(sent);
    expect(unhandled).toEqual([]);
  });
});
