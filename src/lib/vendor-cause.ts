import { connect } from 'node:net';

type ErrorLike = { name?: string; code?: unknown; address?: unknown; port?: unknown; hostname?: unknown; cause?: unknown };

/**
 * The transport failure under an SDK's error, as an operator reads it: the system error code
 * and where it was going ("ECONNREFUSED 127.0.0.1:9", "ENOTFOUND api.example.com"), or
 * "timed out"; undefined when the error carries neither.
 */
export function transportCause(err: unknown): string | undefined {
  let e = err as ErrorLike | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 6; depth++, e = e.cause as ErrorLike | undefined) {
    if (typeof e.code === 'string' && /^(E[A-Z]+|UND_ERR_[A-Z_]+|ERR_TLS_[A-Z_]+|[A-Z_]*CERT[A-Z_]*)$/.test(e.code)) {
      const where =
        typeof e.address === 'string'
          ? `${e.address}${typeof e.port === 'number' ? `:${e.port}` : ''}`
          : typeof e.hostname === 'string'
            ? e.hostname
            : '';
      return where ? `${e.code} ${where}` : e.code;
    }
    if (e.name === 'APIConnectionTimeoutError' || e.name === 'TimeoutError') return 'timed out';
  }
  return undefined;
}

/**
 * Why a vendor's host does not answer, for an SDK that keeps the cause to itself (Resend's
 * reports every failed fetch as "Unable to fetch data"): a TCP connection to the URL's host
 * and port, and no HTTP request, so it spends none of the vendor's request quota. Resolves
 * the cause ("ECONNREFUSED 127.0.0.1:9"), or a note that the host accepts connections.
 */
export function reachCause(url: string, timeoutMs = 3_000): Promise<string> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.resolve('not a valid URL');
  }
  const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (cause: string) => {
      socket.destroy();
      resolve(cause);
    };
    socket.once('connect', () => done(`${target.host} accepts connections but did not answer in time`));
    socket.once('timeout', () => done(`connecting to ${target.host} timed out`));
    socket.once('error', (err) => done(transportCause(err) ?? `${(err as Error).message}`));
  });
}
