import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { forEachEngine } from '../support/database';
import { balanceOf, bearer, customerWith, outboxTo, startTestStack } from '../support/stack';

/**
 * The dispatcher: first tries of every send, from every customer, share Resend batch calls
 * (flights) as the Resend budget allows, with the sandbox enforcing Resend's 2 calls a second.
 */
type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const QUOTA = { SANDBOX_RESEND_RATE_LIMIT: '2' };
const OPTS = { mailer: { timeoutMs: 5_000, maxBackoffMs: 200 } };
const one = (to: string, subject: string) => ({ to, subject, html: '<p>d</p>' });
const batchCalls = (stack: TestStack) => stack.sandbox.resend.faults.requestCount(/^POST \/emails\/batch$/);
const singleCalls = (stack: TestStack) => stack.sandbox.resend.faults.requestCount(/^POST \/emails$/);
const EITHER = /^POST \/emails(\/batch)?$/;

forEachEngine('the dispatcher', ({ engine }) => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('packs 40 concurrent single sends from 4 customers into a few calls: every one delivered once and paid once', async () => {
    stack = await startTestStack(QUOTA, { ...OPTS, engine });
    const customers = [];
    for (let i = 0; i < 4; i++) customers.push(await customerWith(stack, 20));
    const before = batchCalls(stack);
    const answers = await Promise.all(
      customers.flatMap((c, ci) =>
        Array.from({ length: 10 }, (_, i) =>
          request(stack!.url)
            .post('/send')
            .set(bearer(c.key))
            .send(one(`c${ci}@example.com`, `m${i}`)),
        ),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(40).fill(200));
    expect(new Set(answers.map((r) => r.body.id)).size).toBe(40);
    // A lone first flight, then the rest together: far fewer calls than emails.
    expect(batchCalls(stack) - before).toBeLessThanOrEqual(4);
    // Spaced turns keep Resend's own limiter quiet; scheduling jitter on a loaded machine may
    // still land one call early, which Resend refuses and MailKit retries (nothing lost).
    expect(stack.sandbox.resend.rateLimit()?.limited).toBeLessThanOrEqual(1);
    for (let ci = 0; ci < 4; ci++) {
      expect(outboxTo(stack, `c${ci}@example.com`)).toHaveLength(10);
      expect(await balanceOf(stack, customers[ci]!.key)).toBe(10);
    }
  });

  it('a flight whose answer is lost: each send is retried with the same flight, same key, one email each', async () => {
    stack = await startTestStack(QUOTA, { ...OPTS, engine, mailer: { timeoutMs: 1_000, maxBackoffMs: 100 } });
    const c = await customerWith(stack, 10);
    // Pack three sends into one flight: the first call (a lone send, its own) is slowed, the three wait behind it.
    stack.sandbox.resend.faults.inject({ latencyMs: 300, count: 1, match: EITHER });
    await request(stack.url).post('/send').set(bearer(c.key)).send(one('warmup@example.com', 'w')).expect(200);
    stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails\/batch$/ });
    const send = (k: number) =>
      request(stack!.url)
        .post('/send')
        .set(bearer(c.key))
        .set('Idempotency-Key', `lost-${k}`)
        .send(one('lost@example.com', `l${k}`));
    const first = await Promise.all([0, 1, 2].map(send));
    expect(first.map((r) => r.status)).toEqual([503, 503, 503]);
    expect(outboxTo(stack, 'lost@example.com')).toHaveLength(3); // it did go out
    // Each client retries as told (503 + Retry-After) until it has an answer.
    const retried = await Promise.all(
      [0, 1, 2].map(async (k) => {
        for (let attempt = 0; ; attempt++) {
          const r = await send(k);
          if (r.status !== 503 || attempt === 5) return r;
          await new Promise((w) => setTimeout(w, 200));
        }
      }),
    );
    expect(retried.map((r) => r.status)).toEqual([200, 200, 200]);
    const sent = outboxTo(stack, 'lost@example.com');
    expect(sent).toHaveLength(3);
    expect(retried.map((r) => r.body.id).sort()).toEqual(sent.map((m) => m.id).sort());
    expect(await balanceOf(stack, c.key)).toBe(6);
  });

  describe('a send alone', () => {
    it(
      'makes its own call, the one its retry would make: ' + 'POST /emails for /send, POST /emails/batch for /send/batch, no flight recorded',
      async () => {
        stack = await startTestStack(QUOTA, { ...OPTS, engine });
        const c = await customerWith(stack, 10);
        const [singles, batches] = [singleCalls(stack), batchCalls(stack)];
        await request(stack.url).post('/send').set(bearer(c.key)).send(one('alone@example.com', 's')).expect(200);
        expect([singleCalls(stack) - singles, batchCalls(stack) - batches]).toEqual([1, 0]);
        const b = await request(stack.url)
          .post('/send/batch')
          .set(bearer(c.key))
          .send({ emails: [one('alone@example.com', 'b')] })
          .expect(200);
        expect(b.body.sent).toBe(1);
        expect([singleCalls(stack) - singles, batchCalls(stack) - batches]).toEqual([1, 1]);
        expect(await stack.database.db.selectFrom('sends').select('flightId').where('flightId', 'is not', null).execute()).toEqual([]);
        expect(await stack.database.db.selectFrom('flights').select('id').execute()).toEqual([]);
        expect(outboxTo(stack, 'alone@example.com')).toHaveLength(2);
        expect(await balanceOf(stack, c.key)).toBe(8);
      },
    );

    // The retry goes under the send's own key to the endpoint its payload names: a first call
    // under another key, or to the other endpoint (Resend scopes keys by endpoint), would make
    // the retry a second email.
    for (const route of ['/send', '/send/batch'] as const) {
      it(`${route}: its answer lost, the retry under the same key gives the first email's id: one email, one credit`, async () => {
        stack = await startTestStack(QUOTA, { ...OPTS, engine, mailer: { timeoutMs: 1_000, maxBackoffMs: 100 } });
        const c = await customerWith(stack, 10);
        const body = route === '/send' ? one('lost-alone@example.com', 'l') : { emails: [one('lost-alone@example.com', 'l')] };
        const post = () => request(stack!.url).post(route).set(bearer(c.key)).set('Idempotency-Key', `alone-${route}`).send(body);
        stack.sandbox.resend.faults.inject({ dropAfterProcessing: true, count: 1, match: EITHER });
        const first = await post();
        expect(first.status).toBe(503);
        expect(first.body.error.code).toBe('delivery_unconfirmed');
        expect(outboxTo(stack, 'lost-alone@example.com')).toHaveLength(1); // it did go out
        const retried = await post();
        expect(retried.status).toBe(200);
        const sent = outboxTo(stack, 'lost-alone@example.com');
        expect(sent).toHaveLength(1);
        expect(route === '/send' ? retried.body.id : retried.body.data[0].id).toBe(sent[0]!.id);
        expect(await balanceOf(stack, c.key)).toBe(9);
      });
    }
  });

  it('a customer sending flat out does not hold the others back: a light customer rides an early flight', async () => {
    stack = await startTestStack(QUOTA, { ...OPTS, engine });
    const heavy = await customerWith(stack, 400);
    const light = await customerWith(stack, 10);
    const batch = (n: number) => ({ emails: Array.from({ length: 100 }, (_, i) => one('heavy@example.com', `h${n}.${i}`)) });
    const order: string[] = [];
    const heavyRuns = [0, 1, 2].map((n) =>
      request(stack!.url)
        .post('/send/batch')
        .set(bearer(heavy.key))
        .send(batch(n))
        .then((r) => (order.push(`heavy${n}`), r)),
    );
    await new Promise((r) => setTimeout(r, 20)); // the heavy batches are queued first
    const lightRun = request(stack.url)
      .post('/send')
      .set(bearer(light.key))
      .send(one('light@example.com', 'l'))
      .then((r) => (order.push('light'), r));
    const [h0, h1, h2, l] = await Promise.all([...heavyRuns, lightRun]);
    expect([h0!.status, h1!.status, h2!.status, l!.status]).toEqual([200, 200, 200, 200]);
    // Turns by customer: the light send flies before the last of the heavy batches.
    expect(order.indexOf('light')).toBeLessThan(3);
    expect(outboxTo(stack, 'heavy@example.com')).toHaveLength(300);
    expect(await balanceOf(stack, heavy.key)).toBe(100);
  });
});
