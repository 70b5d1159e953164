import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balanceOf, bearer, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe('customer identity comes from the API key', () => {
  let stack: TestStack;
  let alice: { key: string; customerId: string };
  let bob: { key: string; customerId: string };

  beforeAll(async () => {
    stack = await startTestStack();
    alice = await subscribe(stack, 'alice@example.com', 'Alice');
    bob = await subscribe(stack, 'bob@example.com', 'Bob');
  });
  afterAll(async () => {
    await stack?.close();
  });

  describe('without a key, or with a bad one', () => {
    const routes: Array<[string, string, object | undefined]> = [
      ['get', '/credits', undefined],
      ['get', '/account', undefined],
      ['post', '/send', { to: 'delivered@resend.dev', subject: 's', html: 'h' }],
      ['post', '/send/batch', { emails: [{ to: 'delivered@resend.dev', subject: 's', html: 'h' }] }],
      ['post', '/checkout/topup', {}],
      ['post', '/account/key', {}],
    ];
    it.each(routes)('%s %s answers 401', async (method, path, body) => {
      const before = stack.sandbox.resend.messages().length;
      const r1 = await (request(stack.url) as any)[method](path).send(body);
      expect(r1.status).toBe(401);
      expect(r1.body.error.code).toBe('missing_api_key');
      expect(r1.headers['www-authenticate']).toMatch(/^Bearer/);
      const forged = alice.key.slice(0, -3) + (alice.key.endsWith('AAA') ? 'BBB' : 'AAA');
      const r2 = await (request(stack.url) as any)[method](path).set(bearer(forged)).send(body);
      expect(r2.status).toBe(401);
      expect(r2.body.error.code).toBe('invalid_api_key');
      expect(stack.sandbox.resend.messages().length).toBe(before);
    });
  });

  describe("naming another customer's id", () => {
    it('GET /credits/:customerId answers 403', async () => {
      const r = await request(stack.url).get(`/credits/${bob.customerId}`).set(bearer(alice.key));
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('forbidden_customer');
    });

    it('POST /send with customer_id answers 403, sends nothing and debits nothing', async () => {
      const before = stack.sandbox.resend.messages().length;
      const r = await request(stack.url)
        .post('/send')
        .set(bearer(alice.key))
        .send({ customer_id: bob.customerId, to: 'delivered@resend.dev', subject: 's', html: 'h' });
      expect(r.status).toBe(403);
      expect(stack.sandbox.resend.messages().length).toBe(before);
      expect(await balanceOf(stack, alice.key)).toBe(5000);
      expect(await balanceOf(stack, bob.key)).toBe(5000);
    });

    it('POST /checkout/topup with customer_id answers 403', async () => {
      const r = await request(stack.url).post('/checkout/topup').set(bearer(alice.key)).send({ customer_id: bob.customerId });
      expect(r.status).toBe(403);
    });

    it('naming its own id is accepted (the tutorial shape)', async () => {
      const r = await request(stack.url).get(`/credits/${alice.customerId}`).set(bearer(alice.key)).expect(200);
      expect(r.body).toEqual({ balance: '5000' });
    });
  });

  it("a send spends only the key owner's credits", async () => {
    await request(stack.url).post('/send').set(bearer(bob.key)).send({ to: 'delivered@resend.dev', subject: 's', html: 'h' }).expect(200);
    expect(await balanceOf(stack, bob.key)).toBe(4999);
    expect(await balanceOf(stack, alice.key)).toBe(5000);
  });

  it('rotating a key revokes the old one at once', async () => {
    const r = await request(stack.url).post('/account/key').set(bearer(alice.key)).expect(201);
    expect(r.body.api_key).toMatch(/^mk_test_/);
    await request(stack.url).get('/credits').set(bearer(alice.key)).expect(401);
    await request(stack.url).get('/credits').set(bearer(r.body.api_key)).expect(200);
    alice.key = r.body.api_key;
  });
});
