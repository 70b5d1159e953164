import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, subscribe } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * Clients that send slowly, or send a body the request will never be allowed to use, must not
 * hold a socket: the server closes it. Spoken over raw sockets, so nothing on the client side
 * hurries or closes anything.
 */

/** A raw connection to the stack: what it received, and when the server closed it. */
interface RawClient {
  socket: Socket;
  received: () => string;
  /** Resolves with the milliseconds since `startedAt` once the server closed the connection, or null after `withinMs`. */
  closedWithin(withinMs: number): Promise<number | null>;
  startedAt: number;
}

function open(url: string): Promise<RawClient> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let data = '';
    let closedAt: number | null = null;
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    // A reset after the server closed is the server closing too.
    socket.on('error', () => undefined);
    socket.once('close', () => (closedAt = Date.now()));
    socket.once('connect', () => {
      const startedAt = Date.now();
      resolve({
        socket,
        startedAt,
        received: () => data,
        async closedWithin(withinMs) {
          await Promise.race([closed, new Promise((r) => setTimeout(r, withinMs))]);
          return closedAt === null ? null : closedAt - startedAt;
        },
      });
    });
    socket.once('error', reject);
  });
}

/** Writes one byte every `everyMs` until the socket closes. */
function dribble(client: RawClient, everyMs: number): () => void {
  const timer = setInterval(() => {
    if (!client.socket.destroyed) client.socket.write('a');
  }, everyMs);
  client.socket.once('close', () => clearInterval(timer));
  return () => clearInterval(timer);
}

const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

describe('slow clients and refused bodies', () => {
  let stack: TestStack;
  let key: string;
  // Shortened so that the tests are quick; the defaults are stated in the README.
  const HEADERS_TIMEOUT_MS = 3_000;
  const REQUEST_TIMEOUT_MS = 5_000;

  beforeAll(async () => {
    stack = await startTestStack({}, { http: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS, checkIntervalMs: 250 } });
    ({ key } = await subscribe(stack, 'slow@example.com', 'Slow'));
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('headers sent a byte every 2 s: the connection is closed once the header timeout has passed', async () => {
    const client = await open(stack.url);
    client.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `);
    const stop = dribble(client, 2_000);
    const closedAfter = await client.closedWithin(HEADERS_TIMEOUT_MS + 10_000);
    stop();
    expect(closedAfter, 'the server never closed the connection').not.toBeNull();
    expect(closedAfter!).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 500);
  }, 30_000);

  it('an authenticated body sent a byte every 2 s: the connection is closed once the request timeout has passed, nothing sent', async () => {
    const sent = stack.sandbox.resend.messages().length;
    const client = await open(stack.url);
    client.socket.write(
      head(['POST /send HTTP/1.1', 'Host: 127.0.0.1', 'Content-Type: application/json', 'Content-Length: 1000', `Authorization: Bearer ${key}`]),
    );
    client.socket.write('{"to":"delivered@resend.dev","subject":"');
    const stop = dribble(client, 2_000);
    const closedAfter = await client.closedWithin(REQUEST_TIMEOUT_MS + 10_000);
    stop();
    expect(closedAfter, 'the server never closed the connection').not.toBeNull();
    expect(stack.sandbox.resend.messages().length).toBe(sent);
  }, 30_000);

  it.each([
    ['a customer route, without a valid key (401)', ['POST /send HTTP/1.1', 'Authorization: Bearer mk_test_nope']],
    ['/webhooks/resend, without its signature headers (401)', ['POST /webhooks/resend HTTP/1.1']],
    ['/webhooks/dodo, without its signature headers (401)', ['POST /webhooks/dodo HTTP/1.1']],
    [
      '/webhooks/resend, signed 10 minutes ago (401)',
      ['POST /webhooks/resend HTTP/1.1', 'svix-id: msg_1', `svix-timestamp: ${Math.floor(Date.now() / 1000) - 600}`, 'svix-signature: v1,AAAA'],
    ],
    ['a route that does not exist (404)', ['POST /nowhere HTTP/1.1']],
  ])('%s: answered before the body is read, and the connection closed', async (_name, [requestLine, ...headers]) => {
    const client = await open(stack.url);
    // A megabyte announced, a few bytes sent: the answer cannot wait for the rest.
    client.socket.write(head([requestLine!, 'Host: 127.0.0.1', 'Content-Type: application/json', 'Content-Length: 1000000', ...headers]));
    client.socket.write('{"to":');
    const closedAfter = await client.closedWithin(5_000);
    expect(client.received()).toMatch(/^HTTP\/1\.1 4\d\d /);
    expect(client.received()).toMatch(/\r\nconnection: close\r\n/i);
    expect(closedAfter, 'the server kept the connection open, waiting for the body').not.toBeNull();
  });

  it("a webhook body over the webhooks' limit is 413, before any signature check", async () => {
    const client = await open(stack.url);
    const at = Math.floor(Date.now() / 1000);
    client.socket.write(
      head([
        'POST /webhooks/resend HTTP/1.1',
        'Host: 127.0.0.1',
        'Content-Type: application/json',
        `Content-Length: ${300 * 1024}`,
        'svix-id: msg_1',
        `svix-timestamp: ${at}`,
        'svix-signature: v1,AAAA',
      ]),
    );
    await client.closedWithin(5_000);
    expect(client.received()).toMatch(/^HTTP\/1\.1 413 /);
  });
});

describe('connections per client address', () => {
  let stack: TestStack;
  const CAP = 20;

  beforeAll(async () => {
    // Loopback is exempt from the cap by default (every client of a sandbox is on this machine):
    // here it is not, so that this machine can stand for one remote client.
    stack = await startTestStack({ MAX_CONNECTIONS_PER_ADDRESS: String(CAP) }, { connectionCapExempt: () => false });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it(`one address holds at most ${CAP} connections at once: the ones past it are closed at once, and a freed slot takes a new one`, async () => {
    const clients = await Promise.all(Array.from({ length: CAP + 10 }, () => open(stack.url)));
    const closed = await Promise.all(clients.map((c) => c.closedWithin(1_000)));
    const refused = closed.filter((t) => t !== null).length;
    // The stack's own SDK connections to its sandbox come from this address too: they count.
    expect(refused).toBeGreaterThanOrEqual(10);
    for (const c of clients) c.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const again = await open(stack.url);
    again.socket.write(head(['GET /healthz HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close']));
    await again.closedWithin(5_000);
    expect(again.received()).toMatch(/^HTTP\/1\.1 200 /);
  });
});
