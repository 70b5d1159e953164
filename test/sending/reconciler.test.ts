import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { sendIdFor } from '../../src/sending/records';
import { findSend, payloadOf } from '../../src/db/sends';
import { balanceOf, bearer, customerWith, outboxTo, startTestStack, senderOn } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const email = { to: 'delivered@resend.dev', subject: 'Invoice 7', html: '<p>Due soon</p>' };
/** The reconciler runs only when the test calls it, and takes sends at once. */
const NOW = { reconcile: { intervalMs: 0, graceMs: 0 }, mailer: { timeoutMs: 200, maxBackoffMs: 100 } };

const sentTo = (stack: TestStack) => outboxTo(stack, email.to);
const send = (stack: TestStack, key: string, idempotencyKey: string, body: object = email) =>
  request(stack.url).post('/send').set(bearer(key)).set('Idempotency-Key', idempotencyKey).send(body);

/** A send whose Resend call times out and never reaches Resend: 503 delivery_unconfirmed, credit held, no email. */
async function unconfirmedAndUnsent(stack: TestStack, key: string, idempotencyKey: string) {
  stack.sandbox.resend.faults.inject({ latencyMs: 500, status: 503, count: 1, match: /^POST \/emails(\/batch)?$/ });
  const first = await send(stack, key, idempotencyKey);
  expect(first.status).toBe(503);
  expect(first.body.error.code).toBe('delivery_unconfirmed');
  await new Promise((r) => setTimeout(r, 600)); // the slow call ends at Resend, refused
  expect(sentTo(stack)).toHaveLength(0);
}

describe('the send reconciler', () => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  describe('when a client never retries an unconfirmed send', () => {
    it('that Resend did accept: it confirms it under the same key, no second email, the credit stays', async () => {
      stack = await startTestStack({}, NOW);
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails(\/batch)?$/ });
      expect((await send(stack, c.key, 'lost-answer')).status).toBe(503);
      expect(sentTo(stack)).toHaveLength(1);

      expect(await stack.sender.reconcile()).toBe(1);
      expect(sentTo(stack)).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
      // A late retry replays the outcome the reconciler reached.
      const late = await send(stack, c.key, 'lost-answer').expect(200);
      expect(late.body.id).toBe(sentTo(stack)[0]!.id);
      expect(late.headers['idempotent-replayed']).toBe('true');
    });

    it('that never reached Resend: it sends it, exactly once, for the credit already held', async () => {
      stack = await startTestStack({}, NOW);
      const c = await customerWith(stack, 10);
      await unconfirmedAndUnsent(stack, c.key, 'timed-out');
      expect(await balanceOf(stack, c.key)).toBe(9);

      expect(await stack.sender.reconcile()).toBe(1);
      expect(sentTo(stack)).toHaveLength(1);
      expect(sentTo(stack)[0]!.subject).toBe(email.subject);
      expect(await balanceOf(stack, c.key)).toBe(9);
      expect(await stack.sender.reconcile()).toBe(0); // nothing left to do
      expect(sentTo(stack)).toHaveLength(1);
    });

    it('that Resend now answers 500 or 429: that proves nothing, so the credit stays held and the next pass sends it once', async () => {
      stack = await startTestStack({}, NOW);
      const c = await customerWith(stack, 10);
      await unconfirmedAndUnsent(stack, c.key, 'then-refused');
      stack.sandbox.resend.faults.inject({ status: 500, match: /^POST \/emails(\/batch)?$/ });
      expect(await stack.sender.reconcile()).toBe(0);
      stack.sandbox.resend.faults.clear();
      stack.sandbox.resend.faults.inject({ status: 429, match: /^POST \/emails(\/batch)?$/ });
      expect(await stack.sender.reconcile()).toBe(0);
      stack.sandbox.resend.faults.clear();
      expect(sentTo(stack)).toHaveLength(0);
      expect(await balanceOf(stack, c.key)).toBe(9);
      // A client retry meanwhile is told the outcome is still open, never "nothing was sent".
      stack.sandbox.resend.faults.inject({ status: 500, match: /^POST \/emails(\/batch)?$/ });
      const open = await send(stack, c.key, 'then-refused');
      stack.sandbox.resend.faults.clear();
      expect(open.status).toBe(503);
      expect(open.body.error.code).toBe('delivery_unconfirmed');
      expect(await balanceOf(stack, c.key)).toBe(9);

      expect(await stack.sender.reconcile()).toBe(1);
      expect(sentTo(stack)).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
      await send(stack, c.key, 'then-refused').expect(200);
      expect(sentTo(stack)).toHaveLength(1);
    });

    it(
      'that Resend now answers with a validation error: ' + 'it proves nothing about the unanswered call, the credit stays until the ids come',
      async () => {
        stack = await startTestStack({}, NOW);
        const c = await customerWith(stack, 10);
        await unconfirmedAndUnsent(stack, c.key, 'then-invalid');
        stack.sandbox.resend.faults.inject({ status: 422, count: 1, match: /^POST \/emails(\/batch)?$/ });
        expect(await stack.sender.reconcile()).toBe(0);
        expect(sentTo(stack)).toHaveLength(0);
        expect(await balanceOf(stack, c.key)).toBe(9);
        // The next pass gets Resend's id under the same key: sent once, for its one credit.
        expect(await stack.sender.reconcile()).toBe(1);
        expect(sentTo(stack)).toHaveLength(1);
        expect(await balanceOf(stack, c.key)).toBe(9);
        expect((await send(stack, c.key, 'then-invalid')).status).toBe(200);
      },
    );

    it('for a batch: the whole batch once, its credits kept', async () => {
      stack = await startTestStack({}, NOW);
      const c = await customerWith(stack, 10);
      const batch = { emails: [email, { ...email, subject: 'Invoice 8' }, { ...email, subject: 'Invoice 9' }] };
      stack.sandbox.resend.faults.inject({ latencyMs: 500, status: 503, count: 1, match: /^POST \/emails\/batch$/ });
      const first = await request(stack.url).post('/send/batch').set(bearer(c.key)).set('Idempotency-Key', 'batch-1').send(batch);
      expect(first.status).toBe(503);
      await new Promise((r) => setTimeout(r, 600));
      expect(sentTo(stack)).toHaveLength(0);

      expect(await stack.sender.reconcile()).toBe(1);
      expect(
        sentTo(stack)
          .map((m) => m.subject)
          .sort(),
      ).toEqual(['Invoice 7', 'Invoice 8', 'Invoice 9']);
      expect(await balanceOf(stack, c.key)).toBe(7);
      const late = await request(stack.url).post('/send/batch').set(bearer(c.key)).set('Idempotency-Key', 'batch-1').send(batch).expect(200);
      expect(late.body.sent).toBe(3);
    });
  });

  describe('when the client comes back', () => {
    it('within the grace period, the send is left to it', async () => {
      stack = await startTestStack({}, { ...NOW, reconcile: { intervalMs: 0 } }); // the default 60 s grace
      const c = await customerWith(stack, 10);
      await unconfirmedAndUnsent(stack, c.key, 'client-first');
      expect(await stack.sender.reconcile()).toBe(0);
      expect(sentTo(stack)).toHaveLength(0);
      await send(stack, c.key, 'client-first').expect(200);
      expect(sentTo(stack)).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });

    it('during a reconciler pass: one email, one credit, and the client gets its id', async () => {
      stack = await startTestStack({}, NOW);
      const c = await customerWith(stack, 10);
      await unconfirmedAndUnsent(stack, c.key, 'race');
      stack.sandbox.resend.faults.setLatency(100); // keeps the reconciler's delivery in flight
      const [settled, retry] = await Promise.all([stack.sender.reconcile(), send(stack, c.key, 'race')]);
      stack.sandbox.resend.faults.setLatency(0);
      expect(settled).toBe(1);
      expect(retry.status).toBe(200);
      expect(sentTo(stack)).toHaveLength(1);
      expect(retry.body.id).toBe(sentTo(stack)[0]!.id);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });
  });

  describe('after a restart', () => {
    it('completes a send the previous process left unconfirmed', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-reconcile-'));
      const onDisk = { MAILKIT_DATA_DIR: dataDir, MAILKIT_KEY_SECRET: 'reconcile-secret-'.repeat(3) };
      try {
        stack = await startTestStack(onDisk, { ...NOW, inMemory: false });
        const c = await customerWith(stack, 10);
        await unconfirmedAndUnsent(stack, c.key, 'across-restart');
        await stack.close();

        stack = await startTestStack(onDisk, { ...NOW, inMemory: false });
        expect(await stack.sender.reconcile()).toBe(1);
        expect(sentTo(stack)).toHaveLength(1);
        expect(await balanceOf(stack, c.key)).toBe(9);
      } finally {
        await stack?.close();
        stack = undefined;
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });

  describe("past Resend's 24-hour key window", () => {
    it('never redelivers (it could be a second email): the send ends unconfirmed with its credit kept', async () => {
      stack = await startTestStack({}, NOW);
      const c = await customerWith(stack, 10);
      // A sender on the stack's real billing and mailer, with a clock the test moves.
      const clock = { now: Date.now() };
      const sender = senderOn(stack, { now: () => new Date(clock.now), reconcile: { intervalMs: 0, graceMs: 0 } });
      stack.sandbox.resend.faults.inject({ latencyMs: 500, status: 503, count: 1, match: /^POST \/emails(\/batch)?$/ });
      const mail = { to: [email.to], subject: email.subject, html: email.html };
      await expect(sender.send(c.customerId, mail, 'old-one')).rejects.toMatchObject({ code: 'delivery_unconfirmed' });
      await new Promise((r) => setTimeout(r, 600));

      clock.now += 23 * 60 * 60 * 1000 + 60_000;
      expect(await sender.reconcile()).toBe(1);
      expect(sentTo(stack)).toHaveLength(0);
      expect(await balanceOf(stack, c.key)).toBe(9);
      const record = (await findSend(stack.database, sendIdFor(c.customerId, 'old-one')))!;
      expect(record.state).toBe('done');
      expect(record.resultStatus).toBe(502);
      expect(JSON.parse(record.resultBody!)).toMatchObject({ error: { code: 'delivery_unconfirmed' } });
      expect(await payloadOf(stack.database, sendIdFor(c.customerId, 'old-one'))).toBeUndefined();
      await sender.drain();
    });
  });

  describe('pruning', () => {
    it('drops finished records 24 hours after their last change and keeps the young and the unsettled', async () => {
      stack = await startTestStack({}, NOW);
      const c = await customerWith(stack, 10);
      const clock = { now: Date.now() };
      const sender = senderOn(stack, { now: () => new Date(clock.now), reconcile: { intervalMs: 0, graceMs: 60 * 60 * 1000 } });
      const mail = { to: [email.to], subject: email.subject, html: email.html };
      await sender.send(c.customerId, mail, 'old-done');
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails(\/batch)?$/ });
      await expect(sender.send(c.customerId, mail, 'old-unsettled')).rejects.toMatchObject({ code: 'delivery_unconfirmed' });
      clock.now += 20 * 60 * 60 * 1000;
      await sender.send(c.customerId, mail, 'young-done');
      const id = (key: string) => sendIdFor(c.customerId, key);

      clock.now += 5 * 60 * 60 * 1000; // the first two are 25 h old, the third 5 h
      await sender.reconcile();
      expect(await findSend(stack.database, id('old-done'))).toBeUndefined();
      expect((await findSend(stack.database, id('young-done')))?.state).toBe('done');
      // Past the grace and the 23 h window: ended unconfirmed by this pass, so kept (and replayed) a full window from now.
      expect((await findSend(stack.database, id('old-unsettled')))?.resultStatus).toBe(502);
      clock.now += 23 * 60 * 60 * 1000;
      await sender.reconcile();
      expect((await findSend(stack.database, id('old-unsettled')))?.resultStatus).toBe(502);
      clock.now += 2 * 60 * 60 * 1000;
      await sender.reconcile();
      expect(await findSend(stack.database, id('old-unsettled'))).toBeUndefined();
      // A key whose record was pruned is a new send.
      expect((await sender.send(c.customerId, mail, 'old-done')).headers['Idempotent-Replayed']).toBeUndefined();
      await sender.drain();
    });
  });
});
