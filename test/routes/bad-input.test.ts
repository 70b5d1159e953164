import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * Every route, fed bad input. Each case asserts the status and error code, that the
 * message names the field, that nothing was sent, debited, rotated or created upstream,
 * and that the server still answers afterwards.
 */

interface Case {
  name: string;
  method: 'get' | 'post';
  path: string | ((customerId: string) => string);
  /** A JSON value to send, or a raw string with its content type. */
  json?: unknown;
  raw?: { body: string | Buffer; type: string };
  headers?: Record<string, string>;
  /** Send the customer's key (default true except on public routes). */
  auth?: boolean;
  status: number;
  code: string;
  /** Text the error message must contain: the field's name. */
  field?: string;
}

const ok = { to: 'delivered@resend.dev', subject: 'Hello', html: '<p>Hi</p>' };
const XSS = '<script>alert(1)</script>';
const IMG = '<img src=x onerror=alert(1)>';
const tooLong = (n: number) => 'a'.repeat(n);

const sendCases: Case[] = [
  {
    name: 'malformed JSON',
    method: 'post',
    path: '/send',
    raw: { body: '{"to": "a@b.co",', type: 'application/json' },
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'a JSON array',
    method: 'post',
    path: '/send',
    raw: { body: '[1,2]', type: 'application/json' },
    status: 400,
    code: 'invalid_request',
    field: 'body',
  },
  { name: 'a JSON string', method: 'post', path: '/send', raw: { body: '"hello"', type: 'application/json' }, status: 400, code: 'invalid_json' },
  { name: 'JSON null', method: 'post', path: '/send', raw: { body: 'null', type: 'application/json' }, status: 400, code: 'invalid_json' },
  {
    name: 'a form body',
    method: 'post',
    path: '/send',
    raw: { body: 'to=a@b.co&subject=x&html=y', type: 'application/x-www-form-urlencoded' },
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'text/plain',
    method: 'post',
    path: '/send',
    raw: { body: JSON.stringify(ok), type: 'text/plain' },
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'latin-1 charset',
    method: 'post',
    path: '/send',
    raw: { body: JSON.stringify(ok), type: 'application/json; charset=latin1' },
    status: 415,
    code: 'unsupported_encoding',
  },
  { name: 'an empty body', method: 'post', path: '/send', status: 400, code: 'invalid_request' },
  { name: 'missing to', method: 'post', path: '/send', json: { subject: 's', html: 'h' }, status: 400, code: 'invalid_request', field: 'to' },
  { name: 'missing subject', method: 'post', path: '/send', json: { to: ok.to, html: 'h' }, status: 400, code: 'invalid_request', field: 'subject' },
  { name: 'missing html', method: 'post', path: '/send', json: { to: ok.to, subject: 's' }, status: 400, code: 'invalid_request', field: 'html' },
  { name: 'to as a number', method: 'post', path: '/send', json: { ...ok, to: 42 }, status: 400, code: 'invalid_request', field: 'to' },
  {
    name: 'subject as an object',
    method: 'post',
    path: '/send',
    json: { ...ok, subject: { a: 1 } },
    status: 400,
    code: 'invalid_request',
    field: 'subject',
  },
  { name: 'html as an array', method: 'post', path: '/send', json: { ...ok, html: ['<p>'] }, status: 400, code: 'invalid_request', field: 'html' },
  {
    name: 'to not an address',
    method: 'post',
    path: '/send',
    json: { ...ok, to: 'not-an-email' },
    status: 400,
    code: 'invalid_request',
    field: 'to',
  },
  {
    name: 'to with CR/LF (header injection)',
    method: 'post',
    path: '/send',
    json: { ...ok, to: 'a@b.co\r\nBcc: victim@example.com' },
    status: 400,
    code: 'invalid_request',
    field: 'to',
  },
  {
    name: 'to as an XSS string',
    method: 'post',
    path: '/send',
    json: { ...ok, to: `${XSS}@example.com` },
    status: 400,
    code: 'invalid_request',
    field: 'to',
  },
  {
    name: 'to with a unicode homoglyph domain',
    method: 'post',
    path: '/send',
    json: { ...ok, to: 'user@exаmple.com' },
    status: 400,
    code: 'invalid_request',
    field: 'to',
  },
  { name: 'an empty recipient list', method: 'post', path: '/send', json: { ...ok, to: [] }, status: 400, code: 'invalid_request', field: 'to' },
  {
    name: '51 recipients',
    method: 'post',
    path: '/send',
    json: { ...ok, to: Array.from({ length: 51 }, (_, i) => `u${i}@example.com`) },
    status: 400,
    code: 'invalid_request',
    field: 'to',
  },
  {
    name: 'subject with LF (header injection)',
    method: 'post',
    path: '/send',
    json: { ...ok, subject: 'Hi\nBcc: victim@example.com' },
    status: 400,
    code: 'invalid_request',
    field: 'subject',
  },
  {
    name: 'subject with a NUL byte',
    method: 'post',
    path: '/send',
    json: { ...ok, subject: 'Hi\u0000there' },
    status: 400,
    code: 'invalid_request',
    field: 'subject',
  },
  {
    name: 'subject with a lone surrogate',
    method: 'post',
    path: '/send',
    raw: { body: '{"to":"delivered@resend.dev","subject":"bad \\ud800 text","html":"<p>x</p>"}', type: 'application/json' },
    status: 400,
    code: 'invalid_request',
    field: 'subject',
  },
  { name: 'an empty subject', method: 'post', path: '/send', json: { ...ok, subject: '' }, status: 400, code: 'invalid_request', field: 'subject' },
  {
    name: 'a 999-character subject',
    method: 'post',
    path: '/send',
    json: { ...ok, subject: tooLong(999) },
    status: 400,
    code: 'invalid_request',
    field: 'subject',
  },
  {
    name: 'html over 256 KiB',
    method: 'post',
    path: '/send',
    json: { ...ok, html: tooLong(256 * 1024 + 1) },
    status: 400,
    code: 'invalid_request',
    field: 'html',
  },
  { name: 'a body over 384 KB', method: 'post', path: '/send', json: { ...ok, html: tooLong(400 * 1024) }, status: 413, code: 'payload_too_large' },
  {
    name: 'an unknown field (sender)',
    method: 'post',
    path: '/send',
    json: { ...ok, sender: 'spy@example.com' },
    status: 400,
    code: 'invalid_request',
    field: 'sender',
  },
  {
    name: 'customer_id as a number',
    method: 'post',
    path: '/send',
    json: { ...ok, customer_id: 7 },
    status: 400,
    code: 'invalid_request',
    field: 'customer_id',
  },
  {
    name: 'customer_id as an XSS string',
    method: 'post',
    path: '/send',
    json: { ...ok, customer_id: XSS },
    status: 400,
    code: 'invalid_request',
    field: 'customer_id',
  },
  {
    name: 'a 256-character Idempotency-Key',
    method: 'post',
    path: '/send',
    json: ok,
    headers: { 'Idempotency-Key': tooLong(256) },
    status: 400,
    code: 'invalid_request',
    field: 'Idempotency-Key',
  },
  {
    name: 'an Idempotency-Key with a space',
    method: 'post',
    path: '/send',
    json: ok,
    headers: { 'Idempotency-Key': 'two words' },
    status: 400,
    code: 'invalid_request',
    field: 'Idempotency-Key',
  },
];

const batchCases: Case[] = [
  {
    name: 'malformed JSON',
    method: 'post',
    path: '/send/batch',
    raw: { body: '{"emails": [', type: 'application/json' },
    status: 400,
    code: 'invalid_json',
  },
  { name: 'emails missing', method: 'post', path: '/send/batch', json: {}, status: 400, code: 'invalid_request', field: 'emails' },
  { name: 'emails as an object', method: 'post', path: '/send/batch', json: { emails: ok }, status: 400, code: 'invalid_request', field: 'emails' },
  { name: 'no emails', method: 'post', path: '/send/batch', json: { emails: [] }, status: 400, code: 'invalid_request', field: 'emails' },
  {
    name: '101 emails',
    method: 'post',
    path: '/send/batch',
    json: { emails: Array.from({ length: 101 }, () => ok) },
    status: 400,
    code: 'invalid_request',
    field: 'emails',
  },
  {
    name: 'one bad item among good ones',
    method: 'post',
    path: '/send/batch',
    json: { emails: [ok, ok, { ...ok, to: 'x\r\n@y.co' }] },
    status: 400,
    code: 'invalid_request',
    field: 'emails.2.to',
  },
  {
    name: 'an unknown field in an item',
    method: 'post',
    path: '/send/batch',
    json: { emails: [{ ...ok, from: 'ceo@bank.com' }] },
    status: 400,
    code: 'invalid_request',
    field: 'from',
  },
  {
    name: 'an unknown top-level field',
    method: 'post',
    path: '/send/batch',
    json: { emails: [ok], dry_run: true },
    status: 400,
    code: 'invalid_request',
    field: 'dry_run',
  },
  {
    name: 'a body over 8 MB',
    method: 'post',
    path: '/send/batch',
    json: { emails: Array.from({ length: 40 }, () => ({ ...ok, html: tooLong(250 * 1024) })) },
    status: 413,
    code: 'payload_too_large',
  },
];

const otherCases: Case[] = [
  {
    name: 'subscribe: malformed JSON',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    raw: { body: '{email', type: 'application/json' },
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'subscribe: missing email',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { name: 'A' },
    status: 400,
    code: 'invalid_request',
    field: 'email',
  },
  {
    name: 'subscribe: bad email',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: 'nope', name: 'A' },
    status: 400,
    code: 'invalid_request',
    field: 'email',
  },
  {
    name: 'subscribe: email as an XSS string',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: IMG, name: 'A' },
    status: 400,
    code: 'invalid_request',
    field: 'email',
  },
  {
    name: 'subscribe: missing name',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: 'a@b.co' },
    status: 400,
    code: 'invalid_request',
    field: 'name',
  },
  {
    name: 'subscribe: blank name',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: 'a@b.co', name: '   ' },
    status: 400,
    code: 'invalid_request',
    field: 'name',
  },
  {
    name: 'subscribe: name with CR/LF',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: 'a@b.co', name: 'A\r\nB' },
    status: 400,
    code: 'invalid_request',
    field: 'name',
  },
  {
    name: 'subscribe: 201-character name',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: 'a@b.co', name: tooLong(201) },
    status: 400,
    code: 'invalid_request',
    field: 'name',
  },
  {
    name: 'subscribe: name as a number',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: 'a@b.co', name: 5 },
    status: 400,
    code: 'invalid_request',
    field: 'name',
  },
  {
    name: 'subscribe: unknown field',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: 'a@b.co', name: 'A', price: 0 },
    status: 400,
    code: 'invalid_request',
    field: 'price',
  },
  {
    name: 'subscribe: a body over 384 KB',
    method: 'post',
    path: '/checkout/subscribe',
    auth: false,
    json: { email: 'a@b.co', name: tooLong(400 * 1024) },
    status: 413,
    code: 'payload_too_large',
  },
  {
    name: 'topup: customer_id as a number',
    method: 'post',
    path: '/checkout/topup',
    json: { customer_id: 1 },
    status: 400,
    code: 'invalid_request',
    field: 'customer_id',
  },
  {
    name: 'topup: unknown field',
    method: 'post',
    path: '/checkout/topup',
    json: { quantity: 100 },
    status: 400,
    code: 'invalid_request',
    field: 'quantity',
  },
  {
    name: 'topup: malformed JSON',
    method: 'post',
    path: '/checkout/topup',
    raw: { body: '{', type: 'application/json' },
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'credits: an id with markup',
    method: 'get',
    path: `/credits/${encodeURIComponent(IMG)}`,
    status: 400,
    code: 'invalid_request',
    field: 'customerId',
  },
  { name: 'credits: an over-long id', method: 'get', path: `/credits/cus_${tooLong(80)}`, status: 400, code: 'invalid_request', field: 'customerId' },
  { name: 'credits: a malformed percent-encoding', method: 'get', path: '/credits/%E0%A4%A', status: 400, code: 'bad_request' },
  {
    name: 'rotate key: unknown field',
    method: 'post',
    path: '/account/key',
    json: { customer_id: 'cus_x' },
    status: 400,
    code: 'invalid_request',
    field: 'customer_id',
  },
  {
    name: 'rotate key: malformed JSON',
    method: 'post',
    path: '/account/key',
    raw: { body: '{"', type: 'application/json' },
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'auth: a key with unicode',
    method: 'get',
    path: '/credits',
    auth: false,
    headers: { Authorization: 'Bearer mk_test_ü.1.x.y' },
    status: 401,
    code: 'invalid_api_key',
  },
  {
    name: 'auth: Basic instead of Bearer',
    method: 'get',
    path: '/account',
    auth: false,
    headers: { Authorization: 'Basic dXNlcjpwYXNz' },
    status: 401,
    code: 'missing_api_key',
  },
  {
    name: 'auth: an XSS string as the key',
    method: 'get',
    path: '/account',
    auth: false,
    headers: { Authorization: `Bearer ${IMG.replace(/ /g, '')}` },
    status: 401,
    code: 'invalid_api_key',
  },
  {
    name: 'webhook: unsigned',
    method: 'post',
    path: '/webhooks/dodo',
    auth: false,
    json: { type: 'credit.added', data: {} },
    status: 401,
    code: 'invalid_signature',
  },
  {
    name: 'webhook: over 256 KiB',
    method: 'post',
    path: '/webhooks/dodo',
    auth: false,
    // Signature headers present (a body is read only then), checked only once the body is read.
    headers: { 'webhook-id': 'msg_big', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAA' },
    raw: { body: tooLong(256 * 1024 + 10), type: 'application/json' },
    status: 413,
    code: 'payload_too_large',
  },
  { name: 'unknown route', method: 'post', path: '/send/everything', json: ok, status: 404, code: 'not_found' },
];

describe('bad input on every route', () => {
  let stack: TestStack;
  let alice: { key: string; customerId: string };
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);

  beforeAll(async () => {
    stack = await startTestStack({ RATE_LIMIT_PUBLIC_PER_IP: '1000', RATE_LIMIT_AUTH_FAILURES_PER_IP: '1000' });
    alice = await subscribe(stack, 'alice@example.com', 'Alice');
    process.on('unhandledRejection', onUnhandled);
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await stack?.close();
  });

  /** What a bad request must leave unchanged (what was spent settled first: Dodo's balance is then the customer's). */
  const snapshot = async () => ({
    settled: await stack.credits.settleNow(),
    sent: stack.sandbox.resend.messages().length,
    resendCalls: stack.sandbox.resend.faults.requestCount(),
    checkouts: stack.sandbox.dodo.faults.requestCount(/^POST \/checkouts/),
    ledgerWrites: stack.sandbox.dodo.faults.requestCount(/ledger-entries/),
    balance: (await stack.dodo.creditEntitlements.balances.retrieve(alice.customerId, { credit_entitlement_id: stack.catalog.creditEntitlementId }))
      .balance,
  });

  it.each(
    [...sendCases, ...batchCases, ...otherCases].map(
      (c) => [`${c.method.toUpperCase()} ${typeof c.path === 'string' ? c.path.slice(0, 40) : 'path'}: ${c.name}`, c] as const,
    ),
  )('%s', async (_title, c) => {
    const before = await snapshot();
    const path = typeof c.path === 'function' ? c.path(alice.customerId) : c.path;
    let req = (request(stack.url) as unknown as Record<string, (p: string) => request.Test>)[c.method]!(path);
    if (c.auth !== false) req = req.set(bearer(alice.key));
    for (const [k, v] of Object.entries(c.headers ?? {})) req = req.set(k, v);
    if (c.raw) req = req.set('Content-Type', c.raw.type).send(c.raw.body);
    else if (c.json !== undefined) req = req.send(c.json as object);
    const res = await req;

    expect(res.status, JSON.stringify(res.body)).toBe(c.status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.error?.code).toBe(c.code);
    expect(typeof res.body.error?.message).toBe('string');
    if (c.field) expect(res.body.error.message).toContain(c.field);
    // Markup never comes back as anything but inert JSON text, and no stack trace leaks.
    expect(res.text).not.toMatch(/\bat \S+ \(|node_modules/);

    expect(await snapshot()).toEqual(before);
    await request(stack.url).get('/healthz').expect(200);
  });

  it('a rejected key rotation leaves the key working', async () => {
    await request(stack.url).post('/account/key').set(bearer(alice.key)).send({ rotate: 'all' }).expect(400);
    await request(stack.url).get('/account').set(bearer(alice.key)).expect(200);
  });

  it('the same valid request still succeeds afterwards, exactly once (the suite did not wedge anything)', async () => {
    const before = await snapshot();
    const res = await request(stack.url)
      .post('/send')
      .set(bearer(alice.key))
      .send({ ...ok, subject: 'Ünïcödé ✓ 📬 — fine' })
      .expect(200);
    expect(res.body.id).toBeTruthy();
    const after = await snapshot();
    expect(after.sent).toBe(before.sent + 1);
    expect(Number(after.balance)).toBe(Number(before.balance) - 1);
    expect(stack.sandbox.resend.messages().find((m) => m.id === res.body.id)?.subject).toBe('Ünïcödé ✓ 📬 — fine');
  });

  it('no request caused an unhandled rejection', () => {
    expect(unhandled).toEqual([]);
  });
});
