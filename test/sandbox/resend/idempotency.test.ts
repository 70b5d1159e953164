import { afterEach, describe, expect, it } from 'vitest';
import { assertResponseMatchesSpec } from '../../support/openapi';
import { email, expectResendError, manualClock, startSandbox, type Harness } from './harness';

let h: Harness;
afterEach(async () => {
  await h.close();
});

describe('Idempotency-Key', () => {
  describe('on POST /emails', () => {
    it('answers a retry with the same payload with the same id and sends one email', async () => {
      h = await startSandbox();
      const first = await h.resend.emails.send(email(), { idempotencyKey: 'welcome/42' });
      const second = await h.resend.emails.send(email(), { idempotencyKey: 'welcome/42' });
      expect(first.error).toBeNull();
      expect(second.error).toBeNull();
      assertResponseMatchesSpec('resend', 'post', '/emails', 200, second.data);
      expect(second.data!.id).toBe(first.data!.id);
      expect(h.sandbox.messages()).toHaveLength(1);
    });

    it('treats the same JSON with keys in another order as the same payload', async () => {
      h = await startSandbox();
      const a = await h.api('/emails', {
        rawBody: '{"from":"a@mailkit.dev","to":"b@example.com","subject":"s","text":"t"}',
        headers: { 'idempotency-key': 'k' },
      });
      const b = await h.api('/emails', {
        rawBody: '{"text":"t","subject":"s","to":"b@example.com","from":"a@mailkit.dev"}',
        headers: { 'idempotency-key': 'k' },
      });
      expect(b.status).toBe(200);
      expect((await b.json()).id).toBe((await a.json()).id);
      expect(h.sandbox.messages()).toHaveLength(1);
    });

    it('answers 409 invalid_idempotent_request when the payload differs, and sends nothing more', async () => {
      h = await startSandbox();
      await h.resend.emails.send(email(), { idempotencyKey: 'k1' });
      const { data, error } = await h.resend.emails.send(email({ subject: 'Changed' }), { idempotencyKey: 'k1' });
      expect(data).toBeNull();
      expect(error).toMatchObject({ statusCode: 409, name: 'invalid_idempotent_request' });
      expect(h.sandbox.messages()).toHaveLength(1);
    });

    it('answers 409 concurrent_idempotent_requests while the first request is still in flight', async () => {
      h = await startSandbox();
      h.sandbox.faults.inject({ latencyMs: 400, count: 1, match: /^POST \/emails$/ });
      const slow = h.resend.emails.send(email(), { idempotencyKey: 'race' });
      await new Promise((r) => setTimeout(r, 100));
      const concurrent = await h.resend.emails.send(email(), { idempotencyKey: 'race' });
      expect(concurrent.error).toMatchObject({ statusCode: 409, name: 'concurrent_idempotent_requests' });

      const first = await slow;
      expect(first.error).toBeNull();
      // Once the first is answered, a retry is a replay.
      const retry = await h.resend.emails.send(email(), { idempotencyKey: 'race' });
      expect(retry.data!.id).toBe(first.data!.id);
      expect(h.sandbox.messages()).toHaveLength(1);
    });

    it('is scoped per API key', async () => {
      h = await startSandbox();
      const a = await h.api('/emails', { body: email(), headers: { 'idempotency-key': 'same', authorization: 'Bearer re_key_a' } });
      const b = await h.api('/emails', {
        body: email({ subject: 'other' }),
        headers: { 'idempotency-key': 'same', authorization: 'Bearer re_key_b' },
      });
      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      expect((await a.json()).id).not.toBe((await b.json()).id);
      expect(h.sandbox.messages()).toHaveLength(2);
    });

    it('answers 400 invalid_idempotency_key for a key longer than 256 characters, and accepts 256', async () => {
      h = await startSandbox();
      const long = await h.api('/emails', { body: email(), headers: { 'idempotency-key': 'x'.repeat(257) } });
      expect(long.status).toBe(400);
      expectResendError(await long.json(), 400, 'invalid_idempotency_key');
      expect(h.sandbox.messages()).toHaveLength(0);
      const max = await h.api('/emails', { body: email(), headers: { 'idempotency-key': 'x'.repeat(256) } });
      expect(max.status).toBe(200);
    });

    it('does not remember a rejected request, so the corrected one can reuse the key', async () => {
      h = await startSandbox();
      const bad = await h.resend.emails.send(email({ from: 'bad' }), { idempotencyKey: 'fix-me' });
      expect(bad.error).toMatchObject({ statusCode: 422 });
      const good = await h.resend.emails.send(email(), { idempotencyKey: 'fix-me' });
      expect(good.error).toBeNull();
      expect(h.sandbox.messages()).toHaveLength(1);
    });

    it('forgets a key after 24 hours', async () => {
      const clock = manualClock();
      h = await startSandbox({ now: clock.now });
      const first = await h.resend.emails.send(email(), { idempotencyKey: 'daily' });
      clock.advance(24 * 60 * 60 * 1000 - 1);
      const within = await h.resend.emails.send(email(), { idempotencyKey: 'daily' });
      expect(within.data!.id).toBe(first.data!.id);
      clock.advance(1);
      const after = await h.resend.emails.send(email(), { idempotencyKey: 'daily' });
      expect(after.error).toBeNull();
      expect(after.data!.id).not.toBe(first.data!.id);
      expect(h.sandbox.messages()).toHaveLength(2);
    });
  });

  describe('on POST /emails/batch', () => {
    it('replays the same batch with the same ids and sends it once', async () => {
      h = await startSandbox();
      const batch = [email({ subject: 'a' }), email({ subject: 'b' })];
      const first = await h.resend.batch.send(batch, { idempotencyKey: 'batch-1' });
      const second = await h.resend.batch.send(batch, { idempotencyKey: 'batch-1' });
      expect(second.error).toBeNull();
      assertResponseMatchesSpec('resend', 'post', '/emails/batch', 200, second.data);
      expect(second.data).toEqual(first.data);
      expect(h.sandbox.messages()).toHaveLength(2);
    });

    it('answers 409 invalid_idempotent_request for a different batch under the same key', async () => {
      h = await startSandbox();
      await h.resend.batch.send([email()], { idempotencyKey: 'batch-2' });
      const { error } = await h.resend.batch.send([email(), email()], { idempotencyKey: 'batch-2' });
      expect(error).toMatchObject({ statusCode: 409, name: 'invalid_idempotent_request' });
      expect(h.sandbox.messages()).toHaveLength(1);
    });

    it('keeps keys apart per endpoint', async () => {
      h = await startSandbox();
      const single = await h.resend.emails.send(email(), { idempotencyKey: 'shared' });
      const batch = await h.resend.batch.send([email()], { idempotencyKey: 'shared' });
      expect(batch.error).toBeNull();
      expect(batch.data!.data[0]!.id).not.toBe(single.data!.id);
      expect(h.sandbox.messages()).toHaveLength(2);
    });
  });
});
