import DodoPayments from 'dodopayments';
import { afterEach, describe, expect, it } from 'vitest';
import request from 'supertest';
import { balanceOf, bearer, startTestStack, subscribe } from '../../support/stack';
import { startHarness, type Harness } from './harness';

/** A wall clock the test moves; starts on a whole second so reset times are round numbers. */
function manualClock(start = Date.UTC(2025, 0, 15, 12, 0, 0)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms), seconds: (offset = 0) => start / 1000 + offset };
}

/** The three headers Dodo documents, as the SDK's `withResponse()` or a fetch sees them. */
function quotaHeaders(headers: Headers) {
  return {
    limit: headers.get('x-ratelimit-limit'),
    remaining: headers.get('x-ratelimit-remaining'),
    reset: headers.get('x-ratelimit-reset'),
  };
}

/** The error the SDK throws for a call, or a failure if it resolved. */
async function rejection(call: Promise<unknown>): Promise<InstanceType<typeof DodoPayments.APIError>> {
  try {
    await call;
  } catch (err) {
    if (err instanceof DodoPayments.APIError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

let h: Harness;
afterEach(async () => {
  await h?.close();
});

describe('Dodo API quota', () => {
  describe('with 60 a minute and bursts of 3', () => {
    it(
      'lets the burst through counting X-RateLimit-Remaining down, ' + 'then answers 429 TOO_MANY_REQUESTS with the same headers and no Retry-After',
      async () => {
        const clock = manualClock();
        h = await startHarness({ rateLimit: { perMinute: 60, burst: 3 }, wallClock: clock.now });
        for (const remaining of [2, 1, 0]) {
          const { response } = await h.client.creditEntitlements.list().withResponse();
          expect(response.status).toBe(200);
          // Reset: when the bucket is full again, one request a second from here.
          expect(quotaHeaders(response.headers)).toEqual({ limit: '3', remaining: String(remaining), reset: String(clock.seconds(3 - remaining)) });
        }

        const err = await rejection(h.client.creditEntitlements.list());
        expect(err).toBeInstanceOf(DodoPayments.RateLimitError);
        expect(err.status).toBe(429);
        expect(err.error).toEqual({
          code: 'TOO_MANY_REQUESTS',
          message: 'Rate limit exceeded: 60 requests a minute, bursts of 3. Back off and retry.',
        });
        expect(quotaHeaders(err.headers!)).toEqual({ limit: '3', remaining: '0', reset: String(clock.seconds(3)) });
        expect(err.headers!.get('retry-after')).toBeNull();
        expect(err.headers!.get('retry-after-ms')).toBeNull();

        // Refused at the door: the API never handled it.
        expect(h.sb.faults.requestCount()).toBe(3);
        expect(h.sb.rateLimit()).toEqual({ perMinute: 60, burst: 3, remaining: 0, resetAt: clock.seconds(3), limited: 1 });
      },
    );

    it('refills one request every 60/perMinute seconds, never past the burst', async () => {
      const clock = manualClock();
      h = await startHarness({ rateLimit: { perMinute: 60, burst: 3 }, wallClock: clock.now });
      for (let i = 0; i < 3; i++) await h.client.products.list();

      clock.advance(999);
      expect((await rejection(h.client.products.list())).status).toBe(429);
      clock.advance(1);
      const { response } = await h.client.products.list().withResponse();
      expect(response.status).toBe(200);
      expect(quotaHeaders(response.headers)).toMatchObject({ remaining: '0', reset: String(clock.seconds(1 + 3)) });

      clock.advance(60_000);
      expect(h.sb.rateLimit()).toMatchObject({ remaining: 3, resetAt: clock.seconds(61), limited: 1 });
    });

    it('counts every authenticated call (reads, writes, refusals, unknown routes) and no unauthenticated one', async () => {
      const clock = manualClock();
      h = await startHarness({ rateLimit: { perMinute: 60, burst: 4 }, wallClock: clock.now });
      const call = (method: string, path: string, body?: unknown, auth = true) =>
        fetch(`${h.apiUrl}${path}`, {
          method,
          headers: { 'content-type': 'application/json', ...(auth ? { authorization: 'Bearer sk_test' } : {}) },
          body: body === undefined ? undefined : JSON.stringify(body),
        });

      const anonymous = await call('GET', '/products', undefined, false);
      expect(anonymous.status).toBe(401);
      expect(quotaHeaders(anonymous.headers)).toEqual({ limit: null, remaining: null, reset: null });
      expect(h.sb.rateLimit()!.remaining).toBe(4);

      const answers = [
        await call('POST', '/credit-entitlements', {
          name: 'Email Credits',
          unit: 'email',
          precision: 0,
          rollover_enabled: false,
          overage_enabled: false,
        }),
        await call('GET', '/credit-entitlements'),
        await call('GET', '/customers/cus_unknown'),
        await call('GET', '/no-such-route'),
      ];
      expect(answers.map((r) => r.status)).toEqual([201, 200, 404, 404]);
      expect(answers.map((r) => r.headers.get('x-ratelimit-remaining'))).toEqual(['3', '2', '1', '0']);
      expect((await call('GET', '/products')).status).toBe(429);
    });

    it('holds one bucket for the business, whatever the API key', async () => {
      const clock = manualClock();
      h = await startHarness({ rateLimit: { perMinute: 60, burst: 1 }, wallClock: clock.now });
      const other = new DodoPayments({ bearerToken: 'a_second_key', baseURL: h.apiUrl, maxRetries: 0 });
      await h.client.products.list();
      expect((await rejection(other.products.list())).status).toBe(429);
    });
  });

  describe('through the real SDK with its retries on', () => {
    /** A client that retries (as MailKit's does) and records each attempt; `on429` runs before the SDK sees a 429. */
    function retryingClient(maxRetries: number, on429: () => void = () => {}) {
      const attempts: Array<{ status: number; retryCount: string | null }> = [];
      const client = new DodoPayments({
        bearerToken: 'test',
        baseURL: h.apiUrl,
        maxRetries,
        fetch: async (url, init) => {
          const res = await fetch(url, init);
          attempts.push({ status: res.status, retryCount: new Headers(init?.headers).get('x-stainless-retry-count') });
          if (res.status === 429) on429();
          return res;
        },
      });
      return { client, attempts };
    }

    it('retries a 429 after its own backoff (no Retry-After is sent) and succeeds once the bucket has refilled', async () => {
      const clock = manualClock();
      h = await startHarness({ rateLimit: { perMinute: 60, burst: 1 }, wallClock: clock.now });
      await h.client.products.list();
      // The SDK sleeps ~0.5 s in real time before its retry; the bucket refills on the test's clock meanwhile.
      const { client, attempts } = retryingClient(2, () => clock.advance(1000));
      await expect(client.products.list()).resolves.toBeDefined();
      expect(attempts).toEqual([
        { status: 429, retryCount: '0' },
        { status: 200, retryCount: '1' },
      ]);
      expect(h.sb.rateLimit()!.limited).toBe(1);
    });

    it('spends every retry against the same bucket, then throws RateLimitError with the headers', async () => {
      const clock = manualClock();
      h = await startHarness({ rateLimit: { perMinute: 60, burst: 1 }, wallClock: clock.now });
      await h.client.products.list();
      const { client, attempts } = retryingClient(1);
      const err = await rejection(client.products.list());
      expect(err).toBeInstanceOf(DodoPayments.RateLimitError);
      expect(quotaHeaders(err.headers!)).toEqual({ limit: '1', remaining: '0', reset: String(clock.seconds(1)) });
      expect(attempts.map((a) => a.status)).toEqual([429, 429]);
      expect(h.sb.rateLimit()!.limited).toBe(2);
    });
  });

  describe('an injected 429', () => {
    it('carries the headers a real one does and no Retry-After: tier 0 while no quota is set', async () => {
      const clock = manualClock();
      h = await startHarness({ wallClock: clock.now });
      h.sb.faults.inject({ status: 429, count: 1 });
      const err = await rejection(h.client.products.list());
      expect(err.error).toMatchObject({ code: 'TOO_MANY_REQUESTS' });
      // Tier 0 (240 a minute, 40 at once) just run dry: full again in 10 s.
      expect(quotaHeaders(err.headers!)).toEqual({ limit: '40', remaining: '0', reset: String(clock.seconds(10)) });
      expect(err.headers!.get('retry-after')).toBeNull();
    });

    it('carries the configured quota when one is set', async () => {
      const clock = manualClock();
      h = await startHarness({ rateLimit: { perMinute: 60, burst: 3 }, wallClock: clock.now });
      h.sb.faults.inject({ status: 429, count: 1 });
      const err = await rejection(h.client.products.list());
      expect(quotaHeaders(err.headers!)).toEqual({ limit: '3', remaining: '0', reset: String(clock.seconds(3)) });
    });
  });

  describe('setRateLimit', () => {
    it('switches the quota on (burst 40 unless given) and off at run time, each time with a full bucket', async () => {
      const clock = manualClock();
      h = await startHarness({ wallClock: clock.now });
      const headersOfList = async () => quotaHeaders((await h.client.products.list().withResponse()).response.headers);
      expect(await headersOfList()).toEqual({ limit: null, remaining: null, reset: null });
      expect(h.sb.rateLimit()).toBeNull();

      h.sb.setRateLimit({ perMinute: 240 });
      // 240 a minute is one request every 250 ms: one spent, full again in 250 ms (rounded up to a second).
      expect(await headersOfList()).toEqual({ limit: '40', remaining: '39', reset: String(clock.seconds(1)) });
      h.sb.setRateLimit({ perMinute: 240, burst: 2 });
      expect(await headersOfList()).toMatchObject({ limit: '2', remaining: '1' });

      h.sb.setRateLimit({ perMinute: 0 });
      expect(await headersOfList()).toEqual({ limit: null, remaining: null, reset: null });
      expect(h.sb.rateLimit()).toBeNull();
    });
  });

  describe('from the environment', () => {
    it(
      'SANDBOX_DODO_RATE_LIMIT and SANDBOX_RESEND_RATE_LIMIT reach the sandbox; ' +
        "under the real quotas the tutorial's click-through is never refused",
      async () => {
        const stack = await startTestStack({ SANDBOX_DODO_RATE_LIMIT: '240', SANDBOX_RESEND_RATE_LIMIT: '2' });
        try {
          expect(stack.sandbox.dodo.rateLimit()).toMatchObject({ perMinute: 240, burst: 40 });
          expect(stack.sandbox.resend.rateLimit()).toMatchObject({ limit: 2 });
          // Subscribe, read the key from the outbox, send one email, read the balance.
          const c = await subscribe(stack, 'newcomer@example.com', 'Newcomer');
          await request(stack.url)
            .post('/send')
            .set(bearer(c.key))
            .send({ to: 'delivered@resend.dev', subject: 'Hello', html: '<p>Hi</p>' })
            .expect(200);
          expect(await balanceOf(stack, c.key)).toBe(4999);
          expect(stack.sandbox.dodo.rateLimit()!.limited).toBe(0);
          expect(stack.sandbox.resend.rateLimit()!.limited).toBe(0);
        } finally {
          await stack.close();
        }
      },
    );
  });
});
