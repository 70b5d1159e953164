import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resend } from 'resend';
import { afterEach, describe, expect, it } from 'vitest';
import { email, newSecret, startReceiver, startSandbox, type Harness } from './harness';

let h: Harness;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
const secret = newSecret();
// Only its webhooks.verify is used: it checks a delivery exactly as a MailKit receiver would.
const sdk = new Resend('re_test_123');

afterEach(async () => {
  await h?.close();
  await receiver?.close();
  receiver = undefined as never;
});

async function start(webhooks: { retryDelaysMs?: number[]; enabled?: boolean; url?: string } = {}) {
  receiver = await startReceiver();
  h = await startSandbox({ webhooks: { secret, url: receiver.url, retryDelaysMs: [10, 10, 10], ...webhooks } });
}

async function send(overrides: Record<string, unknown> = {}): Promise<string> {
  const { data, error } = await h.resend.emails.send(email(overrides) as never);
  expect(error).toBeNull();
  return data!.id;
}

describe('Resend sandbox webhooks (email events)', () => {
  describe('for the resend.dev test addresses and any other address', () => {
    it.each([
      ['delivered@resend.dev', ['email.sent', 'email.delivered']],
      ['delivered+signup@resend.dev', ['email.sent', 'email.delivered']],
      ['bounced@resend.dev', ['email.sent', 'email.bounced']],
      ['Bounced+Label@Resend.dev', ['email.sent', 'email.bounced']],
      ['complained@resend.dev', ['email.sent', 'email.delivered', 'email.complained']],
      ['complained+x@resend.dev', ['email.sent', 'email.delivered', 'email.complained']],
      ['Ada <ada@example.com>', ['email.sent', 'email.delivered']],
    ])('%s → %j, in order, each signed with its own svix-id', async (to, types) => {
      await start();
      const id = await send({ to });
      await h.sandbox.webhooks.idle();

      const events = receiver.of(id);
      expect(events.map((e) => e.type)).toEqual(types);
      expect(new Set(events.map((e) => e.headers.id)).size).toBe(types.length);
      for (const e of events) {
        expect(e.headers.id).toMatch(/^msg_[0-9A-Za-z]{27}$/);
        // The real SDK accepts the signature and hands back the same event.
        const verified = sdk.webhooks.verify({ payload: e.raw, headers: e.headers, webhookSecret: secret });
        expect(verified).toEqual(e.payload);
        expect(e.payload.data).toMatchObject({ email_id: id, from: 'MailKit <no-reply@mailkit.dev>', to: [to], subject: 'Hello' });
      }
      // created_at orders them too (each event one millisecond after the one before).
      const times = events.map((e) => Date.parse(e.payload.created_at));
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      expect(new Set(times).size).toBe(times.length);
    });

    it('lets the worst outcome among to, cc and bcc decide; a bounce is one event per bounced recipient, naming it in `to`', async () => {
      await start();
      const id = await send({ to: ['delivered@resend.dev', 'bounced+a@resend.dev'], cc: ['complained@resend.dev'], bcc: ['bounced+b@resend.dev'] });
      await h.sandbox.webhooks.idle();
      const events = receiver.of(id);
      expect(events.map((e) => e.type)).toEqual(['email.sent', 'email.bounced', 'email.bounced']);
      expect(events[0]!.payload.data.to).toEqual(['delivered@resend.dev', 'bounced+a@resend.dev']);
      for (const [i, recipient] of [
        [1, 'bounced+a@resend.dev'],
        [2, 'bounced+b@resend.dev'],
      ] as const) {
        expect(events[i]!.payload.data.to).toEqual([recipient]);
        expect(events[i]!.payload.data.bounce).toEqual({
          type: 'Permanent',
          subType: 'General',
          message: expect.any(String),
          diagnosticCode: [expect.stringContaining(`<${recipient}>`)],
        });
      }
    });

    it('a complaint is one event per complaining recipient, naming it alone in `to`', async () => {
      await start();
      const id = await send({ to: ['complained@resend.dev', 'client@example.com'] });
      await h.sandbox.webhooks.idle();
      const events = receiver.of(id);
      expect(events.map((e) => [e.type, e.payload.data.to])).toEqual([
        ['email.sent', ['complained@resend.dev', 'client@example.com']],
        ['email.delivered', ['complained@resend.dev', 'client@example.com']],
        ['email.complained', ['complained@resend.dev']],
      ]);
    });

    it('carries tags as an object and custom headers as a list, and omits both when there are none', async () => {
      await start();
      const tagged = await send({ tags: [{ name: 'category', value: 'receipt' }], headers: { 'X-Entity-Ref-ID': 'order-42' } });
      const plain = await send();
      await h.sandbox.webhooks.idle();
      expect(receiver.of(tagged)[0]!.payload.data).toMatchObject({
        tags: { category: 'receipt' },
        headers: [{ name: 'X-Entity-Ref-ID', value: 'order-42' }],
      });
      expect(receiver.of(plain)[0]!.payload.data).not.toHaveProperty('tags');
      expect(receiver.of(plain)[0]!.payload.data).not.toHaveProperty('headers');
    });
  });

  describe('signatures', () => {
    it('are refused by the SDK under another secret, or when the body or timestamp was altered', async () => {
      await start();
      await send();
      await h.sandbox.webhooks.idle();
      const e = receiver.received[0]!;
      expect(() => sdk.webhooks.verify({ payload: e.raw, headers: e.headers, webhookSecret: newSecret() })).toThrow();
      expect(() => sdk.webhooks.verify({ payload: e.raw.replace('Hello', 'Hellp'), headers: e.headers, webhookSecret: secret })).toThrow();
      expect(() =>
        sdk.webhooks.verify({ payload: e.raw, headers: { ...e.headers, timestamp: String(Number(e.headers.timestamp) - 1) }, webhookSecret: secret }),
      ).toThrow();
    });
  });

  describe('a batch', () => {
    it('produces each email its own events, each email in order', async () => {
      await start();
      const { data, error } = await h.resend.batch.send([
        email({ to: 'delivered@resend.dev' }),
        email({ to: 'bounced@resend.dev' }),
        email({ to: 'complained@resend.dev' }),
      ] as never);
      expect(error).toBeNull();
      await h.sandbox.webhooks.idle();
      const [a, b, c] = data!.data.map((d) => d.id);
      expect(receiver.of(a!).map((e) => e.type)).toEqual(['email.sent', 'email.delivered']);
      expect(receiver.of(b!).map((e) => e.type)).toEqual(['email.sent', 'email.bounced']);
      expect(receiver.of(c!).map((e) => e.type)).toEqual(['email.sent', 'email.delivered', 'email.complained']);
      expect(receiver.received).toHaveLength(7);
    });

    it('is not re-emitted when an idempotent request is replayed', async () => {
      await start();
      const first = await h.resend.emails.send(email() as never, { idempotencyKey: 'once' });
      const again = await h.resend.emails.send(email() as never, { idempotencyKey: 'once' });
      expect(again.data!.id).toBe(first.data!.id);
      await h.sandbox.webhooks.idle();
      expect(receiver.received.map((e) => e.type)).toEqual(['email.sent', 'email.delivered']);
    });
  });

  describe('when the receiver answers non-2xx', () => {
    it("retries on the schedule and holds back the email's later events until the earlier one is taken", async () => {
      await start({ retryDelaysMs: [10, 10, 10, 10] });
      let refusals = 2;
      receiver.state.answer = (e) => (e.type === 'email.sent' && refusals-- > 0 ? 503 : 200);
      const id = await send({ to: 'complained@resend.dev' });
      await h.sandbox.webhooks.idle();

      expect(receiver.of(id).map((e) => e.type)).toEqual(['email.sent', 'email.delivered', 'email.complained']);
      const log = h.sandbox.webhooks.list().reverse(); // oldest first
      expect(log.map((d) => [d.type, d.state, d.attempts.map((a) => a.status)])).toEqual([
        ['email.sent', 'delivered', [503, 503, 200]],
        ['email.delivered', 'delivered', [200]],
        ['email.complained', 'delivered', [200]],
      ]);
      expect(log[0]!.attempts[0]!.response).toBe('{"received":false}');
      // Every attempt of one delivery carries the same svix-id; the receiver took it once.
      expect(receiver.of(id)[0]!.headers.id).toBe(log[0]!.id);
    });

    it('marks a delivery failed after the last retry, moves on, and Redeliver resends the same svix-id and bytes', async () => {
      await start({ retryDelaysMs: [10] });
      receiver.state.answer = (e) => (e.type === 'email.sent' ? 500 : 200);
      const id = await send();
      await h.sandbox.webhooks.idle();
      const [delivered, sent] = h.sandbox.webhooks.list();
      expect(sent).toMatchObject({ type: 'email.sent', state: 'failed' });
      expect(sent!.attempts.map((a) => a.status)).toEqual([500, 500]);
      expect(delivered).toMatchObject({ type: 'email.delivered', state: 'delivered' });
      expect(receiver.of(id).map((e) => e.type)).toEqual(['email.delivered']);

      receiver.state.answer = () => 200;
      await h.sandbox.webhooks.redeliver(sent!.id);
      const redelivered = receiver.of(id).at(-1)!;
      expect(redelivered.headers.id).toBe(sent!.id);
      expect(redelivered.payload).toEqual(sent!.payload);
      expect(sdk.webhooks.verify({ payload: redelivered.raw, headers: redelivered.headers, webhookSecret: secret }).type).toBe('email.sent');
      expect(h.sandbox.webhooks.list()[1]).toMatchObject({ id: sent!.id, state: 'delivered' });
    });

    it('records a receiver that is not there as attempts without a status; the send itself is unaffected', async () => {
      await start({ retryDelaysMs: [10], url: 'http://127.0.0.1:9/webhooks/resend' });
      const id = await send();
      await h.sandbox.webhooks.idle();
      const [sent] = h.sandbox.webhooks.list().reverse();
      expect(sent).toMatchObject({ type: 'email.sent', state: 'failed', url: 'http://127.0.0.1:9/webhooks/resend' });
      expect(sent!.attempts).toEqual([
        expect.objectContaining({ status: null, error: expect.any(String) }),
        expect.objectContaining({ status: null, error: expect.any(String) }),
      ]);
      expect((await h.resend.emails.get(id)).data?.last_event).toBe('delivered');
    });
  });

  describe('across a restart', () => {
    it('keeps pending deliveries in the data file and delivers them, in order, once back', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mailkit-resend-webhooks-'));
      try {
        const dataFile = join(dir, 'sandbox-resend.json');
        receiver = await startReceiver();
        receiver.state.answer = () => 503;
        const webhooks = { secret, url: receiver.url, retryDelaysMs: Array.from({ length: 50 }, () => 100) };
        h = await startSandbox({ dataFile, webhooks });
        const id = await send({ to: 'complained@resend.dev' });
        while (!h.sandbox.webhooks.list().some((d) => d.attempts.length > 0)) await new Promise((r) => setTimeout(r, 10));
        await h.close();

        receiver.state.answer = () => 200;
        h = await startSandbox({ dataFile, webhooks });
        await h.sandbox.webhooks.idle();
        expect(receiver.of(id).map((e) => e.type)).toEqual(['email.sent', 'email.delivered', 'email.complained']);
        expect(h.sandbox.webhooks.list().every((d) => d.state === 'delivered')).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('when emission is off', () => {
    it('accepts emails and emits nothing, until it is turned back on', async () => {
      await start({ enabled: false });
      expect(h.sandbox.webhooks.enabled()).toBe(false);
      await send();
      await h.sandbox.webhooks.idle();
      expect(h.sandbox.webhooks.list()).toEqual([]);
      expect(receiver.state.attempts).toBe(0);

      h.sandbox.webhooks.setEnabled(true);
      const id = await send();
      await h.sandbox.webhooks.idle();
      expect(receiver.received.map((e) => [e.type, e.payload.data.email_id])).toEqual([
        ['email.sent', id],
        ['email.delivered', id],
      ]);
    });

    it('is off without webhook options', async () => {
      h = await startSandbox();
      await h.resend.emails.send(email() as never);
      expect(h.sandbox.webhooks.enabled()).toBe(false);
      expect(h.sandbox.webhooks.list()).toEqual([]);
    });
  });
});
