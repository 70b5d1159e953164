import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, customerWith, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;
type Doc = {
  openapi: string;
  paths: Record<
    string,
    Record<string, { responses: Record<string, { headers?: Record<string, { required?: boolean }>; content?: Record<string, { schema: unknown }> }> }>
  >;
};

/**
 * MailKit's own contract: GET /openapi.json is a valid OpenAPI 3.1 document, and every route's
 * real answers (success and errors) match it, body and declared headers, as the sandbox's
 * answers are checked against the vendors' specs.
 */
describe('GET /openapi.json', () => {
  let stack: TestStack;
  let limited: TestStack;
  let doc: Doc;
  let ajv: Ajv2020;
  const compiled = new Map<string, ValidateFunction>();
  /** Every `METHOD template status` a test answer was checked against. */
  const covered = new Set<string>();

  /** Asserts that a real response matches the document's response for its operation and status. */
  function conforms(res: request.Response, method: string, template: string): void {
    const op = doc.paths[template]?.[method];
    expect(op, `${method.toUpperCase()} ${template} is not in /openapi.json`).toBeDefined();
    const declared = op!.responses[String(res.status)];
    expect(declared, `${method.toUpperCase()} ${template} answered ${res.status}, which /openapi.json does not declare`).toBeDefined();
    covered.add(`${method} ${template} ${res.status}`);
    for (const [name, h] of Object.entries(declared!.headers ?? {})) {
      if (h.required) expect(res.headers[name.toLowerCase()], `${method.toUpperCase()} ${template} ${res.status} lacks ${name}`).toBeDefined();
    }
    const pointer = ['paths', template, method, 'responses', String(res.status), 'content', 'application/json', 'schema']
      .map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1'))
      .join('/');
    let fn = compiled.get(pointer);
    if (!fn) compiled.set(pointer, (fn = ajv.compile({ $ref: `mailkit:openapi#/${pointer}` })));
    if (!fn(res.body))
      throw new Error(`${method.toUpperCase()} ${template} ${res.status}: ${ajv.errorsText(fn.errors)}\n${JSON.stringify(res.body).slice(0, 500)}`);
  }

  beforeAll(async () => {
    stack = await startTestStack();
    limited = await startTestStack({ RATE_LIMIT_PER_KEY: '1' });
    doc = (await request(stack.url).get('/openapi.json').expect(200).expect('Content-Type', /json/)).body;
    ajv = new Ajv2020({ strict: false, allErrors: true });
    (addFormats as unknown as (a: Ajv2020) => void)(ajv);
    ajv.addSchema({ $id: 'mailkit:openapi', ...doc } as never);
  });
  afterAll(async () => {
    await Promise.all([stack?.close(), limited?.close()]);
  });

  it('is a valid OpenAPI 3.1 document (the official schema), with the error envelope and bearer auth', async () => {
    const result = await new Validator().validate(structuredClone(doc) as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    const send = doc.paths['/send']!.post as unknown as {
      parameters: Array<{ name: string; in: string }>;
      requestBody: { content: Record<string, { schema: { properties: Record<string, unknown> } }> };
    };
    expect(send.parameters).toContainEqual(expect.objectContaining({ name: 'Idempotency-Key', in: 'header' }));
    // Generated from the same schema that validates the request: every field the route takes.
    expect(Object.keys(send.requestBody.content['application/json']!.schema.properties).sort()).toEqual(
      ['bcc', 'cc', 'customer_id', 'headers', 'html', 'reply_to', 'subject', 'tags', 'text', 'to'].sort(),
    );
  });

  it("every route's answers, successes and errors, match it", async () => {
    const s = stack.url;
    const alice = await subscribe(stack, 'oa-alice@example.com', 'Alice');
    const broke = await customerWith(stack, 0);
    const auth = bearer(alice.key);
    const json = { 'Content-Type': 'application/json' };

    conforms(await request(s).get('/healthz'), 'get', '/healthz');
    conforms(await request(s).get('/readyz'), 'get', '/readyz');
    conforms(await request(s).post('/checkout/subscribe').send({ email: 'oa-new@example.com', name: 'New' }), 'post', '/checkout/subscribe');
    conforms(await request(s).post('/checkout/subscribe').send({ email: 'nope' }), 'post', '/checkout/subscribe');
    conforms(await request(s).post('/checkout/subscribe').set(json).send('{"'), 'post', '/checkout/subscribe');
    conforms(await request(s).post('/checkout/subscribe').set('Content-Type', 'text/plain').send('x'), 'post', '/checkout/subscribe');
    conforms(await request(s).post('/checkout/topup').set(auth).send({}), 'post', '/checkout/topup');
    conforms(await request(s).post('/checkout/topup').set(auth).send({ quantity: 2 }), 'post', '/checkout/topup');
    conforms(await request(s).post('/checkout/topup').set(auth).send({ customer_id: broke.customerId }), 'post', '/checkout/topup');
    conforms(await request(s).post('/checkout/topup').send({}), 'post', '/checkout/topup');
    conforms(await request(s).get('/credits').set(auth), 'get', '/credits');
    conforms(await request(s).get('/credits').set(bearer('mk_test_forged')), 'get', '/credits');
    conforms(await request(s).get('/credits/usage?days=7').set(auth), 'get', '/credits/usage');
    conforms(await request(s).get('/credits/usage?days=0').set(auth), 'get', '/credits/usage');
    conforms(await request(s).get(`/credits/${alice.customerId}`).set(auth), 'get', '/credits/{customerId}');
    conforms(await request(s).get(`/credits/${broke.customerId}`).set(auth), 'get', '/credits/{customerId}');
    conforms(await request(s).get('/credits/bad%20id').set(auth), 'get', '/credits/{customerId}');

    const sent = await request(s)
      .post('/send')
      .set(auth)
      .set('Idempotency-Key', 'oa-1')
      .send({ to: 'bounced@resend.dev', cc: 'delivered@resend.dev', subject: 'Hi', text: 'Hi', tags: [{ name: 'a', value: 'b' }] });
    conforms(sent, 'post', '/send');
    const replay = await request(s)
      .post('/send')
      .set(auth)
      .set('Idempotency-Key', 'oa-1')
      .send({ to: 'bounced@resend.dev', cc: 'delivered@resend.dev', subject: 'Hi', text: 'Hi', tags: [{ name: 'a', value: 'b' }] });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    conforms(replay, 'post', '/send');
    conforms(
      await request(s).post('/send').set(auth).set('Idempotency-Key', 'oa-1').send({ to: 'delivered@resend.dev', subject: 'Other', text: 'x' }),
      'post',
      '/send',
    );
    conforms(await request(s).post('/send').set(auth).send({ to: 'x' }), 'post', '/send');
    conforms(await request(s).post('/send').set(auth).set('Content-Type', 'text/plain').send('x'), 'post', '/send');
    conforms(await request(s).post('/send').set(bearer(broke.key)).send({ to: 'delivered@resend.dev', subject: 'Hi', text: 'x' }), 'post', '/send');
    conforms(
      await request(s).post('/send').set(auth).send({ to: 'delivered@resend.dev', subject: 'Hi', text: 'x', customer_id: broke.customerId }),
      'post',
      '/send',
    );
    conforms(await request(s).post('/send').send({ to: 'delivered@resend.dev', subject: 'Hi', text: 'x' }), 'post', '/send');
    await stack.sandbox.resend.webhooks.idle();
    const suppressed = await request(s).post('/send').set(auth).send({ to: 'bounced@resend.dev', subject: 'Again', text: 'x' });
    expect(suppressed.status).toBe(422);
    conforms(suppressed, 'post', '/send');

    const batch = await request(s)
      .post('/send/batch')
      .set(auth)
      .send({
        emails: [
          { to: 'delivered@resend.dev', subject: 'A', html: '<p>a</p>' },
          { to: 'bounced@resend.dev', subject: 'B', text: 'b' },
        ],
      });
    expect(batch.body.data[1].error.code).toBe('recipient_suppressed');
    conforms(batch, 'post', '/send/batch');
    conforms(await request(s).post('/send/batch').set(auth).send({ emails: [] }), 'post', '/send/batch');
    conforms(
      await request(s)
        .post('/send/batch')
        .set(bearer(broke.key))
        .send({ emails: [{ to: 'delivered@resend.dev', subject: 'A', text: 'a' }] }),
      'post',
      '/send/batch',
    );
    conforms(await request(s).post('/send/batch').send({ emails: [] }), 'post', '/send/batch');

    // Answered once queued (Prefer: respond-async): 202 with MailKit's ids.
    const queued = await request(s)
      .post('/send')
      .set(auth)
      .set('Prefer', 'respond-async')
      .send({ to: 'delivered@resend.dev', subject: 'Queued', text: 'q' });
    expect(queued.status).toBe(202);
    conforms(queued, 'post', '/send');
    const queuedBatch = await request(s)
      .post('/send/batch')
      .set(auth)
      .set('Prefer', 'respond-async')
      .send({
        emails: [
          { to: 'delivered@resend.dev', subject: 'A', text: 'a' },
          { to: 'bounced@resend.dev', subject: 'B', text: 'b' },
        ],
      });
    expect(queuedBatch.status).toBe(202);
    conforms(queuedBatch, 'post', '/send/batch');

    const list = await request(s).get('/emails?limit=2').set(auth);
    conforms(list, 'get', '/emails');
    conforms(await request(s).get(`/emails?status=bounced&cursor=${list.body.next_cursor}`).set(auth), 'get', '/emails');
    conforms(await request(s).get('/emails?status=nope').set(auth), 'get', '/emails');
    conforms(await request(s).get('/emails').set(bearer('mk_test_forged')), 'get', '/emails');
    conforms(await request(s).get(`/emails/${sent.body.id}`).set(auth), 'get', '/emails/{id}');
    conforms(await request(s).get(`/emails/${sent.body.id}`).set(bearer(broke.key)), 'get', '/emails/{id}');
    conforms(await request(s).get('/emails/123').set(auth), 'get', '/emails/{id}');
    conforms(await request(s).get(`/emails/${sent.body.id}`), 'get', '/emails/{id}');

    conforms(await request(s).get('/suppressions').set(auth), 'get', '/suppressions');
    conforms(await request(s).get('/suppressions?limit=1000').set(auth), 'get', '/suppressions');
    conforms(await request(s).get('/suppressions'), 'get', '/suppressions');
    conforms(await request(s).delete('/suppressions/bounced@resend.dev').set(auth), 'delete', '/suppressions/{email}');
    conforms(await request(s).delete('/suppressions/bounced@resend.dev').set(auth), 'delete', '/suppressions/{email}');
    conforms(await request(s).delete('/suppressions/nope').set(auth), 'delete', '/suppressions/{email}');
    conforms(await request(s).delete('/suppressions/bounced@resend.dev'), 'delete', '/suppressions/{email}');

    conforms(await request(s).get('/account').set(auth), 'get', '/account');
    conforms(await request(s).get('/account'), 'get', '/account');
    conforms(await request(s).post('/account/key').set(auth).send({ x: 1 }), 'post', '/account/key');
    conforms(await request(s).post('/account/key').set(auth).send({}), 'post', '/account/key');
    conforms(await request(s).post('/account/key').send({}), 'post', '/account/key');

    // A customer over its rate limit: 429 with Retry-After and the RateLimit headers.
    const lim = await subscribe(limited, 'oa-limited@example.com');
    conforms(await request(limited.url).get('/credits').set(bearer(lim.key)), 'get', '/credits');
    const tooMany = await request(limited.url).get('/credits').set(bearer(lim.key));
    expect(tooMany.status).toBe(429);
    conforms(tooMany, 'get', '/credits');

    // Every operation in the document was exercised with its success status.
    for (const [template, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const ok = Object.keys(op.responses).find((st) => st.startsWith('2'))!;
        expect(covered.has(`${method} ${template} ${ok}`), `${method.toUpperCase()} ${template} ${ok} was never checked`).toBe(true);
      }
    }
    // And the error statuses a customer meets most.
    for (const key of [
      'post /send 202',
      'post /send/batch 202',
      'post /send 400',
      'post /send 401',
      'post /send 402',
      'post /send 403',
      'post /send 415',
      'post /send 422',
      'get /emails/{id} 404',
      'get /credits 429',
      'delete /suppressions/{email} 404',
    ]) {
      expect(covered.has(key), key).toBe(true);
    }
  });

  it('is public and cacheable: it holds no customer data', async () => {
    const res = await request(stack.url).get('/openapi.json').expect(200);
    expect(res.headers['cache-control']).toMatch(/public/);
    expect(JSON.stringify(res.body)).not.toMatch(/mk_test_[A-Za-z0-9]{8}/);
  });
});
