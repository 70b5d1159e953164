import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settle, startTestStack, storedSecrets, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe('POST /webhooks/dodo', () => {
  let stack: TestStack;
  let signer: Webhook;
  const event = (type: string, data: object = {}) => JSON.stringify({ business_id: 'bus_test', type, timestamp: new Date().toISOString(), data });
  const post = (body: string, id: string, at = new Date(), sign = signer) =>
    request(stack.url)
      .post('/webhooks/dodo')
      .set('Content-Type', 'application/json')
      .set('webhook-id', id)
      .set('webhook-timestamp', String(Math.floor(at.getTime() / 1000)))
      .set('webhook-signature', sign.sign(id, at, body))
      .send(body);

  beforeAll(async () => {
    stack = await startTestStack();
    signer = new Webhook((await storedSecrets(stack)).sandboxWebhookSecret!);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('accepts a correctly signed event of an unknown type with 200', async () => {
    const r = await post(event('something.new'), 'msg_unknown_1');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ received: true });
  });

  it('event types named after built-in object properties are acknowledged as unknown types, never run as handlers', async () => {
    for (const type of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      const r = await post(event(type, { customer_id: 'cus_x' }), `msg_builtin_${type}`);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ received: true });
    }
  });

  it('refuses a body altered after signing with 401', async () => {
    const body = event('credit.added');
    const id = 'msg_tamper_1';
    const at = new Date();
    const r = await request(stack.url)
      .post('/webhooks/dodo')
      .set('Content-Type', 'application/json')
      .set('webhook-id', id)
      .set('webhook-timestamp', String(Math.floor(at.getTime() / 1000)))
      .set('webhook-signature', signer.sign(id, at, body))
      .send(body.replace('bus_test', 'bus_evil'));
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('invalid_signature');
  });

  it('refuses a signature made with another secret, and a missing one, with 401', async () => {
    const other = new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`);
    expect((await post(event('credit.added'), 'msg_other_1', new Date(), other)).status).toBe(401);
    const r = await request(stack.url).post('/webhooks/dodo').set('Content-Type', 'application/json').send(event('credit.added'));
    expect(r.status).toBe(401);
  });

  it('refuses a timestamp outside the 5-minute tolerance with 401', async () => {
    const old = new Date(Date.now() - 6 * 60 * 1000);
    expect((await post(event('credit.added'), 'msg_stale_1', old)).status).toBe(401);
    const future = new Date(Date.now() + 6 * 60 * 1000);
    expect((await post(event('credit.added'), 'msg_future_1', future)).status).toBe(401);
  });

  it('answers 400 to a signed payload that is not a Dodo event', async () => {
    expect((await post('[1,2,3]', 'msg_malformed_1')).status).toBe(400);
    expect((await post('{"type":"credit.added"}', 'msg_malformed_2')).status).toBe(400);
    expect((await post('not json', 'msg_malformed_3')).status).toBe(400);
  });

  it('a redelivered subscription.active (same webhook-id) is acknowledged without a second key email', async () => {
    const { customerId } = await subscribe(stack, 'replay@example.com');
    const keyEmails = () =>
      stack.sandbox.resend.messages().filter((m) => m.to.includes('replay@example.com') && m.subject === 'Your MailKit API key');
    expect(keyEmails()).toHaveLength(1);
    const delivery = stack.sandbox.dodo.webhooks
      .list()
      .find((d) => d.type === 'subscription.active' && JSON.stringify(d.payload).includes(customerId));
    expect(delivery?.state).toBe('delivered');
    await stack.sandbox.dodo.webhooks.redeliver(delivery!.id);
    await settle(stack);
    await stack.sandbox.dodo.webhooks.redeliver(delivery!.id);
    await settle(stack);
    expect(keyEmails()).toHaveLength(1);
    const latest = stack.sandbox.dodo.webhooks.list().find((d) => d.id === delivery!.id)!;
    expect(latest.attempts.at(-1)?.status).toBe(200);

    // Replayed by hand with a fresh signature: recognised as already processed.
    const replay = await post(JSON.stringify(delivery!.payload), delivery!.id);
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual({ received: true, duplicate: true });
  });
});
