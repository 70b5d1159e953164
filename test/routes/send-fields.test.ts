import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balanceOf, bearer, ENGINES, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const full = {
  to: ['delivered+to1@resend.dev', 'delivered+to2@resend.dev'],
  cc: 'delivered+cc@resend.dev',
  bcc: ['delivered+bcc@resend.dev'],
  reply_to: ['support@example.com', 'billing@example.com'],
  subject: 'Your receipt №42 — ünïcödé',
  html: '<p>Thanks for your order</p>',
  text: 'Thanks for your order\nLine two',
  tags: [
    { name: 'category', value: 'receipt' },
    { name: 'order_id', value: 'A-42' },
  ],
  headers: { 'X-Entity-Ref-ID': 'ref-123', 'List-Unsubscribe': '<mailto:unsub@example.com>' },
};

describe.each(ENGINES)('the full send API: text, cc, bcc, reply_to, tags, headers (%s)', (engine) => {
  let stack: TestStack;
  let c: { key: string; customerId: string };
  const messageById = (id: string) => stack.sandbox.resend.messages().find((m) => m.id === id);

  beforeAll(async () => {
    stack = await startTestStack({}, { engine });
    c = await subscribe(stack, `fields-${engine}@example.com`, 'Fields');
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('POST /send: every field reaches Resend intact, and the email costs one credit per recipient (to + cc + bcc = 4)', async () => {
    const before = await balanceOf(stack, c.key);
    const res = await request(stack.url).post('/send').set(bearer(c.key)).send(full).expect(200);
    const m = messageById(res.body.id)!;
    expect(m).toMatchObject({
      from: 'MailKit <onboarding@resend.dev>',
      to: full.to,
      cc: [full.cc],
      bcc: full.bcc,
      replyTo: full.reply_to,
      subject: full.subject,
      html: full.html,
      text: full.text,
      tags: full.tags,
      headers: full.headers,
    });
    expect(await balanceOf(stack, c.key)).toBe(before - 4);
  });

  it('a text-only email is fine; a single recipient still costs exactly one credit', async () => {
    const before = await balanceOf(stack, c.key);
    const res = await request(stack.url)
      .post('/send')
      .set(bearer(c.key))
      .send({ to: 'delivered@resend.dev', subject: 'Plain', text: 'Just text' })
      .expect(200);
    expect(messageById(res.body.id)).toMatchObject({ html: null, text: 'Just text', cc: [], bcc: [], replyTo: [], tags: [], headers: {} });
    expect(await balanceOf(stack, c.key)).toBe(before - 1);
  });

  it('POST /send/batch: each item carries its own fields through the batched call; the debit is the sum of recipients', async () => {
    const before = await balanceOf(stack, c.key);
    const second = { to: 'delivered+b@resend.dev', subject: 'Second', text: 'two', tags: [{ name: 'n', value: '2' }] };
    const res = await request(stack.url)
      .post('/send/batch')
      .set(bearer(c.key))
      .send({ emails: [full, second] })
      .expect(200);
    expect(res.body).toMatchObject({ sent: 2, failed: 0 });
    const [a, b] = res.body.data.map((d: { id: string }) => messageById(d.id)!);
    expect(a).toMatchObject({
      to: full.to,
      cc: [full.cc],
      bcc: full.bcc,
      replyTo: full.reply_to,
      text: full.text,
      tags: full.tags,
      headers: full.headers,
    });
    expect(b).toMatchObject({ to: ['delivered+b@resend.dev'], cc: [], html: null, text: 'two', tags: [{ name: 'n', value: '2' }], headers: {} });
    expect(await balanceOf(stack, c.key)).toBe(before - 5);
  });

  it('a batch of 100 emails of 3 recipients each is refused 402 when 300 credits are not there, sending nothing', async () => {
    // The sends above may have left credits leased ahead: back to Dodo first, so that its
    // balance is all the customer has.
    await stack.credits.settleNow();
    await stack.sandbox.dodo.adjustBalance(c.customerId, stack.catalog.creditEntitlementId, -(await balanceOf(stack, c.key)) + 299, 'test');
    await stack.sandbox.dodo.webhooks.idle();
    const sent = stack.sandbox.resend.messages().length;
    const emails = Array.from({ length: 100 }, (_, i) => ({
      to: `delivered+${i}@resend.dev`,
      cc: 'delivered+c@resend.dev',
      bcc: 'delivered+b@resend.dev',
      subject: 's',
      text: 't',
    }));
    const res = await request(stack.url).post('/send/batch').set(bearer(c.key)).send({ emails }).expect(402);
    expect(res.body.error.message).toMatch(/one credit per recipient/i);
    expect(stack.sandbox.resend.messages().length).toBe(sent);
    expect(await balanceOf(stack, c.key)).toBe(299);
  });

  describe('validated as Resend validates them: a 400 naming the field, nothing sent or charged', () => {
    /** [case, change to a valid email, the field the message starts with, what it says]. */
    const cases: Array<[string, Record<string, unknown>, string, string]> = [
      ['neither html nor text', { html: undefined }, 'html', 'needs an html or a text body'],
      ['text as a number', { text: 42 }, 'text', 'must be a string'],
      ['cc not an address', { cc: 'nobody' }, 'cc', 'must be a valid email address'],
      ['bcc with CR/LF (header injection)', { bcc: ['a@b.co\r\nX-Evil: 1'] }, 'bcc.0', 'must not contain line breaks'],
      ['reply_to empty list', { reply_to: [] }, 'reply_to', 'needs at least one'],
      ['more than 50 cc', { cc: Array.from({ length: 51 }, (_, i) => `c${i}@example.com`) }, 'cc', 'at most 50 addresses'],
      ['a tag with a space', { tags: [{ name: 'bad name', value: 'x' }] }, 'tags.0.name', 'may only contain ASCII letters'],
      ['a tag with an extra field', { tags: [{ name: 'a', value: 'b', colour: 'red' }] }, 'tags.0', 'unknown field(s): colour'],
      ['tags as an object', { tags: { a: 'b' } }, 'tags', 'must be an array'],
      [
        'a header value with CRLF (header injection)',
        { headers: { 'X-Ref': 'a\r\nBcc: victim@example.com' } },
        'headers.X-Ref',
        'must not contain line breaks',
      ],
      ['a header name with CRLF (header injection)', { headers: { 'X-Ref: 1\r\nBcc': 'x' } }, 'headers', 'holds an invalid header name'],
      ['a header overriding From', { headers: { from: 'ceo@bank.com' } }, 'headers.from', 'is set by MailKit'],
      ['a header overriding Bcc', { headers: { BCC: 'spy@example.com' } }, 'headers.BCC', 'is set by MailKit'],
      // The Resent-* family, authentication results and requests for mail to another address (README, Input limits).
      ...[
        'Resent-From',
        'Resent-Sender',
        'Resent-Bcc',
        'resent-message-id',
        'Authentication-Results',
        'ARC-Authentication-Results',
        'ARC-Seal',
        'X-MS-Exchange-Authentication-Results',
        'Received-SPF',
        'Disposition-Notification-To',
        'Return-Receipt-To',
      ].map((name): [string, Record<string, unknown>, string, string] => [
        `a ${name} header`,
        { headers: { [name]: 'ceo@bank.com' } },
        `headers.${name}`,
        'may not be set',
      ]),
      ['a header value not a string', { headers: { 'X-Count': 3 } }, 'headers.X-Count', 'must be a string'],
      ['attachments', { attachments: [{ filename: 'a.txt', content: 'aGk=' }] }, 'body', 'attachments are not supported'],
      ['scheduled sending', { scheduled_at: 'in 1 hour' }, 'body', 'scheduled sending is not supported'],
      ['a from field', { from: 'ceo@bank.com' }, 'body', 'unknown field(s): from'],
      ['an unknown field named after a built-in object property', { constructor: 'x' }, 'body', 'unknown field(s): constructor'],
    ];
    it.each([
      ['a header named __proto__', '{"to":"delivered@resend.dev","subject":"s","text":"t","headers":{"__proto__":"x","X-Ref":"kept"}}'],
      ['a __proto__ key spelled with an escape', '{"to":"delivered@resend.dev","subject":"s","text":"t","headers":{"\\u005f_proto__":"x"}}'],
    ])('%s: 400 invalid_json, nothing sent or charged (a JavaScript object cannot carry that key)', async (_name, raw) => {
      const before = stack.sandbox.resend.messages().length;
      const balance = await balanceOf(stack, c.key);
      const res = await request(stack.url).post('/send').set(bearer(c.key)).set('Content-Type', 'application/json').send(raw).expect(400);
      expect(res.body.error.code).toBe('invalid_json');
      expect(stack.sandbox.resend.messages().length).toBe(before);
      expect(await balanceOf(stack, c.key)).toBe(balance);
    });

    it.each(cases)('%s', async (_name, patch, field, message) => {
      const before = stack.sandbox.resend.messages().length;
      const balance = await balanceOf(stack, c.key);
      const body = { to: 'delivered@resend.dev', subject: 's', html: '<p>h</p>', ...patch };
      const single = await request(stack.url).post('/send').set(bearer(c.key)).send(body).expect(400);
      expect(single.body.error.code).toBe('invalid_request');
      expect(single.body.error.message).toMatch(new RegExp(`^${field.replace(/\./g, '\\.')}: `));
      expect(single.body.error.message).toContain(message);
      expect(single.body.error.message).not.toMatch(/[\r\n]/);
      const batch = await request(stack.url)
        .post('/send/batch')
        .set(bearer(c.key))
        .send({ emails: [{ to: 'delivered@resend.dev', subject: 'ok', text: 'ok' }, body] })
        .expect(400);
      expect(batch.body.error.message).toContain(`${field === 'body' ? 'emails.1' : `emails.1.${field}`}: ${message}`);
      expect(stack.sandbox.resend.messages().length).toBe(before);
      expect(await balanceOf(stack, c.key)).toBe(balance);
    });
  });
});
