import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorMiddleware, HttpError } from '../../src/errors';
import { createRateLimiters, customerGate } from '../../src/rate-limits';
import { costOf, leastCost, MARGIN_MS, normalCost } from '../support/cost';
import { balanceOf, bearer, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const MIB = 1024 * 1024;
/** 8 MiB of nesting: JSON.parse blocks the event loop on it for about a second. */
const deep = `${'['.repeat(4 * MIB)}${']'.repeat(4 * MIB)}`;
/** 8 MiB of empty objects in a batch: half a second of JSON.parse. */
const wide = `{"emails":[${'{},'.repeat(Math.floor((8 * MIB - 20) / 3) - 1)}{}]}`;
/** POSTs `body` to `url` `times` times at once from a child process; the statuses. */
async function postFromAnotherProcess(url: string, body: string, times: number): Promise<number[]> {
  const script = `
    const [url, times] = process.argv.slice(1);
    const body = require('node:fs').readFileSync(0);
    Promise.all(Array.from({ length: Number(times) }, () => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      .then((r) => r.arrayBuffer().then(() => r.status), () => 0)))
      .then((statuses) => console.log(JSON.stringify(statuses)));`;
  const child = promisify(execFile)(process.execPath, ['-e', script, url, String(times)], { maxBuffer: 1 << 20 });
  child.child.stdin!.end(body);
  return JSON.parse((await child).stdout) as number[];
}

const small = { emails: [{ to: 'delivered@resend.dev', subject: 'hi', html: '<p>hi</p>' }] };
/**
 * An ordinary body of the same 8 MiB: one email and a long string in an unknown field (a 400
 * once parsed). The normal request an adversarial one is compared with costs the same to send.
 */
const ordinary = JSON.stringify({ ...small, padding: '' }).replace('""', `"${'x'.repeat(8 * MIB - 100)}"`);

/**
 * What a request costs before it is let in: the body is read only after the API key and the
 * rate limits have passed, and what one body may cost JSON.parse is bounded.
 */
describe('request body cost', () => {
  let stack: TestStack;
  let key: string;

  beforeAll(async () => {
    stack = await startTestStack({ RATE_LIMIT_AUTH_FAILURES_PER_IP: '5' });
    key = (await subscribe(stack, 'cost@example.com')).key;
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** A string body is sent as is (superagent would serialize a Buffer as JSON). */
  const batch = (body: string | object, auth?: string) => {
    const r = request(stack.url).post('/send/batch').set('Content-Type', 'application/json');
    if (auth) r.set(bearer(auth));
    return r.send(body as string);
  };

  describe('without a valid API key', () => {
    it('8 MiB of [ and ] to POST /send/batch answers 401 as fast as an ordinary 8 MiB body, and /healthz stays responsive', async () => {
      const normal = await normalCost(stack.url, () => batch(ordinary, 'mk_test_wrong1.0.x.y').expect(401));
      const cost = await costOf(stack.url, () => batch(deep, 'mk_test_wrong2.0.x.y').expect(401));
      expect(cost.ms).toBeLessThan(normal.ms + MARGIN_MS);
      expect(cost.healthzMs).toBeLessThan(normal.healthzMs + MARGIN_MS);
    });

    it('eight of them at once leave /healthz as responsive as eight ordinary 8 MiB bodies do', async () => {
      // The eight clients run in another process, so only the server's work lands on this event
      // loop; the comparison is with bodies of the same size, so what differs is what it does with them.
      const normal = await normalCost(stack.url, () => postFromAnotherProcess(`${stack.url}/send/batch`, ordinary, 8));
      let statuses: number[] = [];
      const cost = await leastCost(stack.url, async () => (statuses = await postFromAnotherProcess(`${stack.url}/send/batch`, deep, 8)));
      expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
      expect(cost.healthzMs).toBeLessThan(normal.healthzMs + MARGIN_MS);
    });

    it('over the failed-authentication limit, the same body is a 429 as fast', async () => {
      const normal = await normalCost(stack.url, () => batch(ordinary).expect(429));
      const cost = await costOf(stack.url, () => batch(deep).expect(429));
      expect(cost.ms).toBeLessThan(normal.ms + MARGIN_MS);
      expect(cost.healthzMs).toBeLessThan(normal.healthzMs + MARGIN_MS);
    });
  });

  describe('with a valid API key', () => {
    it.each([
      ['8 MiB of [ and ]', deep, /nests deeper than 32 levels/],
      ['8 MiB of {} in a batch', wide, /holds more than 50000 values/],
    ])('%s is a 400 json_too_complex as fast as an ordinary 8 MiB body; nothing sent or debited', async (_name, body, message) => {
      const normal = await normalCost(stack.url, () => batch(ordinary, key).expect(400));
      const balance = await balanceOf(stack, key);
      const sent = stack.sandbox.resend.messages().length;
      let answer: request.Response | undefined;
      const cost = await costOf(stack.url, async () => (answer = await batch(body, key)));
      expect(answer!.status).toBe(400);
      expect(answer!.body.error).toEqual({ code: 'json_too_complex', message: expect.stringMatching(message) });
      expect(cost.ms).toBeLessThan(normal.ms + MARGIN_MS);
      expect(cost.healthzMs).toBeLessThan(normal.healthzMs + MARGIN_MS);
      expect(stack.sandbox.resend.messages().length).toBe(sent);
      expect(await balanceOf(stack, key)).toBe(balance);
    });

    it('a full batch (100 emails, 50 recipients each, 8 MiB of HTML in strings) is still accepted', async () => {
      const emails = Array.from({ length: 100 }, (_, i) => ({
        to: Array.from({ length: 50 }, (_, j) => `delivered+${i}-${j}@resend.dev`),
        subject: `full ${i}`,
        html: `<p>${'[{,"\\'.repeat(3_000)}</p>`,
      }));
      const r = await batch({ emails }, key);
      expect(r.status).toBe(200);
      expect(r.body.sent).toBe(100);
    });
  });

  it('a public route reads at most 16 KiB', async () => {
    const r = await request(stack.url)
      .post('/checkout/subscribe')
      .send({ email: 'big@example.com', name: 'x'.repeat(20 * 1024) });
    expect(r.status).toBe(413);
  });
});

describe('customerGate', () => {
  /** An app whose one route is behind the gate, with a key check that answers after a tick. */
  function gatedApp(verify: (key: string) => Promise<string | null>) {
    const limiters = createRateLimiters({ perKey: 100, publicPerIp: 100, authFailuresPerIp: 2 });
    const requireKey: express.RequestHandler = async (req, _res, next) => {
      const customer = await verify(req.get('authorization') ?? '');
      if (!customer) throw new HttpError(401, 'invalid_api_key', 'no');
      req.customerId = customer;
      next();
    };
    const app = express();
    app.post('/', customerGate(requireKey, limiters), express.json(), (req, res) => {
      res.json({ customer: req.customerId, body: req.body });
    });
    app.use(errorMiddleware(() => undefined));
    return app;
  }

  it('works with a key check that answers later (a database read): the route runs after it, failures count', async () => {
    const app = gatedApp(async (k) => {
      await new Promise((r) => setTimeout(r, 5));
      return k === 'good' ? 'cus_1' : null;
    });
    await request(app)
      .post('/')
      .set('Authorization', 'good')
      .send({ a: 1 })
      .expect(200, { customer: 'cus_1', body: { a: 1 } });
    expect((await request(app).post('/').set('Authorization', 'bad').send({})).status).toBe(401);
    expect((await request(app).post('/').set('Authorization', 'bad').send({})).status).toBe(401);
    expect((await request(app).post('/').set('Authorization', 'bad').send({})).status).toBe(429);
    await request(app).post('/').set('Authorization', 'good').send({}).expect(200);
  });

  it('a key check that fails unexpectedly is a 500, not a hang', async () => {
    const app = gatedApp(async () => {
      throw new Error('database down');
    });
    expect((await request(app).post('/').send({})).status).toBe(500);
  });
});

describe('the Resend sandbox (any key is accepted)', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('8 MiB of [ and ] is a 400 in its own envelope, as fast as an ordinary 8 MiB body', async () => {
    const send = (body: string | object) =>
      request(stack.url)
        .post('/sandbox/resend/emails')
        .set('Authorization', 'Bearer re_any')
        .set('Content-Type', 'application/json')
        .send(body as string);
    // Missing from and subject: a 422 once parsed.
    const normal = await normalCost(stack.url, () => send(ordinary).expect(422));
    let answer: request.Response | undefined;
    const cost = await costOf(stack.url, async () => (answer = await send(deep)));
    expect(answer!.status).toBe(400);
    expect(answer!.body).toMatchObject({ statusCode: 400, name: 'validation_error' });
    expect(cost.ms).toBeLessThan(normal.ms + MARGIN_MS);
    expect(cost.healthzMs).toBeLessThan(normal.healthzMs + MARGIN_MS);
  });
});
