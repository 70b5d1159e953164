import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertRequestMatchesSpec, assertResponseMatchesSpec } from '../../support/openapi';
import { email, expectResendError, startSandbox, type Harness } from './harness';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let h: Harness;
beforeEach(async () => {
  h = await startSandbox();
});
afterEach(async () => {
  await h.close();
});

describe('POST /emails', () => {
  it('accepts a send from the real SDK and lands it in the outbox with every field', async () => {
    const { data, error } = await h.resend.emails.send({
      from: 'MailKit <no-reply@mailkit.dev>',
      to: ['ada@example.com', 'Bob <bob@example.com>'],
      cc: 'carol@example.com',
      bcc: ['dave@example.com'],
      replyTo: 'support@mailkit.dev',
      subject: 'Your receipt',
      html: '<p>Thanks!</p>',
      text: 'Thanks!',
      headers: { 'X-Entity-Ref-ID': 'abc123' },
      tags: [{ name: 'category', value: 'receipt' }],
    });
    expect(error).toBeNull();
    assertResponseMatchesSpec('resend', 'post', '/emails', 200, data);
    expect(data!.id).toMatch(UUID);

    const [message, ...rest] = h.sandbox.messages();
    expect(rest).toHaveLength(0);
    expect(message).toMatchObject({
      id: data!.id,
      from: 'MailKit <no-reply@mailkit.dev>',
      to: ['ada@example.com', 'Bob <bob@example.com>'],
      cc: ['carol@example.com'],
      bcc: ['dave@example.com'],
      replyTo: ['support@mailkit.dev'],
      subject: 'Your receipt',
      html: '<p>Thanks!</p>',
      text: 'Thanks!',
      headers: { 'X-Entity-Ref-ID': 'abc123' },
      tags: [{ name: 'category', value: 'receipt' }],
      lastEvent: 'delivered',
    });
    expect(Number.isNaN(Date.parse(message!.createdAt))).toBe(false);
  });

  it('keeps the outbox newest first', async () => {
    await h.resend.emails.send(email({ subject: 'first' }));
    await h.resend.emails.send(email({ subject: 'second' }));
    expect(h.sandbox.messages().map((m) => m.subject)).toEqual(['second', 'first']);
  });

  it('accepts a text-only email', async () => {
    const { data, error } = await h.resend.emails.send({ from: 'a@mailkit.dev', to: 'b@example.com', subject: 'Plain', text: 'Just text' });
    expect(error).toBeNull();
    expect(h.sandbox.messages()[0]).toMatchObject({ id: data!.id, html: null, text: 'Just text' });
  });

  describe('when a field is invalid', () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['subject is missing', { subject: undefined }, 'missing_required_field'],
      ['from is missing', { from: undefined }, 'missing_required_field'],
      ['to is missing', { to: undefined }, 'missing_required_field'],
      ['to is an empty list', { to: [] }, 'missing_required_field'],
      ['html and text are both missing', { html: undefined }, 'missing_required_field'],
      ['from is not an address', { from: 'not an address' }, 'validation_error'],
      ['from has a name but a broken address', { from: 'MailKit <no-reply@>' }, 'validation_error'],
      ['a to address is invalid', { to: ['ok@example.com', 'nope'] }, 'validation_error'],
      ['to has 51 addresses', { to: Array.from({ length: 51 }, (_, i) => `u${i}@example.com`) }, 'validation_error'],
      ['a cc address is invalid', { cc: 'nope' }, 'validation_error'],
      ['subject is not a string', { subject: 42 }, 'validation_error'],
      ['a header value is not a string', { headers: { 'X-A': 1 } }, 'validation_error'],
      ['a tag has forbidden characters', { tags: [{ name: 'has space', value: 'x' }] }, 'validation_error'],
      ['attachments are sent (unsupported offline)', { attachments: [{ filename: 'a.txt', content: 'aGk=' }] }, 'validation_error'],
    ];
    it.each(cases)('answers 422 when %s, and sends nothing', async (_label, overrides, name) => {
      const res = await h.api('/emails', { body: { ...email(), ...overrides } });
      expect(res.status).toBe(422);
      expectResendError(await res.json(), 422, name);
      expect(h.sandbox.messages()).toHaveLength(0);
    });

    it('surfaces the envelope through the SDK as `error`', async () => {
      const { data, error } = await h.resend.emails.send(email({ from: 'bad' }) as never);
      expect(data).toBeNull();
      expect(error).toMatchObject({ statusCode: 422, name: 'validation_error' });
      expect(error!.message).toContain('`from`');
    });

    it('accepts exactly 50 recipients', async () => {
      const body = email({ to: Array.from({ length: 50 }, (_, i) => `u${i}@example.com`) });
      assertRequestMatchesSpec('resend', 'post', '/emails', body);
      const res = await h.api('/emails', { body });
      expect(res.status).toBe(200);
      expect(h.sandbox.messages()[0]!.to).toHaveLength(50);
    });
  });

  it('answers 400 validation_error in the envelope for malformed JSON', async () => {
    const res = await h.api('/emails', { rawBody: '{"from": ' });
    expect(res.status).toBe(400);
    expectResendError(await res.json(), 400, 'validation_error');
  });
});

describe('the resend.dev test addresses', () => {
  const cases: Array<[string, string]> = [
    ['delivered@resend.dev', 'delivered'],
    ['bounced@resend.dev', 'bounced'],
    ['complained@resend.dev', 'complained'],
    ['delivered+abc@resend.dev', 'delivered'],
    ['bounced+signup-42@resend.dev', 'bounced'],
    ['Complained+x@Resend.dev', 'complained'],
    ['someone@example.com', 'delivered'],
  ];
  it.each(cases)('%s is accepted and ends as %s', async (to, lastEvent) => {
    const { data, error } = await h.resend.emails.send(email({ to }));
    expect(error).toBeNull();
    expect(h.sandbox.messages()[0]).toMatchObject({ id: data!.id, lastEvent });
    const got = await h.resend.emails.get(data!.id);
    expect(got.data!.last_event).toBe(lastEvent);
  });

  it('lets a bounce among several recipients win', async () => {
    await h.resend.emails.send(email({ to: ['delivered@resend.dev', 'complained@resend.dev'], bcc: 'bounced+x@resend.dev' }));
    expect(h.sandbox.messages()[0]!.lastEvent).toBe('bounced');
  });
});

describe('GET /emails/{email_id}', () => {
  it('returns the email in the spec shape', async () => {
    const sent = await h.resend.emails.send(email({ to: ['ada@example.com'], text: 'Hi', replyTo: 'r@mailkit.dev' }));
    const { data, error } = await h.resend.emails.get(sent.data!.id);
    expect(error).toBeNull();
    assertResponseMatchesSpec('resend', 'get', '/emails/{email_id}', 200, data);
    expect(data).toMatchObject({
      object: 'email',
      id: sent.data!.id,
      from: 'MailKit <no-reply@mailkit.dev>',
      to: ['ada@example.com'],
      subject: 'Hello',
      html: '<p>Hi there</p>',
      text: 'Hi',
      cc: [],
      bcc: [],
      reply_to: ['r@mailkit.dev'],
      last_event: 'delivered',
    });
    expect(data!.created_at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00$/);
  });

  it('omits a missing body part rather than sending null (the spec types it as a string)', async () => {
    const sent = await h.resend.emails.send({ from: 'a@mailkit.dev', to: 'b@example.com', subject: 'Plain', text: 'Only text' });
    const res = await h.api(`/emails/${sent.data!.id}`);
    const body = await res.json();
    assertResponseMatchesSpec('resend', 'get', '/emails/{email_id}', 200, body);
    expect(body).not.toHaveProperty('html');
  });

  it('answers 404 not_found for an unknown id and 422 invalid_parameter for a non-UUID', async () => {
    const missing = await h.api('/emails/4ef9a417-02e9-4d39-ad75-9611e0fcc33c');
    expect(missing.status).toBe(404);
    expectResendError(await missing.json(), 404, 'not_found');
    const bad = await h.api('/emails/not-a-uuid');
    expect(bad.status).toBe(422);
    expectResendError(await bad.json(), 422, 'invalid_parameter');
  });
});

describe('authentication and routing', () => {
  it('answers 401 missing_api_key without a bearer token, and sends nothing', async () => {
    for (const headers of [{ authorization: '' }, { authorization: 'Basic abc' }, { authorization: 'Bearer ' }]) {
      const res = await h.api('/emails', { body: email(), headers });
      expect(res.status).toBe(401);
      expectResendError(await res.json(), 401, 'missing_api_key');
    }
    expect(h.sandbox.messages()).toHaveLength(0);
  });

  it('accepts any non-empty key', async () => {
    const res = await h.api('/emails', { body: email(), headers: { authorization: 'Bearer anything-at-all' } });
    expect(res.status).toBe(200);
  });

  it('answers unknown routes with 404 and a wrong method with 405, in the envelope', async () => {
    const unknown = await h.api('/domains');
    expect(unknown.status).toBe(404);
    expectResendError(await unknown.json(), 404, 'not_found');
    const wrong = await h.api('/emails/batch', { method: 'GET' });
    expect(wrong.status).toBe(405);
    expectResendError(await wrong.json(), 405, 'method_not_allowed');
  });
});
