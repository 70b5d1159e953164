import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that can lose a COMMIT's acknowledgement: armed, it lets
 * the Nth COMMIT reach the server (which commits it) and then cuts the connection before the
 * server's answer reaches the client. The client sees its connection die mid-commit, as after
 * a network fault or a database failover, while the transaction is durable.
 *
 * It reads the client's stream for a simple-query message (`Q`) whose text is `commit`, which is
 * how pg sends Kysely's `commit` (no parameters: the simple protocol).
 */
export interface PgProxy {
  /** postgres://… pointing at the proxy instead of `target`. */
  url: string;
  /** The next `nth` COMMIT (counted from now, across connections) loses its acknowledgement. */
  dropAfterCommit(nth: number): void;
  /** Forgets an armed drop that has not happened. */
  disarm(): void;
  /** COMMITs seen since start. */
  commits(): number;
  /** Whether the armed drop has happened. */
  dropped(): boolean;
  close(): Promise<void>;
}

const COMMIT = /Q\0\0\0\x0bcommit\0/i;

export async function startPgProxy(target: string): Promise<PgProxy> {
  const to = new URL(target);
  let seen = 0;
  let armedAt: number | null = null;
  let didDrop = false;
  const sockets = new Set<Socket>();

  const server = createServer((client) => {
    const upstream = connect(Number(to.port || 5432), to.hostname);
    sockets.add(client).add(upstream);
    let cutNextAnswer = false;
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk) => {
      if (COMMIT.test(chunk.toString('latin1'))) {
        seen++;
        if (armedAt !== null && seen === armedAt) {
          armedAt = null;
          cutNextAnswer = true;
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (cutNextAnswer) {
        // The server has answered the COMMIT: it is durable. The client never hears so.
        didDrop = true;
        return cut();
      }
      client.write(chunk);
    });
    for (const s of [client, upstream]) {
      s.on('error', cut);
      s.on('close', () => {
        sockets.delete(s);
        cut();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  return {
    url: url.toString(),
    dropAfterCommit(nth) {
      armedAt = seen + nth;
      didDrop = false;
    },
    disarm() {
      armedAt = null;
    },
    commits: () => seen,
    dropped: () => didDrop,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
