import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, ENGINES, startTestStack, storedSecrets, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/** A Resend email event as Resend posts it: Svix headers, signed over the exact bytes sent. */
function signedEvent(
  secret: string,
  event: { type: string; emailId: string; at?: Date; extra?: Record<string, unknown> },
  opts: { id?: string; timestamp?: Date } = {},
) {
  const id = opts.id ?? `msg_${randomBytes(12).toString('hex')}`;
  const timestamp = opts.timestamp ?? new Date();
  const body = JSON.stringify({
    type: event.type,
    created_at: (event.at ?? new Date()).toISOString(),
    data: {
      email_id: event.emailId,
      created_at: new Date().toISOString(),
      from: 'MailKit <onboarding@resend.dev>',
      to: ['someone@example.com'],
      subject: 'Hi',
      ...event.extra,
    },
  });
  const signature = new Webhook(secret).sign(id, timestamp, body);
  return {
    id,
    body,
    headers: {
      'svix-id': id,
      'svix-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
      'svix-signature': signature,
      'Content-Type': 'application/json',
    },
  };
}

describe.each(ENGINES)('POST /webhooks/resend (%s)', (engine) => {
  let stack: TestStack;
  let key: string;
  let secret: string;

  const post = (e: ReturnType<typeof signedEvent>) => request(stack.url).post('/webhooks/resend').set(e.headers).send(e.body);
  const email = async (id: string) => (await request(stack.url).get(`/emails/${id}`).set(bearer(key)).expect(200)).body;
  const suppressed = async () =>
    (await request(stack.url).get('/suppressions').set(bearer(key)).expect(200)).body.data.map((s: { email: string }) => s.email).sort();
  let n = 0;
  const send = async (to = `r${++n}@example.com`) =>
    (await request(stack.url).post('/send').set(bearer(key)).send({ to, subject: 'Hi', html: '<p>Hi</p>' }).expect(200)).body.id as string;

  beforeAll(async () => {
    stack = await startTestStack({}, { engine });
    ({ key } = await subscribe(stack, `events-${engine}@example.com`, 'Eve'));
    secret = (await storedSecrets(stack)).sandboxResendWebhookSecret!;
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("receives the sandbox's own signed events: a sent email ends delivered, each event listed with its time", async () => {
    const id = await send('delivered@resend.dev');
    await stack.sandbox.resend.webhooks.idle();
    const body = await email(id);
    expect(body).toMatchObject({ id, status: 'delivered', to: ['delivered@resend.dev'], credits: 1 });
    expect(body.events.map((e: { type: string }) => e.type)).toEqual(['email.sent', 'email.delivered']);
    for (const e of body.events) expect(Number.isNaN(Date.parse(e.at))).toBe(false);
    // Every delivery the sandbox made was answered 2xx: nothing waits for a retry.
    expect(stack.sandbox.resend.webhooks.list().every((d) => d.state === 'delivered')).toBe(true);
  });

  describe('with the sandbox sending no events (this suite signs its own)', () => {
    beforeAll(() => stack.sandbox.resend.webhooks.setEnabled(false));
    afterAll(() => stack.sandbox.resend.webhooks.setEnabled(true));

    it('an email Resend accepted is queued until its first event; a signed email.sent makes it sent', async () => {
      const id = await send();
      expect((await email(id)).status).toBe('queued');
      const res = await post(signedEvent(secret, { type: 'email.sent', emailId: id })).expect(200);
      expect(res.body).toEqual({ received: true });
      const after = await email(id);
      expect(after.status).toBe('sent');
      expect(after.events).toEqual([expect.objectContaining({ type: 'email.sent', detail: null })]);
    });

    it('a forged signature (another secret) is 401 and changes nothing', async () => {
      const id = await send();
      const forged = signedEvent(`whsec_${randomBytes(32).toString('base64')}`, { type: 'email.delivered', emailId: id });
      const res = await post(forged).expect(401);
      expect(res.body.error.code).toBe('invalid_signature');
      // A body altered after signing fails the same way.
      const real = signedEvent(secret, { type: 'email.delivered', emailId: id });
      await request(stack.url).post('/webhooks/resend').set(real.headers).send(real.body.replace('email.delivered', 'email.bounced')).expect(401);
      await request(stack.url).post('/webhooks/resend').send(real.body).set('Content-Type', 'application/json').expect(401);
      expect(await email(id)).toMatchObject({ status: 'queued', events: [] });
    });

    it('a stale event (signed 10 minutes ago, a replayed capture) is 401 and changes nothing', async () => {
      const id = await send();
      const stale = signedEvent(secret, { type: 'email.delivered', emailId: id }, { timestamp: new Date(Date.now() - 10 * 60_000) });
      await post(stale).expect(401);
      expect(await email(id)).toMatchObject({ status: 'queued', events: [] });
    });

    it('the same svix-id twice (a redelivery) is acknowledged as a duplicate and recorded once', async () => {
      const id = await send();
      const first = signedEvent(secret, { type: 'email.sent', emailId: id });
      await post(first).expect(200);
      const again = signedEvent(secret, { type: 'email.sent', emailId: id }, { id: first.id });
      expect((await post(again).expect(200)).body).toEqual({ received: true, duplicate: true });
      expect((await email(id)).events).toHaveLength(1);
    });

    it('out of order: a late email.sent never moves a delivered email back; a complaint still moves it on', async () => {
      const id = await send();
      const t = Date.now();
      await post(signedEvent(secret, { type: 'email.delivered', emailId: id, at: new Date(t + 1) })).expect(200);
      await post(signedEvent(secret, { type: 'email.sent', emailId: id, at: new Date(t) })).expect(200);
      await post(signedEvent(secret, { type: 'email.delivery_delayed', emailId: id, at: new Date(t) })).expect(200);
      const after = await email(id);
      expect(after.status).toBe('delivered');
      // Listed in the order they happened, not the order they arrived.
      expect(after.events.map((e: { type: string }) => e.type)).toEqual(['email.sent', 'email.delivery_delayed', 'email.delivered']);
      await post(signedEvent(secret, { type: 'email.complained', emailId: id, at: new Date(t + 5) })).expect(200);
      expect((await email(id)).status).toBe('complained');
      await post(signedEvent(secret, { type: 'email.delivered', emailId: id, at: new Date(t + 6) })).expect(200);
      expect((await email(id)).status).toBe('complained');
    });

    it('records email.failed and email.suppressed with their reason', async () => {
      const failedId = await send();
      await post(signedEvent(secret, { type: 'email.failed', emailId: failedId, extra: { failed: { reason: 'reached_daily_quota' } } })).expect(200);
      expect(await email(failedId)).toMatchObject({ status: 'failed', events: [{ type: 'email.failed', detail: 'reached_daily_quota' }] });
      const suppressedId = await send('gone@example.com');
      const suppressed = {
        reason: 'previous_bounce',
        type: 'OnAccountSuppressionList',
        message: 'The address is on the account suppression list.',
        diagnosticCode: [],
      };
      await post(signedEvent(secret, { type: 'email.suppressed', emailId: suppressedId, extra: { to: ['gone@example.com'], suppressed } })).expect(
        200,
      );
      expect((await email(suppressedId)).status).toBe('suppressed');
    });

    it('a bounce suppresses the recipient it names, never an address its diagnostic text mentions', async () => {
      const before = await suppressed();
      const id = await send('real@example.com');
      const bounce = {
        type: 'Permanent',
        subType: 'General',
        message: 'Rejected',
        // Text written by the remote mail server: it may name any address it likes.
        diagnosticCode: ['smtp; 550 5.1.1 <victim@example.com>: Recipient address rejected', 'smtp; 550 forwarded to <boss@example.com> failed'],
      };
      await post(signedEvent(secret, { type: 'email.bounced', emailId: id, extra: { to: ['real@example.com'], bounce } })).expect(200);
      expect((await email(id)).status).toBe('bounced');
      expect((await suppressed()).filter((a: string) => !before.includes(a))).toEqual(['real@example.com']);
      await request(stack.url).delete('/suppressions/real%40example.com').set(bearer(key)).expect(200);
    });

    it('an event naming several recipients suppresses none of them (which one bounced or complained is unknown), and says so', async () => {
      const before = await suppressed();
      const id = await send('one@example.com');
      await post(signedEvent(secret, { type: 'email.complained', emailId: id, extra: { to: ['one@example.com', 'two@example.com'] } })).expect(200);
      const after = await email(id);
      expect(after.status).toBe('complained');
      expect(after.events.at(-1).detail).toMatch(/names 2 recipients: none suppressed/);
      expect(await suppressed()).toEqual(before);
    });

    it('event types named after built-in object properties are acknowledged and ignored, every time they are delivered', async () => {
      const id = await send();
      for (const type of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
        const first = signedEvent(secret, { type, emailId: id });
        expect((await post(first).expect(200)).body).toEqual({ received: true });
        // Nothing was recorded under its svix-id: a redelivery is not taken for a duplicate.
        const again = signedEvent(secret, { type, emailId: id }, { id: first.id });
        expect((await post(again).expect(200)).body).toEqual({ received: true });
      }
      expect(await email(id)).toMatchObject({ status: 'queued', events: [] });
      const real = signedEvent(secret, { type: 'email.delivered', emailId: id });
      expect((await post(real).expect(200)).body).toEqual({ received: true });
      expect((await email(id)).status).toBe('delivered');
    });

    it('an event that could not be applied is not recorded: its redelivery applies it', async () => {
      const id = await send();
      const failUpdates =
        engine === 'sqlite'
          ? ["create temp trigger fail_email_update before update on emails begin select raise(abort, 'injected failure'); end"]
          : [
              'create or replace function fail_email_update() returns trigger language plpgsql as ' +
                "$$ begin raise exception 'injected failure'; end $$",
              'create trigger fail_email_update before update on emails for each row execute function fail_email_update()',
            ];
      const healUpdates =
        engine === 'sqlite' ? ['drop trigger fail_email_update'] : ['drop trigger fail_email_update on emails', 'drop function fail_email_update()'];
      const event = signedEvent(secret, { type: 'email.delivered', emailId: id });
      for (const statement of failUpdates) await sql.raw(statement).execute(stack.database.db);
      try {
        expect((await post(event)).status).toBe(500);
      } finally {
        for (const statement of healUpdates) await sql.raw(statement).execute(stack.database.db);
      }
      const redelivery = signedEvent(secret, { type: 'email.delivered', emailId: id }, { id: event.id });
      expect((await post(redelivery).expect(200)).body).toEqual({ received: true });
      expect(await email(id)).toMatchObject({ status: 'delivered', events: [expect.objectContaining({ type: 'email.delivered' })] });
    });

    it('a malformed email event is 400; a type MailKit does not track is 200; neither changes anything', async () => {
      const id = await send();
      const bad = signedEvent(secret, { type: 'email.delivered', emailId: id });
      const broken = JSON.stringify({ type: 'email.delivered', created_at: 'yesterday', data: {} });
      const headers = {
        ...bad.headers,
        'svix-signature': new Webhook(secret).sign(bad.id, new Date(), broken),
        'svix-timestamp': String(Math.floor(Date.now() / 1000)),
      };
      expect((await request(stack.url).post('/webhooks/resend').set(headers).send(broken).expect(400)).body.error.code).toBe('malformed_payload');
      await post(signedEvent(secret, { type: 'email.opened', emailId: id })).expect(200);
      expect(await email(id)).toMatchObject({ status: 'queued', events: [] });
    });
  });
});
