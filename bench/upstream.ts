/**
 * The benchmark's stand-in for Dodo and Resend: the sandbox alone, in its own process (as the
 * real vendors are on their own machines), with a fixed latency on every API call. Started by
 * bench/send.ts; not for anything else.
 *
 *   tsx bench/upstream.ts --latency MS --webhook-url URL [--quotas]
 *                         [--resend-rate-limit N] [--dodo-rate-limit N] [--dodo-burst N]
 *
 * Quotas are off unless asked for. --quotas sets the vendors' real defaults: Resend 2 requests a
 * second, Dodo tier 0 (240 a minute, bursts of 40); the other three override one value each
 * (requests a second; requests a minute; burst), with or without --quotas.
 *
 * Prints one JSON line on stdout when listening: { port, webhookSecret }.
 * GET /stats answers the API calls counted so far (429s from a quota are not among them), the
 * webhooks still pending, and each quota's state with the 429s it answered (null while off).
 */
import express from 'express';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createSandbox } from '../src/sandbox';
import { newWebhookSecret } from '../src/lib/webhook-secret';
import { DODO_TIER_0 } from '../src/sandbox/dodo/rate-limit';

/** Resend's documented default rate limit, requests a second (some accounts have 5). */
const RESEND_DEFAULT_PER_SECOND = 2;

const { values } = parseArgs({
  options: {
    latency: { type: 'string', default: '20' },
    'webhook-url': { type: 'string' },
    quotas: { type: 'boolean', default: false },
    'resend-rate-limit': { type: 'string' },
    'dodo-rate-limit': { type: 'string' },
    'dodo-burst': { type: 'string' },
  },
});
/** A whole number option ≥ min, or the fallback when absent; anything else stops the process. */
function count(name: 'resend-rate-limit' | 'dodo-rate-limit' | 'dodo-burst', fallback: number, min: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be a whole number of at least ${min}, not "${raw}"`);
    process.exit(2);
  }
  return n;
}
const resendRateLimit = count('resend-rate-limit', values.quotas ? RESEND_DEFAULT_PER_SECOND : 0, 0);
const dodoRateLimit = {
  perMinute: count('dodo-rate-limit', values.quotas ? DODO_TIER_0.perMinute : 0, 0),
  burst: count('dodo-burst', DODO_TIER_0.burst, 1),
};
const webhookSecret = newWebhookSecret();
const app = express();
const server = createServer(app);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as AddressInfo).port;

const sandbox = createSandbox({
  dataDir: null,
  webhookSecret,
  webhookUrl: values['webhook-url']!,
  publicUrl: `http://127.0.0.1:${port}`,
  resendRateLimit,
  dodoRateLimit,
});
sandbox.dodo.faults.setLatency(Number(values.latency));
sandbox.resend.faults.setLatency(Number(values.latency));

app.get('/stats', (_req, res) => {
  res.json({
    debits: sandbox.dodo.faults.requestCount(/^POST .*ledger-entries$/),
    sends: sandbox.resend.faults.requestCount(/^POST \/emails(\/batch)?$/),
    pendingWebhooks: sandbox.dodo.webhooks.list().filter((d) => d.state === 'pending').length,
    quotas: { dodo: sandbox.dodo.rateLimit(), resend: sandbox.resend.rateLimit() },
  });
});
app.use('/sandbox', sandbox.router);
server.keepAliveTimeout = 65_000;

process.stdout.write(`${JSON.stringify({ port, webhookSecret })}\n`);
process.on('SIGTERM', () => {
  void sandbox.close().then(() => process.exit(0));
});
