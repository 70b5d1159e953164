import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertResponseMatchesSpec } from '../../support/openapi';
import { email, expectResendError, startSandbox, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startSandbox();
});
afterEach(async () => {
  await h.close();
});

describe('POST /emails/batch', () => {
  it('sends every email of a valid batch and answers their ids in order', async () => {
    const { data, error } = await h.resend.batch.send([email({ subject: 'one' }), email({ subject: 'two' }), email({ subject: 'three' })]);
    expect(error).toBeNull();
    assertResponseMatchesSpec('resend', 'post', '/emails/batch', 200, data);
    expect(data!.data).toHaveLength(3);
    const bySubject = new Map(h.sandbox.messages().map((m) => [m.subject, m.id]));
    expect(data!.data.map((d) => d.id)).toEqual([bySubject.get('one'), bySubject.get('two'), bySubject.get('three')]);
    // Strict answers carry no `errors` key.
    expect(data).not.toHaveProperty('errors');
  });

  describe('in strict mode (the default)', () => {
    it('rejects the whole batch with 422 when one email is invalid, and sends nothing', async () => {
      const { data, error } = await h.resend.batch.send([email(), email({ subject: undefined }), email()], { batchValidation: 'strict' });
      expect(data).toBeNull();
      expect(error).toMatchObject({ statusCode: 422, name: 'missing_required_field' });
      expect(error!.message).toContain('emails[1]');
      expect(h.sandbox.messages()).toHaveLength(0);
    });

    it('is what the SDK asks for when no mode is given', async () => {
      const res = await h.api('/emails/batch', { body: [{ from: 'a@mailkit.dev', to: 'b@example.com', subject: 's', html: 'x' }, { from: 'bad' }] });
      expect(res.status).toBe(422);
      expectResendError(await res.json(), 422, 'validation_error');
      expect(h.sandbox.messages()).toHaveLength(0);
    });
  });

  describe('in permissive mode', () => {
    it('sends the valid emails and lists the invalid ones by index', async () => {
      const { data, error } = await h.resend.batch.send(
        [email({ subject: 'good-0' }), email({ from: 'nope' }), email({ subject: 'good-2' }), email({ to: [] })],
        { batchValidation: 'permissive' },
      );
      expect(error).toBeNull();
      assertResponseMatchesSpec('resend', 'post', '/emails/batch', 200, data);
      expect(data!.data).toHaveLength(2);
      expect(data!.errors).toEqual([
        { index: 1, message: expect.stringContaining('`from`') },
        { index: 3, message: expect.stringContaining('`to`') },
      ]);
      expect(
        h.sandbox
          .messages()
          .map((m) => m.subject)
          .sort(),
      ).toEqual(['good-0', 'good-2']);
      expect(new Set(h.sandbox.messages().map((m) => m.id))).toEqual(new Set(data!.data.map((d) => d.id)));
    });

    it('answers an empty errors list when everything is valid', async () => {
      const { data } = await h.resend.batch.send([email()], { batchValidation: 'permissive' });
      expect(data).toEqual({ data: [{ id: expect.any(String) }], errors: [] });
    });
  });

  it('rejects more than 100 emails with 422 and accepts exactly 100', async () => {
    const tooMany = await h.api('/emails/batch', {
      body: Array.from({ length: 101 }, () => ({ from: 'a@mailkit.dev', to: 'b@example.com', subject: 's', text: 't' })),
    });
    expect(tooMany.status).toBe(422);
    expectResendError(await tooMany.json(), 422, 'validation_error');
    expect(h.sandbox.messages()).toHaveLength(0);

    const { data, error } = await h.resend.batch.send(Array.from({ length: 100 }, () => email()));
    expect(error).toBeNull();
    expect(data!.data).toHaveLength(100);
    expect(h.sandbox.messages()).toHaveLength(100);
  });

  it('rejects a body that is not an array, an empty batch, attachments and an unknown mode', async () => {
    const cases = [
      { body: email() },
      { body: [] },
      { body: [{ ...email(), attachments: [{ filename: 'a.txt', content: 'aGk=' }] }] },
      { body: [email()], headers: { 'x-batch-validation': 'lenient' } },
    ];
    for (const c of cases) {
      const res = await h.api('/emails/batch', c);
      expect(res.status).toBe(422);
      expectResendError(await res.json(), 422, 'validation_error');
    }
    expect(h.sandbox.messages()).toHaveLength(0);
  });
});
