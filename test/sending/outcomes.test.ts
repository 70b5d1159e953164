import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { Stack } from '../../src/stack';
import { findSend } from '../../src/db/sends';
import { sendIdFor } from '../../src/sending/records';
import { forEachEngine } from '../support/database';
import { balanceOf, bearer, customerWith, startTestStack, waitFor, senderOn } from '../support/stack';

/**
 * What Resend's answers prove (src/sending/README.md): only its ids settle a send as sent, and
 * only a validation error under a key never in doubt settles it as rejected. A 401/403 is
 * MailKit's configuration, never the email's: nothing is refunded or failed, sending pauses,
 * and the same key completes the send once Resend accepts MailKit's key again. A 5xx keeps the
 * key. Each scenario runs through the real SDKs against the sandbox's fault injection.
 */
type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const SENDS = /^POST \/emails(\/batch)?$/;
/** A pause probe every 100 ms, so that a test need not wait Resend's 2 s. */
const QUICK = { reconcile: { intervalMs: 0, graceMs: 0 }, mailer: { timeoutMs: 500, maxBackoffMs: 20, pauseProbeMs: 100 } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const post = (stack: Stack, path: string, key: string, idempotencyKey: string, body: object, async = false) => {
  const r = request(stack.url).post(path).set(bearer(key)).set('Idempotency-Key', idempotencyKey);
  return (async ? r.set('Prefer', 'respond-async') : r).send(body);
};
const bySubject = (stack: TestStack, subject: string) => stack.sandbox.resend.messages().filter((m) => m.subject === subject);
const history = async (stack: Stack, key: string) =>
  (await request(stack.url).get('/emails').set(bearer(key)).expect(200)).body.data as Array<{ id: string; status: string; subject: string }>;
const emailOf = async (stack: Stack, key: string, id: string) => (await request(stack.url).get(`/emails/${id}`).set(bearer(key)).expect(200)).body;

/** Retries a request after each 503 (waiting its Retry-After, shortened) until another answer. */
async function untilAnswered(send: () => Promise<request.Response>, seen: number[] = []): Promise<request.Response> {
  for (let i = 0; i < 40; i++) {
    const r = await send();
    seen.push(r.status);
    if (r.status !== 503) return r;
    expect(r.headers['retry-after']).toMatch(/^\d+$/);
    await sleep(120);
  }
  throw new Error(`still 503 after 40 tries: ${seen.join(', ')}`);
}

forEachEngine('what Resend’s answers prove', ({ engine }) => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  describe.each([401, 403])('an answer lost, then %i (MailKit’s key refused), then recovery', (status) => {
    it('POST /send: one email, its credit kept, the same id at the end; never failed', async () => {
      stack = await startTestStack({}, { engine, ...QUICK });
      const c = await customerWith(stack, 10);
      const subject = `auth-${status}-send`;
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: SENDS });
      stack.sandbox.resend.faults.inject({ status, count: 2, match: SENDS });
      const body = { to: 'delivered@resend.dev', subject, html: '<p>x</p>' };

      const first = await post(stack, '/send', c.key, 'auth-1', body);
      expect(first.status).toBe(503);
      expect(first.body.error.code).toBe('delivery_unconfirmed');
      const paused = await post(stack, '/send', c.key, 'auth-1', body);
      expect(paused.status).toBe(503);
      expect(paused.body.error.code).toBe('email_sending_paused');
      expect(Number(paused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      // Readiness says why; the credit is still taken.
      const ready = await request(stack.url).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.resend.reason).toMatch(new RegExp(`refused MailKit's API key \\(${status} .*paused`));
      expect(await balanceOf(stack, c.key)).toBe(9);

      const seen: number[] = [];
      const done = await untilAnswered(() => post(stack!, '/send', c.key, 'auth-1', body), seen);
      expect(done.status).toBe(200);
      const sent = bySubject(stack, subject);
      expect(sent).toHaveLength(1);
      expect(done.body).toEqual({ id: sent[0]!.id });
      expect(await balanceOf(stack, c.key)).toBe(9);
      expect((await history(stack, c.key)).map((e) => e.status)).not.toContain('failed');
      expect((await request(stack.url).get('/readyz')).status).toBe(200);
    });

    it('POST /send/batch: each email once, the credits kept, the same ids at the end', async () => {
      stack = await startTestStack({}, { engine, ...QUICK });
      const c = await customerWith(stack, 10);
      const subject = `auth-${status}-batch`;
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: SENDS });
      stack.sandbox.resend.faults.inject({ status, count: 2, match: SENDS });
      const body = { emails: [1, 2].map((n) => ({ to: `delivered+${n}@resend.dev`, subject, html: '<p>x</p>' })) };

      expect((await post(stack, '/send/batch', c.key, 'auth-b', body)).status).toBe(503);
      const done = await untilAnswered(() => post(stack!, '/send/batch', c.key, 'auth-b', body));
      expect(done.status).toBe(200);
      const sent = bySubject(stack, subject);
      expect(sent).toHaveLength(2);
      expect(done.body.data.map((d: { id: string }) => d.id).sort()).toEqual(sent.map((m) => m.id).sort());
      expect(await balanceOf(stack, c.key)).toBe(8);
      expect((await history(stack, c.key)).map((e) => e.status)).not.toContain('failed');
    });

    it('answered once queued: 202, stays queued while paused, then sent once with the same id; never failed', async () => {
      stack = await startTestStack({}, { engine, ...QUICK });
      const c = await customerWith(stack, 10);
      const subject = `auth-${status}-queued`;
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: SENDS });
      stack.sandbox.resend.faults.inject({ status, count: 2, match: SENDS });
      const body = { to: 'delivered@resend.dev', subject, html: '<p>x</p>' };

      const before = stack.sandbox.resend.faults.requestCount(SENDS);
      const accepted = await post(stack, '/send', c.key, 'auth-q', body, true);
      expect(accepted.status).toBe(202);
      const id = accepted.body.id as string;
      await waitFor(async () => stack!.sandbox.resend.faults.requestCount(SENDS) >= before + 3, 20_000);
      expect((await emailOf(stack, c.key, id)).status).not.toBe('failed');
      await waitFor(async () => (await emailOf(stack!, c.key, id)).status === 'delivered', 30_000);
      expect(bySubject(stack, subject)).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
      const events = (await emailOf(stack, c.key, id)).events.map((e: { type: string }) => e.type);
      expect(events).not.toContain('email.failed');
      const again = await post(stack, '/send', c.key, 'auth-q', body, true);
      expect(again.status).toBe(202);
      expect(again.body.id).toBe(id);
    });
  });

  it('a 403 on a send never in doubt: nothing refunded, the email waits queued and goes out once the key works', async () => {
    stack = await startTestStack({}, { engine, ...QUICK });
    const c = await customerWith(stack, 10);
    stack.sandbox.resend.faults.inject({ status: 403, count: 3, match: SENDS });
    const body = { to: 'delivered@resend.dev', subject: 'auth-fresh', html: '<p>x</p>' };
    const before = stack.sandbox.resend.faults.requestCount(SENDS);
    const accepted = await post(stack, '/send', c.key, 'auth-fresh', body, true);
    expect(accepted.status).toBe(202);
    await waitFor(async () => stack!.sandbox.resend.faults.requestCount(SENDS) > before);
    expect((await emailOf(stack, c.key, accepted.body.id)).status).toBe('queued');
    expect(await balanceOf(stack, c.key)).toBe(9);
    await waitFor(async () => (await emailOf(stack!, c.key, accepted.body.id)).status === 'delivered', 30_000);
    expect(bySubject(stack, 'auth-fresh')).toHaveLength(1);
    expect(await balanceOf(stack, c.key)).toBe(9);
  });

  describe.each([
    ['JSON', false],
    ['HTML', true],
  ])('a 5xx (%s) after Resend accepted the email, for longer than the mailer’s own retries', (_kind, html) => {
    it('POST /send: the same key until Resend’s ids: one email, one credit', async () => {
      stack = await startTestStack({}, { engine, ...QUICK });
      const c = await customerWith(stack, 10);
      const subject = `5xx-${_kind}`;
      // The mailer tries 4 times per request (3 retries): 6 answers of 504 outlast the first request.
      stack.sandbox.resend.faults.inject({ statusAfterProcessing: 504, html, count: 6, match: SENDS });
      const body = { to: 'delivered@resend.dev', subject, html: '<p>x</p>' };
      const first = await post(stack, '/send', c.key, `5xx-${_kind}`, body);
      expect(first.status).toBe(503);
      expect(first.body.error.code).toBe('delivery_unconfirmed');
      expect(await balanceOf(stack, c.key)).toBe(9);
      const done = await untilAnswered(() => post(stack!, '/send', c.key, `5xx-${_kind}`, body));
      expect(done.status).toBe(200);
      const sent = bySubject(stack, subject);
      expect(sent).toHaveLength(1);
      expect(done.body).toEqual({ id: sent[0]!.id });
      expect(await balanceOf(stack, c.key)).toBe(9);
    });

    it('answered once queued: delivered once, for one credit', async () => {
      stack = await startTestStack({}, { engine, ...QUICK });
      const c = await customerWith(stack, 10);
      const subject = `5xx-q-${_kind}`;
      stack.sandbox.resend.faults.inject({ statusAfterProcessing: 500, html, count: 6, match: SENDS });
      const accepted = await post(stack, '/send', c.key, subject, { to: 'delivered@resend.dev', subject, html: '<p>x</p>' }, true);
      expect(accepted.status).toBe(202);
      await waitFor(async () => (await emailOf(stack!, c.key, accepted.body.id)).status === 'delivered', 30_000);
      expect(bySubject(stack, subject)).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });
  });

  describe('a send in doubt for more than 23 h (Resend forgets keys after 24 h)', () => {
    it('is not sent again by a client’s retry: 502, its credit kept, no call to Resend', async () => {
      stack = await startTestStack({}, { engine, ...QUICK });
      const c = await customerWith(stack, 10);
      const clock = { now: Date.now() };
      const sender = senderOn(stack, { now: () => new Date(clock.now), reconcile: { intervalMs: 0 } });
      const email = { to: ['delivered@resend.dev'], subject: 'day-old', html: '<p>x</p>' };
      stack.sandbox.resend.faults.inject({ status: 500, count: 4, match: SENDS });
      await expect(sender.send(c.customerId, email, 'day-old')).rejects.toMatchObject({ status: 503, code: 'delivery_unconfirmed' });
      const calls = stack.sandbox.resend.faults.requestCount(SENDS);
      clock.now += 23.5 * 60 * 60 * 1000;
      const late = await sender.send(c.customerId, email, 'day-old');
      expect(late.status).toBe(502);
      expect(stack.sandbox.resend.faults.requestCount(SENDS)).toBe(calls);
      expect(bySubject(stack, 'day-old')).toHaveLength(0);
      expect(await balanceOf(stack, c.key)).toBe(9);
      await sender.drain();
    });

    it('is not sent again by the queued loop', async () => {
      stack = await startTestStack({}, { engine, ...QUICK });
      const c = await customerWith(stack, 10);
      const clock = { now: Date.now() };
      const sender = senderOn(stack, { now: () => new Date(clock.now), reconcile: { intervalMs: 0 } });
      const email = { to: ['delivered@resend.dev'], subject: 'day-old-queued', html: '<p>x</p>' };
      stack.sandbox.resend.faults.inject({ status: 500, count: 4, match: SENDS });
      const before = stack.sandbox.resend.faults.requestCount(SENDS);
      const accepted = await sender.send(c.customerId, email, 'day-old-q', { async: true });
      expect(accepted.status).toBe(202);
      // Its first try (four calls, all 500) leaves it in doubt.
      await waitFor(async () => (await findSend(stack!.database, sendIdFor(c.customerId, 'day-old-q')))?.inDoubt === 1);
      expect(stack.sandbox.resend.faults.requestCount(SENDS)).toBe(before + 4);
      // The first try is in doubt; the loop's next one comes a second later, a day on.
      clock.now += 23.5 * 60 * 60 * 1000;
      const calls = stack.sandbox.resend.faults.requestCount(SENDS);
      await waitFor(async () => (await findSend(stack!.database, sendIdFor(c.customerId, 'day-old-q')))?.resultStatus === 502, 15_000);
      expect(stack.sandbox.resend.faults.requestCount(SENDS)).toBe(calls);
      expect(bySubject(stack, 'day-old-queued')).toHaveLength(0);
      expect(await balanceOf(stack, c.key)).toBe(9);
      await sender.drain();
    });
  });
});
