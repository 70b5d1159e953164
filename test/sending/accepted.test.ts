import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { Stack } from '../../src/stack';
import { forEachEngine } from '../support/database';
import { balanceOf, bearer, customerWith, startTestStack, waitFor } from '../support/stack';

/**
 * Sends answered once queued (`Prefer: respond-async`): 202 with MailKit's own ids
 * once the credits are taken, then delivered in the background, through Resend's outages,
 * exactly once; the email's fate is read from GET /emails/:id. Money stays exact: an email
 * Resend refuses for good gets its credit back, and nothing is taken for a send refused at
 * the door.
 */
type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const email = { to: 'delivered@resend.dev', subject: 'Queued', html: '<p>x</p>' };
const QUICK = { reconcile: { intervalMs: 0, graceMs: 0 }, mailer: { timeoutMs: 300, maxBackoffMs: 50 } };

const sendAsync = (stack: Stack, key: string, idempotencyKey?: string, body: object = email) => {
  const r = request(stack.url).post('/send').set(bearer(key)).set('Prefer', 'respond-async');
  return (idempotencyKey ? r.set('Idempotency-Key', idempotencyKey) : r).send(body);
};
const sentTo = (stack: TestStack, subject: string) => stack.sandbox.resend.messages().filter((m) => m.subject === subject).length;
const emailOf = async (stack: Stack, key: string, id: string) => (await request(stack.url).get(`/emails/${id}`).set(bearer(key)).expect(200)).body;

forEachEngine('sends answered once queued', ({ engine }) => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('202 with MailKit’s id, its fate at GET /emails/:id, one email and one credit; a retry replays the same answer', async () => {
    stack = await startTestStack({}, { engine });
    const c = await customerWith(stack, 10);
    const r = await sendAsync(stack, c.key, 'q-1', { ...email, subject: 'q-1' });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({ id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/), status: 'queued' });
    expect(r.headers['preference-applied']).toBe('respond-async');
    expect(r.headers.location).toBe(`/emails/${r.body.id}`);
    // Its credit is taken before the answer.
    expect(await balanceOf(stack, c.key)).toBe(9);

    // Resend's events (by Resend's id) move MailKit's email along.
    await waitFor(async () => (await emailOf(stack!, c.key, r.body.id)).status === 'delivered');
    const detail = await emailOf(stack, c.key, r.body.id);
    expect(detail.events.map((e: { type: string }) => e.type)).toContain('email.delivered');
    expect(sentTo(stack, 'q-1')).toBe(1);
    const resendIds = stack.sandbox.resend
      .messages()
      .filter((m) => m.subject === 'q-1')
      .map((m) => m.id);
    expect(resendIds).not.toContain(r.body.id);

    const again = await sendAsync(stack, c.key, 'q-1', { ...email, subject: 'q-1' });
    expect(again.status).toBe(202);
    expect(again.body).toEqual(r.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(sentTo(stack, 'q-1')).toBe(1);
    expect(await balanceOf(stack, c.key)).toBe(9);
  });

  it('Resend failing (500) at first: still 202, then delivered once when it recovers, for one credit', async () => {
    stack = await startTestStack({}, { engine, ...QUICK });
    const c = await customerWith(stack, 10);
    stack.sandbox.resend.faults.inject({ status: 500, count: 6, match: /^POST \/emails(\/batch)?$/ });
    const r = await sendAsync(stack, c.key, 'q-2', { ...email, subject: 'q-2' });
    expect(r.status).toBe(202);
    expect((await emailOf(stack, c.key, r.body.id)).status).toBe('queued');
    await waitFor(async () => sentTo(stack!, 'q-2') === 1, 20_000);
    await waitFor(async () => (await emailOf(stack!, c.key, r.body.id)).status !== 'queued');
    expect(sentTo(stack, 'q-2')).toBe(1);
    expect(await balanceOf(stack, c.key)).toBe(9);
  });

  it('a lost Resend answer: the same flight is asked again, one email for one credit', async () => {
    stack = await startTestStack({}, { engine, ...QUICK });
    const c = await customerWith(stack, 10);
    stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails(\/batch)?$/ });
    const r = await sendAsync(stack, c.key, 'q-3', { ...email, subject: 'q-3' });
    expect(r.status).toBe(202);
    await waitFor(async () => (await emailOf(stack!, c.key, r.body.id)).status === 'delivered', 20_000);
    expect(sentTo(stack, 'q-3')).toBe(1);
    expect(await balanceOf(stack, c.key)).toBe(9);
  });

  it('an email Resend refuses for good ends failed, with why, and its credit comes back', async () => {
    stack = await startTestStack({}, { engine, ...QUICK });
    const c = await customerWith(stack, 10);
    stack.sandbox.resend.faults.inject({ status: 422, count: 1, match: /^POST \/emails(\/batch)?$/ });
    const r = await sendAsync(stack, c.key, 'q-4', { ...email, subject: 'q-4' });
    expect(r.status).toBe(202);
    await waitFor(async () => (await emailOf(stack!, c.key, r.body.id)).status === 'failed');
    const detail = await emailOf(stack, c.key, r.body.id);
    expect(detail.events).toEqual([expect.objectContaining({ type: 'email.failed', detail: expect.stringMatching(/rejected/) })]);
    expect(sentTo(stack, 'q-4')).toBe(0);
    await waitFor(async () => (await balanceOf(stack!, c.key)) === 10);
    // The key's answer stays the accepted one.
    const again = await sendAsync(stack, c.key, 'q-4', { ...email, subject: 'q-4' });
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(r.body.id);
  });

  it('not enough credits: 402 at once, nothing queued', async () => {
    stack = await startTestStack({}, { engine });
    const c = await customerWith(stack, 1);
    const r = await sendAsync(stack, c.key, 'q-5', { ...email, to: ['a@example.com', 'b@example.com'], subject: 'q-5' });
    expect(r.status).toBe(402);
    expect((await request(stack.url).get('/emails').set(bearer(c.key)).expect(200)).body.data).toEqual([]);
    expect(await balanceOf(stack, c.key)).toBe(1);
  });

  it('a batch: 202 with one id per email, the suppressed one refused alone', async () => {
    stack = await startTestStack({}, { engine });
    const c = await customerWith(stack, 10);
    await request(stack.url)
      .post('/send')
      .set(bearer(c.key))
      .send({ ...email, to: 'bounced@resend.dev' })
      .expect(200);
    await waitFor(async () => (await request(stack!.url).get('/suppressions').set(bearer(c.key))).body.data.length === 1);
    const r = await request(stack.url)
      .post('/send/batch')
      .set(bearer(c.key))
      .set('Prefer', 'respond-async')
      .send({
        emails: [
          { ...email, subject: 'b-1' },
          { ...email, to: 'bounced@resend.dev', subject: 'b-2' },
          { ...email, subject: 'b-3' },
        ],
      });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ queued: 2, failed: 1 });
    expect(r.body.data[1].error.code).toBe('recipient_suppressed');
    expect(r.body.data[0].id).not.toBe(r.body.data[2].id);
    await waitFor(async () => sentTo(stack!, 'b-1') === 1 && sentTo(stack!, 'b-3') === 1);
    expect(await balanceOf(stack, c.key)).toBe(10 - 1 - 2);
  });

  it('at the limit, a send waits for room as the flights free it: every one 202, none refused', async () => {
    // Waits long enough for three rounds of flights on a busy machine.
    stack = await startTestStack({}, { engine, ...QUICK, acceptLimit: 2, acceptWaitMs: 5_000 });
    const c = await customerWith(stack, 20);
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => sendAsync(stack!, c.key, `w-${i}`, { ...email, subject: `w-${i}` })));
    expect(all.map((r) => r.status)).toEqual(Array(8).fill(202));
    await waitFor(async () => Array.from({ length: 8 }, (_, i) => sentTo(stack!, `w-${i}`)).every((n) => n === 1));
    expect(await balanceOf(stack, c.key)).toBe(12);
  });

  it(
    'past what Resend’s quota delivers soon: a wait for room, then 429 with Retry-After, nothing taken; ' + 'what was accepted is delivered',
    async () => {
      stack = await startTestStack({}, { engine, ...QUICK, acceptLimit: 2 });
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ status: 503, match: /^POST \/emails(\/batch)?$/ });
      const first = await Promise.all([
        sendAsync(stack, c.key, 'l-1', { ...email, subject: 'l-1' }),
        sendAsync(stack, c.key, 'l-2', { ...email, subject: 'l-2' }),
      ]);
      expect(first.map((r) => r.status)).toEqual([202, 202]);
      const refused = await sendAsync(stack, c.key, 'l-3', { ...email, subject: 'l-3' });
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe('send_queue_full');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(await balanceOf(stack, c.key)).toBe(8);
      // Resend recovers.
      stack.sandbox.resend.faults.clear();
      await waitFor(async () => sentTo(stack!, 'l-1') === 1 && sentTo(stack!, 'l-2') === 1, 20_000);
      // The refused key was never a send: the same key goes through now.
      expect((await sendAsync(stack, c.key, 'l-3', { ...email, subject: 'l-3' })).status).toBe(202);
      await waitFor(async () => sentTo(stack!, 'l-3') === 1);
      expect(await balanceOf(stack, c.key)).toBe(7);
    },
  );
});
