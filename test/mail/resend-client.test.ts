import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Resend } from 'resend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpFetch } from '../../src/lib/http-fetch';
import { ResendClient } from '../../src/mail/resend-client';
import { email, startSandbox, type Harness } from '../sandbox/resend/harness';

/**
 * ResendClient is the SDK with MailKit's transport: every answer must read as the SDK's own
 * (over the built-in fetch) reads it, since the mailer tells sent, rejected and unknown apart
 * from it. Each case runs the same call through both and compares.
 */
describe('ResendClient', () => {
  let h: Harness;
  let client: ResendClient;
  /** Calls that went through the transport given, not the global fetch. */
  let carried = 0;
  beforeAll(async () => {
    h = await startSandbox();
    const transport = createHttpFetch();
    client = new ResendClient('re_test_123', { baseUrl: h.apiBase }, (input, init) => (carried++, transport(input, init)));
  });
  afterAll(() => h.close());

  /** The parts of an answer that do not change from one call to the next. */
  const shape = (r: { data: unknown; error: unknown; headers: Record<string, string> | null }) => ({
    data: r.data === null ? null : Object.keys(r.data as object).sort(),
    error: r.error,
    headers: r.headers && Object.keys(r.headers).filter((h) => !['date', 'x-request-id', 'etag'].includes(h)).sort(),
  });

  it('a send, over the transport given: the id Resend gave, and its headers', async () => {
    const before = carried;
    const ours = await client.emails.send(email());
    expect(carried - before).toBe(1);
    const sdk = await h.resend.emails.send(email());
    expect(ours.error).toBeNull();
    expect(ours.data?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(shape(ours)).toEqual(shape(sdk));
    expect(h.sandbox.messages().map((m) => m.id)).toContain(ours.data!.id);
  });

  it('a batch with an idempotency key and permissive validation: the headers reach Resend, a repeat answers the same ids', async () => {
    const items = [email({ subject: 'one' }), email({ to: 'not-an-address', subject: 'two' })];
    const first = await client.batch.send(items, { idempotencyKey: 'rc-batch-1', batchValidation: 'permissive' });
    const again = await client.batch.send(items, { idempotencyKey: 'rc-batch-1', batchValidation: 'permissive' });
    expect(first.error).toBeNull();
    expect(first.data?.data).toHaveLength(1);
    expect(first.data?.errors).toEqual([expect.objectContaining({ index: 1 })]);
    expect(again.data).toEqual(first.data);
    const sdk = await h.resend.batch.send(items, { idempotencyKey: 'rc-batch-2', batchValidation: 'permissive' });
    expect(shape(first)).toEqual(shape(sdk));
  });

  it("Resend's error: its body as the error, with its status", async () => {
    const ours = await client.emails.send(email({ to: 'not-an-address' }));
    const sdk = await h.resend.emails.send(email({ to: 'not-an-address' }));
    expect(ours.error).toMatchObject({ statusCode: 422, name: 'validation_error' });
    expect(shape(ours)).toEqual(shape(sdk));
  });

  it('a path parameter that is a dot segment: refused before any request', async () => {
    const before = h.sandbox.faults.requestCount(/./);
    const ours = await client.emails.get('..');
    expect(ours).toEqual(await h.resend.emails.get('..'));
    expect(ours.error).toMatchObject({ statusCode: null, name: 'invalid_parameter' });
    expect(h.sandbox.faults.requestCount(/./)).toBe(before);
  });

  describe('answers that are not Resend', () => {
    let server: Server;
    let base: string;
    beforeAll(async () => {
      server = createServer((req, res) => {
        if (req.url?.includes('html')) res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>');
        else if (req.url?.includes('slow')) setTimeout(() => res.end('{}'), 2_000);
        else req.socket.destroy();
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => {
      server.closeAllConnections();
      server.close();
    });
    const both = (path: string) => [new ResendClient('re_x', { baseUrl: `${base}/${path}` }, createHttpFetch()), new Resend('re_x', { baseUrl: `${base}/${path}` })];

    it('a body that is not JSON: application_error with the status', async () => {
      const [ours, sdk] = await Promise.all(both('html').map((c) => c.emails.send(email())));
      expect(ours!.error).toEqual({ name: 'application_error', statusCode: 502, message: expect.any(String) });
      expect(ours!.error).toEqual(sdk!.error);
    });

    it('no answer (connection reset, or the caller timed out): statusCode null, the outcome unknown', async () => {
      const [ours, sdk] = await Promise.all(both('reset').map((c) => c.emails.send(email())));
      expect(ours!.error).toEqual({ name: 'application_error', statusCode: null, message: expect.any(String) });
      expect(ours).toEqual(sdk);
      const [late, sdkLate] = await Promise.all(both('slow').map((c) => c.emails.send(email(), { signal: AbortSignal.timeout(100) })));
      expect(late!.error).toMatchObject({ statusCode: null });
      expect(late).toEqual(sdkLate);
    });
  });
});
