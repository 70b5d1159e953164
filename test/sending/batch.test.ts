import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { balanceOf, bearer, settle, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe('POST /send/batch', () => {
  let stack: TestStack;
  afterEach(async () => {
    await stack?.close();
  });

  it('100 emails: one Resend batch call, 100 ids, and once settled one debit of 100', async () => {
    stack = await startTestStack();
    const c = await subscribe(stack, 'batch@example.com');
    const calls = stack.sandbox.resend.faults.requestCount(/^POST \/emails\/batch$/);
    const emails = Array.from({ length: 100 }, (_, i) => ({ to: `delivered+${i}@resend.dev`, subject: `#${i}`, html: `<p>${i}</p>` }));
    const r = await request(stack.url).post('/send/batch').set(bearer(c.key)).send({ emails }).expect(200);
    expect(r.body.sent).toBe(100);
    expect(r.body.failed).toBe(0);
    expect(r.body.data).toHaveLength(100);
    expect(stack.sandbox.resend.faults.requestCount(/^POST \/emails\/batch$/) - calls).toBe(1);
    expect(await balanceOf(stack, c.key)).toBe(4900);
    await stack.credits.settleNow();
    const debits = [];
    for await (const e of stack.dodo.creditEntitlements.balances.listLedger(c.customerId, {
      credit_entitlement_id: stack.catalog.creditEntitlementId,
      page_number: 0,
    })) {
      if (e.transaction_type === 'credit_deducted') debits.push(Number(e.amount));
    }
    expect(debits).toEqual([100]);
  });

  it('more emails than credits: 402, nothing sent', async () => {
    stack = await startTestStack();
    const c = await subscribe(stack, 'batch2@example.com');
    await stack.sandbox.dodo.adjustBalance(c.customerId, stack.catalog.creditEntitlementId, -4998, 'setup');
    await settle(stack);
    const before = stack.sandbox.resend.messages().length;
    const emails = Array.from({ length: 3 }, () => ({ to: 'delivered@resend.dev', subject: 's', html: 'h' }));
    const r = await request(stack.url).post('/send/batch').set(bearer(c.key)).send({ emails });
    expect(r.status).toBe(402);
    expect(stack.sandbox.resend.messages().length).toBe(before);
    expect(await balanceOf(stack, c.key)).toBe(2);
  });

  it('the same Idempotency-Key twice: one batch sent, one debit, the same answer', async () => {
    stack = await startTestStack();
    const c = await subscribe(stack, 'batch3@example.com');
    const emails = Array.from({ length: 5 }, (_, i) => ({ to: 'delivered@resend.dev', subject: `s${i}`, html: 'h' }));
    const [a, b] = await Promise.all([
      request(stack.url).post('/send/batch').set(bearer(c.key)).set('Idempotency-Key', 'b-1').send({ emails }),
      request(stack.url).post('/send/batch').set(bearer(c.key)).set('Idempotency-Key', 'b-1').send({ emails }),
    ]);
    expect(a.status).toBe(200);
    expect(b.body).toEqual(a.body);
    const c2 = await request(stack.url).post('/send/batch').set(bearer(c.key)).set('Idempotency-Key', 'b-1').send({ emails }).expect(200);
    expect(c2.body).toEqual(a.body);
    expect(stack.sandbox.resend.messages().filter((m) => m.to.includes('delivered@resend.dev'))).toHaveLength(5);
    expect(await balanceOf(stack, c.key)).toBe(4995);
  });

  it('refuses more than 100 emails with 400 and sends nothing', async () => {
    stack = await startTestStack();
    const c = await subscribe(stack, 'batch4@example.com');
    const emails = Array.from({ length: 101 }, () => ({ to: 'delivered@resend.dev', subject: 's', html: 'h' }));
    const r = await request(stack.url).post('/send/batch').set(bearer(c.key)).send({ emails });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/^emails: at most 100/);
    expect(await balanceOf(stack, c.key)).toBe(5000);
  });
});
