import { Resend, type WebhookEventPayload } from 'resend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertWebhookMatchesSpec, loadSpec } from '../support/openapi';
import { email, newSecret, startReceiver, startSandbox, type Harness } from '../sandbox/resend/harness';

/**
 * Every email event the Resend sandbox emits, as a receiver gets it, checked against the
 * `webhooks` section of Resend's official spec (`resend-openapi-1.5.0.yaml`: EmailSentEvent,
 * EmailDeliveredEvent, EmailBouncedEvent, EmailComplainedEvent…) and verified by the real SDK.
 */
describe('Resend sandbox webhooks against resend-openapi-1.5.0.yaml', () => {
  let h: Harness;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const secret = newSecret();
  const verified: WebhookEventPayload[] = [];

  beforeAll(async () => {
    receiver = await startReceiver();
    h = await startSandbox({ webhooks: { secret, url: receiver.url } });
    const fields = { tags: [{ name: 'category', value: 'receipt' }], headers: { 'X-Entity-Ref-ID': 'order-42' }, cc: 'cc@example.com' };
    for (const to of ['delivered@resend.dev', 'bounced+x@resend.dev', 'complained@resend.dev', 'someone@example.com']) {
      const plain = await h.resend.emails.send(email({ to }) as never);
      const full = await h.resend.emails.send(email({ to: ['Ann <ann@example.com>', to], ...fields }) as never);
      expect([plain.error, full.error]).toEqual([null, null]);
    }
    await h.resend.batch.send([email({ to: 'delivered+batch@resend.dev' }), email({ to: 'bounced+batch@resend.dev' })] as never);
    await h.sandbox.webhooks.idle();
    const sdk = new Resend('re_test_123');
    for (const e of receiver.received) verified.push(sdk.webhooks.verify({ payload: e.raw, headers: e.headers, webhookSecret: secret }));
  });
  afterAll(async () => {
    await h?.close();
    await receiver?.close();
  });

  it('emitted every email event type the sandbox produces', () => {
    expect(new Set(verified.map((e) => e.type))).toEqual(new Set(['email.sent', 'email.delivered', 'email.bounced', 'email.complained']));
    expect(verified).toHaveLength(receiver.received.length);
  });

  it('declares each of those types in the spec’s webhooks section', () => {
    const webhooks = (loadSpec('resend') as { webhooks?: Record<string, unknown> }).webhooks ?? {};
    for (const type of new Set(verified.map((e) => e.type))) expect(Object.keys(webhooks)).toContain(type);
  });

  it('sends payloads that validate against the spec’s schema for their type', () => {
    for (const event of verified) assertWebhookMatchesSpec(event.type, event, 'resend');
  });

  it('is a check that bites: a payload without email_id, or with a bounce subType the spec does not list, fails it', () => {
    const sent = verified.find((e) => e.type === 'email.sent')!;
    const bounced = verified.find((e) => e.type === 'email.bounced')!;
    const { email_id: _dropped, ...noId } = (sent as Extract<WebhookEventPayload, { type: 'email.sent' }>).data;
    expect(() => assertWebhookMatchesSpec('email.sent', { ...sent, data: noId }, 'resend')).toThrow(/email_id/);
    const b = bounced as Extract<WebhookEventPayload, { type: 'email.bounced' }>;
    expect(() =>
      assertWebhookMatchesSpec('email.bounced', { ...b, data: { ...b.data, bounce: { ...b.data.bounce, subType: 'Suppressed' } } }, 'resend'),
    ).toThrow();
  });

  it('fills the SDK’s required BaseEmailEventData fields, message_id included', () => {
    for (const event of verified) {
      if (!event.type.startsWith('email.')) throw new Error(`unexpected ${event.type}`);
      const data = (event as Extract<WebhookEventPayload, { type: 'email.sent' }>).data;
      expect(data).toMatchObject({
        email_id: expect.any(String),
        message_id: expect.stringMatching(/^<.+@.+>$/),
        created_at: expect.any(String),
        from: expect.any(String),
        to: expect.any(Array),
        subject: expect.any(String),
      });
      expect(new Date(data.created_at).toISOString()).toBe(data.created_at);
    }
  });
});
