import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { findSend } from '../../src/db/sends';
import { sendIdFor } from '../../src/sending/records';
import { dodoBalance, fleetKey, fleetStore, spawnInstance, startInstance, startUpstream, instanceEnv, type Upstream } from '../support/fleet';
import { forEachEngine } from '../support/database';
import { sendRow } from '../support/rows';
import { balanceOf, bearer, customerWith, outboxTo, startTestStack, waitFor, senderOn } from '../support/stack';

/**
 * The five interleavings that once lost or doubled money, each driven through the real SDKs against the sandbox,
 * on every engine. Each breaks "never an email without its credit, never a credit without its
 * email, never a second email for one key" on the journal-store sender.
 */
type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const email = { to: 'delivered@resend.dev', subject: 'Hole', html: '<p>x</p>' };
const QUICK = { reconcile: { intervalMs: 0, graceMs: 0 }, mailer: { timeoutMs: 300, maxBackoffMs: 50 }, dodoMaxRetries: 0 };
const mail = (subject: string) => ({ to: [email.to], subject, html: email.html });
/*
 * Holes 2, 3, 5 and 6 were about a send's own Dodo debit and refund. Sends are paid from the
 * balance MailKit keeps now, with no Dodo call; the same doubts fall on a settlement's debit,
 * which test/billing/credits.test.ts drives.
 */

forEachEngine('the send state machine', ({ engine }) => {
  let stack: TestStack | undefined;
  let upstream: Upstream | undefined;
  afterEach(async () => {
    await stack?.close();
    await upstream?.close();
    stack = upstream = undefined;
  });
  const sentWith = (subject: string) => outboxTo(stack!, email.to).filter((m) => m.subject === subject);

  describe('1. a key reused after its record was pruned', () => {
    it('is a new send: a new debit and a new email, never the old ones', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      const clock = { now: Date.now() };
      const sender = senderOn(stack, { now: () => new Date(clock.now), reconcile: { intervalMs: 0 } });
      const first = await sender.send(c.customerId, mail('day one'), 'reused-key');
      clock.now += 25 * 60 * 60 * 1000;
      await sender.reconcile(); // prunes the day-old record
      expect(await findSend(stack.database, sendIdFor(c.customerId, 'reused-key'))).toBeUndefined();

      const second = await sender.send(c.customerId, mail('day two'), 'reused-key');
      expect(second.status).toBe(200);
      expect((second.body as { id: string }).id).not.toBe((first.body as { id: string }).id);
      expect(sentWith('day one')).toHaveLength(1);
      expect(sentWith('day two')).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(8);
      await sender.drain();
    });

    it('retention runs from the last change: a retry near the end of the window keeps the key a full window more', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      const clock = { now: Date.now() };
      const sender = senderOn(stack, { now: () => new Date(clock.now), reconcile: { intervalMs: 0 } });
      // Attempt 0: Resend refuses outright (nothing sent), the credit comes back.
      stack.sandbox.resend.faults.inject({ status: 500, match: /^POST \/emails(\/batch)?$/ });
      await expect(sender.send(c.customerId, mail('late'), 'late-key')).rejects.toMatchObject({ status: 503 });
      stack.sandbox.resend.faults.clear();
      clock.now += 23 * 60 * 60 * 1000;
      const sent = await sender.send(c.customerId, mail('late'), 'late-key');
      clock.now += 2 * 60 * 60 * 1000; // 25 h after creation, 2 h after the email
      await sender.reconcile();
      const replay = await sender.send(c.customerId, mail('late'), 'late-key');
      expect(replay.headers['Idempotent-Replayed']).toBe('true');
      expect(replay.body).toEqual(sent.body);
      expect(sentWith('late')).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
      await sender.drain();
    });
  });

  describe('4. a lost Resend answer, then refusals of the redelivery', () => {
    it('never refunds and never sends a second email: only a definite answer for the same key settles it', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails(\/batch)?$/ });
      const send = () => request(stack!.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'k4').send(email);
      expect((await send()).status).toBe(503);
      expect(outboxTo(stack, email.to)).toHaveLength(1); // it did go out
      for (const status of [429, 500, 503]) {
        stack.sandbox.resend.faults.inject({ status, match: /^POST \/emails(\/batch)?$/ });
        const r = await send();
        stack.sandbox.resend.faults.clear();
        expect(r.status).toBe(503);
        expect(r.body.error.code).toBe('delivery_unconfirmed');
        expect(await balanceOf(stack, c.key)).toBe(9);
      }
      const done = await send();
      expect(done.status).toBe(200);
      expect(done.body.id).toBe(outboxTo(stack, email.to)[0]!.id);
      expect(outboxTo(stack, email.to)).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });

    it("keeps the first try's sender: a MAIL_FROM changed before the retry is not a different email", async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails(\/batch)?$/ });
      const first = await stack.sender.send(c.customerId, mail('from'), 'k4-from').catch((e: unknown) => e);
      expect(first).toMatchObject({ code: 'delivery_unconfirmed' });
      const moved = senderOn(stack, { mailer: { ...stack.mailer, from: 'Other <other@example.com>' }, reconcile: { intervalMs: 0 } });
      const done = await moved.send(c.customerId, mail('from'), 'k4-from');
      expect(done.status).toBe(200);
      expect(sentWith('from')).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
      await moved.drain();
    });
  });

  describe('a send imported mid-flight from the journal store', () => {
    it('is settled under the keys it was first sent with: the email it already sent is confirmed, not sent again', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      // The journal-store sender's keys: debit `<id>:debit:0`, email `<id>:0`. Its email went out; the answer was lost.
      const id = sendIdFor(c.customerId, 'old-key');
      await stack.billing.reserve(c.customerId, 1, `${id}:debit:0`, 'email send (old sender)');
      const sent = await stack.resend.emails.send(
        { from: stack.mailer.from, to: [email.to], subject: 'imported', html: email.html },
        { idempotencyKey: `${id}:0` },
      );
      const t = Date.now() - 120_000;
      await stack.database.db
        .insertInto('sends')
        .values(
          sendRow({
            id,
            customerId: c.customerId,
            clientKey: '',
            fingerprint: 'old',
            nonce: '',
            inDoubt: 1,
            createdAt: t,
            updatedAt: t,
            deliveringSince: t,
            funding: 'debit',
          }),
        )
        .execute();
      await stack.database.db
        .insertInto('sendPayloads')
        .values({ sendId: id, body: JSON.stringify({ batch: false, from: stack.mailer.from, emails: [mail('imported')] }) })
        .execute();

      expect(await stack.sender.reconcile()).toBe(1);
      expect(sentWith('imported')).toHaveLength(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
      const row = await findSend(stack.database, id);
      expect(row?.state).toBe('done');
      expect(JSON.parse(row!.resultBody!)).toEqual({ id: sent.data!.id });
    });
  });
});
