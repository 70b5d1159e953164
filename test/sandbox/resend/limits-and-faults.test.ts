import { afterEach, describe, expect, it } from 'vitest';
import { email, expectResendError, manualClock, startSandbox, type Harness } from './harness';

let h: Harness;
afterEach(async () => {
  await h.close();
});

describe('rate limit', () => {
  it("answers 429 rate_limit_exceeded with Resend's headers past the per-second limit", async () => {
    const clock = manualClock();
    h = await startSandbox({ now: clock.now, rateLimitPerSecond: 2 });
    const one = await h.api('/emails', { body: email() });
    const two = await h.api('/emails', { body: email() });
    expect([one.status, two.status]).toEqual([200, 200]);
    expect(one.headers.get('ratelimit-limit')).toBe('2');
    expect(one.headers.get('ratelimit-remaining')).toBe('1');
    expect(two.headers.get('ratelimit-remaining')).toBe('0');

    const three = await h.api('/emails', { body: email() });
    expect(three.status).toBe(429);
    expectResendError(await three.json(), 429, 'rate_limit_exceeded');
    expect(three.headers.get('ratelimit-limit')).toBe('2');
    expect(three.headers.get('ratelimit-remaining')).toBe('0');
    expect(three.headers.get('ratelimit-reset')).toBe('1');
    expect(three.headers.get('retry-after')).toBe('1');
    expect(h.sandbox.messages()).toHaveLength(2);

    clock.advance(1000);
    const later = await h.api('/emails', { body: email() });
    expect(later.status).toBe(200);
  });

  it('shares one limit between every API key, as Resend limits per team', async () => {
    const clock = manualClock();
    h = await startSandbox({ now: clock.now, rateLimitPerSecond: 2 });
    const a = await h.api('/emails', { body: email(), headers: { authorization: 'Bearer re_a' } });
    const b = await h.api('/emails', { body: email(), headers: { authorization: 'Bearer re_b' } });
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(b.headers.get('ratelimit-remaining')).toBe('0');
    const third = await h.api('/emails/00000000-0000-0000-0000-000000000000', { headers: { authorization: 'Bearer re_c' } });
    expect(third.status).toBe(429);
    expect((await third.json()).message).toMatch(/^Too many requests\. You can only make 2 requests per second\./);
    expect(h.sandbox.rateLimit()).toEqual({ limit: 2, remaining: 0, resetSeconds: 1, limited: 1 });
  });

  it('does not count an unauthenticated request', async () => {
    const clock = manualClock();
    h = await startSandbox({ now: clock.now, rateLimitPerSecond: 1 });
    const anonymous = await h.api('/emails', { body: email(), headers: { authorization: '' } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('ratelimit-limit')).toBeNull();
    expect((await h.api('/emails', { body: email() })).status).toBe(200);
  });

  it('reaches the SDK as a rate_limit_exceeded error with the headers', async () => {
    const clock = manualClock();
    h = await startSandbox({ now: clock.now });
    h.sandbox.setRateLimit(1);
    await h.resend.emails.send(email());
    const { error, headers } = await h.resend.emails.send(email());
    expect(error).toMatchObject({ statusCode: 429, name: 'rate_limit_exceeded' });
    expect(headers).toMatchObject({ 'retry-after': '1', 'ratelimit-remaining': '0' });

    h.sandbox.setRateLimit(0);
    const res = await h.api('/emails', { body: email() });
    expect(res.status).toBe(200);
    expect(res.headers.get('ratelimit-limit')).toBeNull();
    expect(h.sandbox.rateLimit()).toBeNull();
  });
});

describe('faults', () => {
  it('answers an injected 500 in the envelope and sends nothing', async () => {
    h = await startSandbox();
    h.sandbox.faults.inject({ status: 500, count: 1 });
    const { data, error } = await h.resend.emails.send(email());
    expect(data).toBeNull();
    expect(error).toEqual({ statusCode: 500, name: 'internal_server_error', message: expect.any(String) });
    expect(h.sandbox.messages()).toHaveLength(0);
    // count: 1 means the next request is normal again.
    expect((await h.resend.emails.send(email())).error).toBeNull();
  });

  it('gives an injected 429 the same headers as a real rate limit', async () => {
    h = await startSandbox();
    h.sandbox.faults.inject({ status: 429, count: 1 });
    const res = await h.api('/emails', { body: email() });
    expect(res.status).toBe(429);
    expectResendError(await res.json(), 429, 'rate_limit_exceeded');
    for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after']) {
      expect(res.headers.get(name), name).not.toBeNull();
    }
    expect(res.headers.get('ratelimit-remaining')).toBe('0');
  });

  it('quotes the configured limit in an injected 429, as in a real one', async () => {
    h = await startSandbox({ rateLimitPerSecond: 5 });
    h.sandbox.faults.inject({ status: 429, count: 1 });
    const res = await h.api('/emails', { body: email() });
    expect(res.headers.get('ratelimit-limit')).toBe('5');
    expect((await res.json()).message).toMatch(/You can only make 5 requests per second/);
  });

  it('delays answers by the injected latency', async () => {
    h = await startSandbox();
    h.sandbox.faults.setLatency(250);
    const started = Date.now();
    const { error } = await h.resend.emails.send(email());
    expect(error).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
  });

  it('on drop-after-processing, the SDK sees no answer but the email is in the outbox, and a keyed retry replays it', async () => {
    h = await startSandbox();
    h.sandbox.faults.inject({ dropAfterProcessing: true, count: 1, match: /^POST \/emails$/ });
    const dropped = await h.resend.emails.send(email(), { idempotencyKey: 'ambiguous-1' });
    expect(dropped.data).toBeNull();
    expect(dropped.error).toMatchObject({ statusCode: null, name: 'application_error' });
    expect(h.sandbox.messages()).toHaveLength(1);

    const retry = await h.resend.emails.send(email(), { idempotencyKey: 'ambiguous-1' });
    expect(retry.error).toBeNull();
    expect(retry.data!.id).toBe(h.sandbox.messages()[0]!.id);
    expect(h.sandbox.messages()).toHaveLength(1);
  });

  it('hits a keyed retry too: a fault is not bypassed by the idempotent replay', async () => {
    h = await startSandbox();
    const first = await h.resend.emails.send(email(), { idempotencyKey: 'retry-under-fault' });
    h.sandbox.faults.inject({ status: 503, count: 1 });
    const faulted = await h.resend.emails.send(email(), { idempotencyKey: 'retry-under-fault' });
    expect(faulted.error).toMatchObject({ statusCode: 503, name: 'application_error' });
    const replayed = await h.resend.emails.send(email(), { idempotencyKey: 'retry-under-fault' });
    expect(replayed.data!.id).toBe(first.data!.id);
    expect(h.sandbox.faults.requestCount(/^POST \/emails$/)).toBe(3);
    expect(h.sandbox.messages()).toHaveLength(1);
  });

  it('counts the requests it has seen', async () => {
    h = await startSandbox();
    await h.resend.emails.send(email());
    await h.resend.batch.send([email()]);
    expect(h.sandbox.faults.requestCount(/^POST \/emails$/)).toBe(1);
    expect(h.sandbox.faults.requestCount(/^POST \/emails\/batch$/)).toBe(1);
  });
});
