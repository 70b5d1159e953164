import { isIP } from 'node:net';
import type { RequestHandler } from 'express';
import { HttpError } from './errors';

/**
 * DNS rebinding guard for sandbox mode. A web page whose own domain is re-pointed at 127.0.0.1
 * talks to this server as same-origin: it could read the outbox (every customer's API key is
 * in it) and drive the console. Its requests still carry its own name in `Host`, so the server
 * answers only the names it is configured for: `localhost`, the loopback addresses, BASE_URL's
 * host, and HOST when it is a name or an address (not 0.0.0.0 or ::). The port is not compared.
 */
export function allowedHostNames(config: { baseUrl: string; host: string | null }): Set<string> {
  const names = new Set(['localhost', '::1']);
  names.add(hostName(new URL(config.baseUrl).host));
  if (config.host && config.host !== '0.0.0.0' && config.host !== '::') names.add(hostName(config.host));
  return names;
}

/** Answers 403 to a request whose `Host` header names none of `allowed` (any 127.x.y.z counts as loopback). */
export function requireAllowedHost(allowed: ReadonlySet<string>): RequestHandler {
  return (req, _res, next) => {
    // The header itself, never req.hostname: that would believe X-Forwarded-Host, which a
    // rebound page can set on its same-origin requests.
    const header = req.headers.host;
    const name = header ? hostName(header) : '';
    if (allowed.has(name) || isLoopbackV4(name)) return next();
    next(
      new HttpError(
        403,
        'host_not_allowed',
        'This server answers only to localhost, the loopback addresses and the host of BASE_URL (or HOST). ' +
          'Open it at one of those, or set BASE_URL to the address you use.',
      ),
    );
  };
}

/** `Example.COM.:3000` → `example.com`; `[::1]:3000` → `::1`. */
function hostName(hostHeader: string): string {
  const value = hostHeader.trim().toLowerCase();
  if (value.startsWith('[')) return value.slice(1, value.indexOf(']') === -1 ? undefined : value.indexOf(']'));
  if (isIP(value) === 6) return value; // a bare IPv6 address (HOST=::1): its colons are not a port
  return value.replace(/:\d*$/, '').replace(/\.$/, '');
}

function isLoopbackV4(name: string): boolean {
  return isIP(name) === 4 && name.startsWith('127.');
}
