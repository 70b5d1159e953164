import * as http from 'node:http';
import * as https from 'node:https';

/** The `fetch` signature the Dodo SDK accepts as its `fetch` option. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface HttpFetchOptions {
  /** A response body larger than this is refused (the call fails as a connection error). Default 16 MiB. */
  maxResponseBytes?: number;
  /** Sockets per upstream host (default 64); requests beyond wait in the agent's queue. */
  maxSockets?: number;
}

/**
 * `fetch` over node:http(s) with a keep-alive agent, for the Dodo SDK (its `fetch` option).
 *
 * Why: Node's built-in fetch builds WHATWG streams, Request and Headers objects for every call.
 * On the send path that is two upstream calls per email; measured here (loopback, SDK debit
 * call) this transport takes p50 0.24 ms instead of 0.44 ms and p99 0.6 ms instead of 4 ms.
 * Resend's SDK calls the global fetch and takes no transport, so it keeps the built-in one.
 *
 * Semantics the SDK relies on: it resolves with a Response once the whole body has arrived
 * (JSON APIs; the SDK's timeout therefore covers the body too), it rejects with the signal's
 * AbortError when aborted (the SDK reports a timeout and retries with the same idempotency
 * key), and with `TypeError('fetch failed', { cause })` on a network error, as undici does.
 */
export function createHttpFetch(opts: HttpFetchOptions = {}): FetchLike {
  const maxBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
  const agentOptions = { keepAlive: true, maxSockets: opts.maxSockets ?? 64, scheduling: 'lifo' as const };
  const agents = { 'http:': new http.Agent(agentOptions), 'https:': new https.Agent(agentOptions) };

  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        reject(new TypeError(`fetch failed: unsupported protocol ${url.protocol}`));
        return;
      }
      const body = requestBody(init.body);
      if (body instanceof Error) {
        reject(body);
        return;
      }
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, name) => (headers[name] = value));
      if (body !== undefined) headers['content-length'] = String(body.byteLength);

      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        const aborted = (err as { name?: string }).name === 'AbortError';
        reject(aborted ? err : new TypeError('fetch failed', { cause: err }));
      };
      const send = url.protocol === 'https:' ? https.request : http.request;
      const req = send(
        url,
        { method: (init.method ?? 'GET').toUpperCase(), headers, agent: agents[url.protocol], signal: init.signal ?? undefined },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBytes) res.destroy(new Error(`response body over ${maxBytes} bytes`));
            else chunks.push(chunk);
          });
          res.on('error', fail);
          res.on('close', () => {
            if (!res.complete) fail(new Error('the connection closed before the response was complete'));
          });
          res.on('end', () => {
            if (settled) return;
            settled = true;
            const status = res.statusCode ?? 0;
            const responseHeaders = new Headers();
            for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
            // A Response refuses a body for the null-body statuses.
            const nullBody = status === 204 || status === 205 || status === 304;
            try {
              resolve(
                new Response(nullBody ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers: responseHeaders }),
              );
            } catch (err) {
              reject(new TypeError('fetch failed', { cause: err }));
            }
          });
        },
      );
      req.on('error', fail);
      req.end(body);
    });
}

/** The request bodies a JSON API client sends; anything else is refused rather than mis-sent. */
function requestBody(body: RequestInit['body']): Buffer | undefined | TypeError {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  return new TypeError('fetch failed: this transport sends string and byte bodies only');
}
