import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balanceOf, bearer, earlyInClockMinute, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const expect429 = (r: request.Response) => {
  expect(r.status).toBe(429);
  expect(r.body.error.code).toBe('rate_limited');
  const retryAfter = Number(r.headers['retry-after']);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(r.headers['ratelimit-policy']).toBeDefined();
};

describe('rate limits', () => {
  let stack: TestStack;
  let alice: { key: string; customerId: string };
  let bob: { key: string; customerId: string };

  beforeAll(async () => {
    // The windows are whole clock minutes (shared by every instance): start early in one, so
    // that the counts below are not reset by a new minute halfway through this file.
    await earlyInClockMinute(35);
    stack = await startTestStack({ RATE_LIMIT_PER_KEY: '6', RATE_LIMIT_PUBLIC_PER_IP: '3', RATE_LIMIT_AUTH_FAILURES_PER_IP: '3' });
    // Two subscriptions use two of the three public calls this address has.
    alice = await subscribe(stack, 'alice@example.com', 'Alice');
    bob = await subscribe(stack, 'bob@example.com', 'Bob');
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
  });

  it('per key: over the limit a send answers 429 with Retry-After, sends nothing and debits nothing; other customers go on', async () => {
    // subscribe() made one GET /account with alice's key: 5 more fit in her minute.
    for (let i = 0; i < 4; i++) await request(stack.url).get('/credits').set(bearer(alice.key)).expect(200);
    await request(stack.url).post('/send').set(bearer(alice.key)).send({ to: 'delivered@resend.dev', subject: 'ok', html: '<p>1</p>' }).expect(200);
    const sentBefore = stack.sandbox.resend.messages().length;

    const over = await request(stack.url)
      .post('/send')
      .set(bearer(alice.key))
      .send({ to: 'delivered@resend.dev', subject: 'over', html: '<p>2</p>' });
    expect429(over);
    expect(stack.sandbox.resend.messages().length).toBe(sentBefore);
    expect(await balanceOf(stack, bob.key)).toBe(5000); // bob's own budget is untouched
    // Alice's balance, read from Dodo directly once settled (her key is out of requests): one send, one credit.
    await stack.credits.settleNow();
    const b = await stack.dodo.creditEntitlements.balances.retrieve(alice.customerId, { credit_entitlement_id: stack.catalog.creditEntitlementId });
    expect(b.balance).toBe('4999');
  });

  it('public: POST /checkout/subscribe is limited per address', async () => {
    await request(stack.url).post('/checkout/subscribe').send({ email: 'carol@example.com', name: 'Carol' }).expect(200);
    expect429(await request(stack.url).post('/checkout/subscribe').send({ email: 'dave@example.com', name: 'Dave' }));
  });

  it('failed authentications are limited per address, and a valid key from the same address still works', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await request(stack.url)
        .get('/credits')
        .set(bearer(`mk_test_guess${i}.1.x.y`));
      expect(r.status).toBe(401);
    }
    expect429(await request(stack.url).get('/credits').set(bearer('mk_test_guess4.1.x.y')));
    expect429(await request(stack.url).get('/credits'));
    await request(stack.url).get('/credits').set(bearer(bob.key)).expect(200);
  });
});
