import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowedHostNames } from '../src/allowed-hosts';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { startStack } from '../src/stack';
import { LIVE_ENV, startTestStack } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * DNS rebinding: a page on evil.example whose name is re-pointed at 127.0.0.1 reaches the
 * sandbox as same-origin, with `Host: evil.example`. In sandbox mode every page and API answers
 * 403 to a host it is not configured for, and changes nothing.
 */
describe('allowed hosts (sandbox mode)', () => {
  let stack: TestStack;
  let messageId: string;
  let sessionId: string;

  beforeAll(async () => {
    stack = await startTestStack({ BASE_URL: 'http://mailkit.test:3000' });
    // BASE_URL's name does not resolve here: the state is made without following its links.
    const checkout = await request(stack.url).post('/checkout/subscribe').send({ email: 'host@example.com', name: 'Host' }).expect(200);
    sessionId = new URL(checkout.body.checkout_url).pathname.split('/').pop()!;
    await stack.dodo.customers.create({ email: 'host@example.com', name: 'Host' });
    const sent = await stack.resend.emails.send({
      from: 'a@example.com',
      to: 'host@example.com',
      subject: 'Your key',
      html: '<p>mk_test_secret</p>',
    });
    messageId = sent.data!.id;
  });
  afterAll(async () => {
    await stack?.close();
  });

  const foreign = (host: string) => {
    const get = (path: string) => request(stack.url).get(path).set('Host', host);
    const post = (path: string, body: object = {}) => request(stack.url).post(path).set('Host', host).send(body);
    return { get, post };
  };

  const sandboxGets = () => [
    '/sandbox',
    '/sandbox/api/customers',
    '/sandbox/api/webhooks',
    '/sandbox/api/clock',
    '/sandbox/outbox',
    '/sandbox/outbox/messages',
    `/sandbox/outbox/messages/${messageId}`,
    `/sandbox/outbox/${messageId}`,
    `/sandbox/outbox/${messageId}/html`,
    `/sandbox/checkout/${sessionId}`,
    '/sandbox/assets/outbox.js',
    '/sandbox/dodo/customers',
    `/sandbox/resend/emails/${messageId}`,
    '/',
    '/config',
    '/healthz',
  ];

  it.each(['evil.example', 'evil.example:3000', 'localhost.evil.example', '127.0.0.1.nip.io', 'EVIL.example.'])(
    'Host: %s gets 403 on every sandbox page and API',
    async (host) => {
      for (const path of sandboxGets()) {
        const r = await foreign(host).get(path).set('Authorization', 'Bearer x');
        expect(r.status, `GET ${path}`).toBe(403);
        expect(r.body.error?.code, `GET ${path}`).toBe('host_not_allowed');
        expect(r.text).not.toContain('mk_test_');
      }
    },
  );

  it('a foreign Host changes nothing: no clock advance, no adjustment, no outbox clear, no payment, no email', async () => {
    const before = {
      now: stack.sandbox.dodo.now().getTime(),
      messages: stack.sandbox.resend.messages().length,
      customers: JSON.stringify(stack.sandbox.dodo.customers()),
    };
    const evil = foreign('evil.example');
    expect((await evil.post('/sandbox/api/clock/advance', { cycles: 1 })).status).toBe(403);
    const customerId = stack.sandbox.dodo.customers()[0]!.customer_id;
    expect((await evil.post(`/sandbox/api/customers/${customerId}/adjust`, { amount: -4000 })).status).toBe(403);
    expect((await request(stack.url).delete('/sandbox/outbox/messages').set('Host', 'evil.example')).status).toBe(403);
    expect((await evil.post(`/sandbox/checkout/${sessionId}/pay`)).status).toBe(403);
    expect(
      (
        await evil
          .post('/sandbox/resend/emails', { from: 'a@example.com', to: 'b@example.com', subject: 's', html: 'x' })
          .set('Authorization', 'Bearer re_x')
      ).status,
    ).toBe(403);
    expect((await evil.post('/checkout/subscribe', { email: 'evil@example.com', name: 'Evil' })).status).toBe(403);
    expect(stack.sandbox.dodo.now().getTime() - before.now).toBeLessThan(60_000);
    expect(stack.sandbox.resend.messages().length).toBe(before.messages);
    expect(JSON.stringify(stack.sandbox.dodo.customers())).toBe(before.customers);
  });

  it('X-Forwarded-Host cannot stand in for the Host header', async () => {
    const r = await foreign('evil.example').get('/sandbox/outbox/messages').set('X-Forwarded-Host', 'localhost');
    expect(r.status).toBe(403);
  });

  it.each(['localhost', 'localhost:3000', '127.0.0.1:49152', '127.1.2.3', '[::1]:3000', 'mailkit.test:3000', 'MailKit.test'])(
    'Host: %s is answered (the port is not compared)',
    async (host) => {
      await request(stack.url).get('/sandbox/outbox/messages').set('Host', host).expect(200);
      await request(stack.url).get('/healthz').set('Host', host).expect(200);
    },
  );

  it('names localhost, the loopback addresses, BASE_URL and HOST (not a wildcard)', () => {
    expect([...allowedHostNames({ baseUrl: 'https://abc.ngrok-free.app', host: '0.0.0.0' })].sort()).toEqual([
      '::1',
      'abc.ngrok-free.app',
      'localhost',
    ]);
    expect(allowedHostNames({ baseUrl: 'http://localhost:3000', host: '192.168.1.20' }).has('192.168.1.20')).toBe(true);
    expect(allowedHostNames({ baseUrl: 'http://[::1]:3000', host: '::' }).has('::')).toBe(false);
  });
});

describe('allowed hosts (live mode)', () => {
  it('answers any Host: behind a proxy or a load balancer the name is theirs to choose', async () => {
    const stack = await startStack(loadConfig(LIVE_ENV), { inMemory: true, log: createLogger('silent') });
    try {
      await request(stack.url).get('/healthz').set('Host', '10.0.0.7:8080').expect(200);
    } finally {
      await stack.close();
    }
  });
});
