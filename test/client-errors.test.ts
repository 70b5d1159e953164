import { request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger';
import { bearer, startTestStack, subscribe } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * One raw request: the exact bytes given, so a body can lie about its Content-Encoding, and the
 * path as written (a URL object would resolve `%2e%2e` before sending).
 */
function raw(
  origin: string,
  path: string,
  method: string,
  headers: Record<string, string>,
  body?: Buffer | string,
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Every error a client causes is a 4xx, and is not logged as an error (no stack trace, no
 * absolute path in the log): a body that is not the gzip it claims, a missing sandbox asset,
 * a `..` path.
 */
describe('client errors', () => {
  let stack: TestStack;
  let key: string;
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });

  beforeAll(async () => {
    stack = await startTestStack({}, { log: createLogger('info', sink) });
    key = (await subscribe(stack, 'gzip@example.com')).key;
  });
  afterAll(async () => {
    await stack?.close();
  });

  const errorLines = () => lines.filter((l) => (JSON.parse(l) as { level: number }).level >= 50);

  describe('a body that says Content-Encoding: gzip and is not gzip', () => {
    const notGzip = 'this is not gzip';
    const json = (extra: Record<string, string> = {}) => ({ 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', ...extra });
    const cases: Array<[string, string, Record<string, string>]> = [
      ['POST /send (authenticated)', '/send', {}],
      ['POST /send/batch (authenticated)', '/send/batch', {}],
      ['POST /checkout/subscribe', '/checkout/subscribe', {}],
      // With its signature headers: without them the body is not read at all (401).
      [
        'POST /webhooks/dodo',
        '/webhooks/dodo',
        { 'webhook-id': 'msg_gzip', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAA' },
      ],
      ['the Resend sandbox', '/sandbox/resend/emails', { Authorization: 'Bearer re_x' }],
      ['the Dodo sandbox', '/sandbox/dodo/customers', { Authorization: 'Bearer x' }],
      ['the console API', '/sandbox/api/clock/advance', {}],
    ];
    it.each(cases)('%s answers 400, sends nothing, logs no error', async (_name, path, headers) => {
      lines.length = 0;
      const sent = stack.sandbox.resend.messages().length;
      const auth = path.startsWith('/send') ? bearer(key) : {};
      const res = await raw(stack.url, path, 'POST', json({ ...auth, ...headers }), notGzip);
      expect(res.status).toBe(400);
      expect(res.body).not.toMatch(/\/work\/|node_modules|at \w+ \(/);
      expect(stack.sandbox.resend.messages().length).toBe(sent);
      expect(errorLines()).toEqual([]);
    });

    it('the checkout page form answers 400', async () => {
      lines.length = 0;
      const res = await raw(
        stack.url,
        '/sandbox/checkout/cks_missing/pay',
        'POST',
        { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Encoding': 'gzip' },
        notGzip,
      );
      expect(res.status).toBe(400);
      expect(errorLines()).toEqual([]);
    });

    it('while a body that is gzip is read as usual', async () => {
      const body = gzipSync(JSON.stringify({ to: 'delivered@resend.dev', subject: 'gzipped', html: '<p>g</p>' }));
      const res = await raw(stack.url, '/send', 'POST', json(bearer(key)), body);
      expect(res.status).toBe(200);
    });
  });

  describe('static paths', () => {
    it.each([
      ['a missing sandbox asset', '/sandbox/assets/nope.css', 404],
      ['a %2e%2e path under the sandbox assets', '/sandbox/assets/%2e%2e/index.ts', 403],
      ['an encoded dot-dot path under the sandbox assets', '/sandbox/assets/%2e%2e%2f%2e%2e%2fpackage.json', 403],
      ['a %2e%2e path at the root', '/%2e%2e/package.json', 404],
      ['a %2e%2e path under /vendor', '/vendor/uplot/%2e%2e/package.json', 404],
      ['a bad percent-encoding under the sandbox assets', '/sandbox/assets/%E0%A4%A', 400],
    ])('%s (%s) answers %s, with no path in the answer and no error in the log', async (_name, path, status) => {
      lines.length = 0;
      const res = await raw(stack.url, path, 'GET', {});
      expect(res.status).toBe(status);
      expect(res.body).not.toMatch(/\/work\/|src\/sandbox|ENOENT/);
      expect(errorLines()).toEqual([]);
      expect(lines.join('\n')).not.toMatch(/"stack"/);
    });
  });
});
