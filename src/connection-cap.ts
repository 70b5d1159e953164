import type { Server } from 'node:http';
import { isIP } from 'node:net';
import express from 'express';
import type { TrustProxy } from './config';
import { clientAddressKey } from './rate-limits';

/**
 * Caps the connections one client address holds open at once: one past the cap is closed as
 * soon as it is accepted, before a byte of it is read. With the header and request timeouts
 * (src/stack.ts), a client that sends slowly holds a bounded number of sockets for a bounded
 * time. Addresses are grouped as the rate limits group them (an IPv6 /56 is one client).
 *
 * `exempt` addresses are not counted: loopback (every client of a sandbox is on this machine,
 * and MailKit's own SDK calls to its sandbox come from there), and the proxies TRUST_PROXY names,
 * whose one address carries many clients (cap those at the proxy).
 */
export function capConnectionsPerAddress(server: Server, opts: { perAddress: number; exempt: (address: string) => boolean }): void {
  if (opts.perAddress <= 0) return;
  const open = new Map<string, number>();
  server.on('connection', (socket) => {
    const address = socket.remoteAddress;
    if (!address || opts.exempt(address)) return;
    const key = clientAddressKey(address);
    const count = open.get(key) ?? 0;
    if (count >= opts.perAddress) {
      socket.destroy();
      return;
    }
    open.set(key, count + 1);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left <= 0) open.delete(key);
      else open.set(key, left);
    });
  });
}

/** The addresses the cap leaves alone by default: loopback, and the proxies TRUST_PROXY trusts. */
export function defaultCapExemption(trustProxy: TrustProxy): (address: string) => boolean {
  // Express's own compiled `trust proxy` test, so that the cap and X-Forwarded-For agree on who
  // is a proxy (with a number of hops, every peer is).
  const trusted = express()
    .set('trust proxy', Array.isArray(trustProxy) ? [...trustProxy] : trustProxy)
    .get('trust proxy fn') as (address: string, hop: number) => boolean;
  return (address) => isLoopback(address) || trusted(address, 0);
}

function isLoopback(address: string): boolean {
  const v4 = address.replace(/^::ffff:/i, '');
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}
