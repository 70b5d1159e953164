import DodoPayments from 'dodopayments';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpFetch } from '../../src/lib/http-fetch';

describe('createHttpFetch', () => {
  let server: Server;
  let base: string;
  let handle: (req: IncomingMessage, res: ServerResponse, body: string) => void;
  const fetchHttp = createHttpFetch({ maxResponseBytes: 1024 });

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => handle(req, res, body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('sends the method, headers and body, and answers status, headers and body', async () => {
    handle = (req, res, body) => {
      res.writeHead(201, { 'Content-Type': 'application/json', 'X-Echo': String(req.headers['x-test']) });
      res.end(JSON.stringify({ method: req.method, body, length: req.headers['content-length'] }));
    };
    const r = await fetchHttp(`${base}/things`, { method: 'post', headers: new Headers({ 'X-Test': 'é1' }), body: '{"a":"é"}' });
    expect(r.status).toBe(201);
    expect(r.ok).toBe(true);
    expect(r.headers.get('x-echo')).toBe('é1');
    expect(await r.json()).toEqual({ method: 'POST', body: '{"a":"é"}', length: '10' });
  });

  it('answers a 204 with no body, and an error status with its body', async () => {
    handle = (_req, res) => res.writeHead(204).end();
    const empty = await fetchHttp(`${base}/`, { method: 'DELETE' });
    expect(empty.status).toBe(204);
    expect(await empty.text()).toBe('');
    handle = (_req, res) => res.writeHead(409, { 'Content-Type': 'application/json' }).end('{"code":"CONFLICT"}');
    const conflict = await fetchHttp(`${base}/`);
    expect(conflict.ok).toBe(false);
    expect(await conflict.json()).toEqual({ code: 'CONFLICT' });
  });

  it('rejects with an AbortError when its signal aborts before the answer', async () => {
    handle = () => undefined; // never answers
    const controller = new AbortController();
    const pending = fetchHttp(`${base}/slow`, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('rejects with TypeError("fetch failed") carrying the cause when the connection drops', async () => {
    handle = (req) => req.socket.destroy();
    const err = await fetchHttp(`${base}/`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as TypeError).message).toBe('fetch failed');
    expect((err as TypeError).cause).toBeDefined();
  });

  it('rejects when the connection drops halfway through the body, rather than answering half of it', async () => {
    handle = (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '100' });
      res.write('{"id":"cle_');
      setTimeout(() => req.socket.destroy(), 20);
    };
    await expect(fetchHttp(`${base}/half`)).rejects.toThrow('fetch failed');
  });

  it('refuses a response body over the limit rather than buffering it', async () => {
    handle = (_req, res) => res.writeHead(200).end('x'.repeat(4096));
    await expect(fetchHttp(`${base}/big`)).rejects.toThrow('fetch failed');
  });

  it('refuses a body it cannot send as bytes', async () => {
    await expect(fetchHttp(`${base}/`, { method: 'POST', body: new FormData() })).rejects.toThrow(TypeError);
  });

  describe('under the Dodo SDK', () => {
    it("a timeout is the SDK's connection timeout, after its retries", async () => {
      let calls = 0;
      handle = () => void calls++; // never answers
      const dodo = new DodoPayments({ bearerToken: 'k', baseURL: base, fetch: fetchHttp, timeout: 50, maxRetries: 1 });
      await expect(dodo.customers.retrieve('cus_1')).rejects.toBeInstanceOf(DodoPayments.APIConnectionTimeoutError);
      expect(calls).toBe(2);
    });

    it("a dropped connection is the SDK's connection error; a 429 is retried like any fetch", async () => {
      handle = (req) => req.socket.destroy();
      const dodo = new DodoPayments({ bearerToken: 'k', baseURL: base, fetch: fetchHttp, maxRetries: 0 });
      await expect(dodo.customers.retrieve('cus_1')).rejects.toBeInstanceOf(DodoPayments.APIConnectionError);

      let calls = 0;
      handle = (_req, res) => {
        if (++calls === 1) return res.writeHead(429, { 'Retry-After': '0', 'Content-Type': 'application/json' }).end('{"code":"RATE_LIMITED"}');
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"customer_id":"cus_1","email":"a@example.com","name":"A"}');
      };
      const retrying = new DodoPayments({ bearerToken: 'k', baseURL: base, fetch: fetchHttp, maxRetries: 1 });
      expect(await retrying.customers.retrieve('cus_1')).toMatchObject({ customer_id: 'cus_1' });
      expect(calls).toBe(2);
    });
  });
});
