import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { balanceOf, bearer, customerWith, startTestStack } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const email = { to: 'delivered@resend.dev', subject: 'Receipt', html: '<p>Thanks</p>' };

const sentTo = (stack: TestStack, to = email.to) => stack.sandbox.resend.messages().filter((m) => m.to.includes(to)).length;

describe('POST /send keeps money exact', () => {
  let stack: TestStack;
  afterEach(async () => {
    await stack?.close();
  });

  describe('when 200 sends race for 50 credits', () => {
    it('sends exactly 50 emails, leaves 0 credits, answers 150 × 402 and no 5xx', async () => {
      // The production timeout (15 s), not the tests' short one: on a loaded 2-core machine 200
      // concurrent requests can keep one waiting past 2 s, which is an honest 503 but not this test's point.
      stack = await startTestStack({}, { mailer: { timeoutMs: 15_000, maxBackoffMs: 200 } });
      const c = await customerWith(stack, 50);
      const results = await Promise.all(Array.from({ length: 200 }, () => request(stack.url).post('/send').set(bearer(c.key)).send(email)));
      const byStatus = results.reduce<Record<number, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
      const errors = results.filter((r) => r.status >= 500).map((r) => r.body.error);
      expect(byStatus, JSON.stringify(errors)).toEqual({ 200: 50, 402: 150 });
      expect(sentTo(stack)).toBe(50);
      expect(await balanceOf(stack, c.key)).toBe(0);
    });
  });

  describe('when the balance is spent', () => {
    it('a new key is refused with nothing recorded; a retry of a paid send still gets its answer', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 1);
      const paid = await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'paid-1').send(email).expect(200);
      const refused = await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'refused-1').send(email).expect(402);
      expect(refused.body.error.code).toBe('insufficient_credits');
      expect(refused.headers['idempotency-key']).toBe('refused-1');
      const rows = await stack.database.db.selectFrom('sends').select('clientKey').where('customerId', '=', c.customerId).execute();
      expect(rows.map((r) => r.clientKey)).toEqual(['paid-1']);
      const again = await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'paid-1').send(email).expect(200);
      expect(again.body.id).toBe(paid.body.id);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(sentTo(stack)).toBe(1);
    });
  });

  describe('when one Idempotency-Key is retried', () => {
    it('10 sequential retries give one email, one debit and the same id', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 100);
      const ids = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const r = await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'order-42').send(email).expect(200);
        ids.add(r.body.id);
        if (i > 0) expect(r.headers['idempotent-replayed']).toBe('true');
      }
      expect(ids.size).toBe(1);
      expect(sentTo(stack)).toBe(1);
      expect(await balanceOf(stack, c.key)).toBe(99);
    });

    it('10 concurrent retries give one email, one debit and the same id', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 100);
      const results = await Promise.all(
        Array.from({ length: 10 }, () => request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'order-43').send(email)),
      );
      expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
      expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
      expect(sentTo(stack)).toBe(1);
      expect(await balanceOf(stack, c.key)).toBe(99);
    });

    it('the same key with a different body is refused with 422 and changes nothing', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 100);
      await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'k1').send(email).expect(200);
      const r = await request(stack.url)
        .post('/send')
        .set(bearer(c.key))
        .set('Idempotency-Key', 'k1')
        .send({ ...email, subject: 'Other' });
      expect(r.status).toBe(422);
      expect(r.body.error.code).toBe('idempotency_key_reused');
      expect(sentTo(stack)).toBe(1);
      expect(await balanceOf(stack, c.key)).toBe(99);
    });

    it('two customers may use the same key independently', async () => {
      stack = await startTestStack();
      const a = await customerWith(stack, 10);
      const b = await customerWith(stack, 10);
      const ra = await request(stack.url).post('/send').set(bearer(a.key)).set('Idempotency-Key', 'same').send(email).expect(200);
      const rb = await request(stack.url).post('/send').set(bearer(b.key)).set('Idempotency-Key', 'same').send(email).expect(200);
      expect(ra.body.id).not.toBe(rb.body.id);
      expect(await balanceOf(stack, a.key)).toBe(9);
      expect(await balanceOf(stack, b.key)).toBe(9);
    });
  });

  describe('when an upstream fails', () => {
    it('Resend 500 on every try: 503 in doubt (a 5xx may follow a sent email), the credit held; the same key completes it once', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ status: 500, match: /^POST \/emails(\/batch)?$/ });
      const r = await request(stack.url).post('/send').set(bearer(c.key)).send(email);
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBeDefined();
      expect(r.body.error.code).toBe('delivery_unconfirmed');
      expect(sentTo(stack)).toBe(0);
      expect(await balanceOf(stack, c.key)).toBe(9);
      stack.sandbox.resend.faults.clear();
      await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', r.headers['idempotency-key']!).send(email).expect(200);
      expect(sentTo(stack)).toBe(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });

    it('Resend 429 on every try: 429, nothing sent, the credit comes back', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ status: 429, match: /^POST \/emails(\/batch)?$/ });
      const r = await request(stack.url).post('/send').set(bearer(c.key)).send(email);
      expect(r.status).toBe(429);
      expect(r.headers['retry-after']).toBeDefined();
      expect(r.body.error.code).toBe('email_rate_limited');
      expect(sentTo(stack)).toBe(0);
      expect(await balanceOf(stack, c.key)).toBe(10);
    });

    it('Resend 500 once: the bounded retry delivers it, one email for one credit', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ status: 500, count: 1, match: /^POST \/emails(\/batch)?$/ });
      await request(stack.url).post('/send').set(bearer(c.key)).send(email).expect(200);
      expect(sentTo(stack)).toBe(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });

    it('a lost Resend answer: 503 "retry with the same key", and that retry completes it exactly once', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails(\/batch)?$/ });
      const first = await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'amb-1').send(email);
      expect(first.status).toBe(503);
      expect(first.body.error.code).toBe('delivery_unconfirmed');
      expect(first.body.error.message).toMatch(/same Idempotency-Key/);
      expect(sentTo(stack)).toBe(1); // Resend did accept it
      expect(await balanceOf(stack, c.key)).toBe(9); // and the credit stays reserved

      const retry = await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'amb-1').send(email).expect(200);
      expect(retry.body.id).toBe(stack.sandbox.resend.messages()[0]!.id);
      expect(sentTo(stack)).toBe(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });

    it('without a client key, the ambiguous answer carries a generated Idempotency-Key to retry with', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails(\/batch)?$/ });
      const first = await request(stack.url).post('/send').set(bearer(c.key)).send(email);
      expect(first.status).toBe(503);
      const key = String(first.headers['idempotency-key'] ?? '');
      expect(key).toBeTruthy();
      await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', key).send(email).expect(200);
      expect(sentTo(stack)).toBe(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });

    it('Dodo down: the send is paid from the balance MailKit keeps and goes out; the settlement waits for Dodo and debits once', async () => {
      stack = await startTestStack({}, { dodoMaxRetries: 0, credits: { intervalMs: 0 } });
      const c = await customerWith(stack, 10);
      stack.sandbox.dodo.faults.inject({ status: 503, count: 3, match: /ledger-entries$/ });
      await request(stack.url).post('/send').set(bearer(c.key)).send(email).expect(200);
      expect(sentTo(stack)).toBe(1);
      expect(await balanceOf(stack, c.key)).toBe(9);
      await stack.credits.settleNow(); // 503: in doubt, asked again later under the same key
      expect(Number(await stack.billing.balance(c.customerId))).toBe(10);
      stack.sandbox.dodo.faults.clear();
      await stack.credits.settleNow();
      expect(Number(await stack.billing.balance(c.customerId))).toBe(9);
      await stack.credits.settleNow();
      expect(Number(await stack.billing.balance(c.customerId))).toBe(9);
    });

    it('Resend rate limit (2/s): bounded backoff, and every answer is a 200 or a 429 with Retry-After; emails = credits debited', async () => {
      stack = await startTestStack({}, { mailer: { timeoutMs: 2_000, maxBackoffMs: 1_500, maxRetries: 3 } });
      const c = await customerWith(stack, 100);
      stack.sandbox.resend.setRateLimit(2);
      const results = await Promise.all(Array.from({ length: 8 }, () => request(stack.url).post('/send').set(bearer(c.key)).send(email)));
      stack.sandbox.resend.setRateLimit(0);
      for (const r of results) {
        expect([200, 429]).toContain(r.status);
        if (r.status === 429) expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      }
      const ok = results.filter((r) => r.status === 200).length;
      expect(ok).toBeGreaterThanOrEqual(2);
      expect(sentTo(stack)).toBe(ok);
      expect(await balanceOf(stack, c.key)).toBe(100 - ok);
    });

    it('Resend timeout: 503 delivery_unconfirmed with the credit kept, and the retry completes it once', async () => {
      stack = await startTestStack({}, { mailer: { timeoutMs: 200, maxBackoffMs: 200 } });
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ latencyMs: 600, count: 1, match: /^POST \/emails(\/batch)?$/ });
      const first = await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'slow-1').send(email);
      expect(first.status).toBe(503);
      expect(first.body.error.code).toBe('delivery_unconfirmed');
      await new Promise((r) => setTimeout(r, 700)); // the slow request lands at Resend meanwhile
      const retry = await request(stack.url).post('/send').set(bearer(c.key)).set('Idempotency-Key', 'slow-1').send(email).expect(200);
      expect(sentTo(stack)).toBe(1);
      expect(retry.body.id).toBe(stack.sandbox.resend.messages()[0]!.id);
      expect(await balanceOf(stack, c.key)).toBe(9);
    });

    it('a Resend validation rejection: 422 with its reason, and the credit comes back', async () => {
      stack = await startTestStack();
      const c = await customerWith(stack, 10);
      stack.sandbox.resend.faults.inject({ status: 422, count: 1, match: /^POST \/emails(\/batch)?$/ });
      const r = await request(stack.url).post('/send').set(bearer(c.key)).send(email);
      expect(r.status).toBe(422);
      expect(r.body.error.code).toBe('email_rejected');
      expect(sentTo(stack)).toBe(0);
      expect(await balanceOf(stack, c.key)).toBe(10);
    });
  });
});
