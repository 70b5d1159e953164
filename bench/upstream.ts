/**
 * The benchmark's stand-in for Dodo and Resend: the sandbox alone, in its own process (as the
 * real vendors are on their own machines), with a fixed latency on every API call. Started by
 * bench/send.ts and bench/quotas.ts; not for anything else.
 *
 *   tsx bench/upstream.ts --latency MS --webhook-url URL [--quotas] [--tally PREFIX]
 *                         [--resend-rate-limit N] [--dodo-rate-limit N] [--dodo-burst N]
 *
 * Quotas are off unless asked for. --quotas sets the vendors' real defaults: Resend 2 requests a
 * second, Dodo tier 0 (240 a minute, bursts of 40); the other three override one value each
 * (requests a second; requests a minute; burst), with or without --quotas.
 *
 * Prints one JSON line on stdout when listening: { port, webhookSecret }.
 * GET /stats answers the API calls counted so far (429s from a quota are not among them): debits
 * and sends, and every Dodo and Resend API call; the webhooks still pending; and each quota's
 * state with the 429s it answered (null while off).
 *
 * POST /quotas { "on": false } lifts both quotas, { "on": true } sets them again as the options
 * said, the Dodo bucket full and the 429 counts at zero: bench/quotas.ts sets its customers up
 * with the quotas off, so that the measured run starts where a real day would, with whole quotas.
 *
 * With --tally PREFIX, the emails Resend accepts for recipients whose address starts with PREFIX
 * (the benchmark's own; MailKit's alert emails to its customers are not among them) are counted
 * as each is accepted: the outbox keeps only the newest 5,000, and bench/quotas.ts gives each
 * customer its own address to count its emails by.
 *   GET /accepted answers how many were accepted for each such recipient (lower-cased).
 *   GET /accepted/count?from=MS&to=MS answers { count, first, last, calls }: how many were
 *   accepted in [from, to) (epoch ms, this machine's wall clock, Date.now(); either bound may be
 *   left out), the first and last of their times (null when none), and the Resend calls that
 *   carried them answered 2xx in that span (POST /emails or /emails/batch; MailKit's own alert
 *   emails would count here too). Each email is counted once, when the sandbox accepts it,
 *   whatever the call that carried it (one email or a batch of 100).
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
    tally: { type: 'string' },
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
const tallyPrefix = values.tally?.toLowerCase() ?? null;
/** Emails Resend accepted, by recipient address (only with --tally). */
const accepted = new Map<string, number>();
/**
 * When each of those emails was accepted (Date.now()), in the order accepted. A plain array: a
 * 10-minute soak at 200 a second is 120,000 numbers, about 1 MB.
 */
const acceptedAt: number[] = [];
/** When each Resend call that accepted emails was answered (Date.now()): calls a second and emails a call, apart. */
const sendCallsAt: number[] = [];
const tally = (entry: Record<string, unknown>) => {
  if (entry.msg !== 'resend.email.accepted' || !Array.isArray(entry.to)) return;
  const ours = (entry.to as string[]).map((to) => to.toLowerCase()).filter((to) => to.startsWith(tallyPrefix!));
  if (ours.length === 0) return;
  acceptedAt.push(Date.now());
  for (const to of ours) accepted.set(to, (accepted.get(to) ?? 0) + 1);
};
/** The emails accepted in [from, to), the first and last of their times, the calls that carried them. */
function acceptedBetween(from: number, to: number): { count: number; first: number | null; last: number | null; calls: number } {
  let count = 0;
  let first: number | null = null;
  let last: number | null = null;
  // Scanned whole rather than bisected: the wall clock may step back, and the order with it.
  for (const t of acceptedAt) {
    if (t < from || t >= to) continue;
    count++;
    if (first === null || t < first) first = t;
    if (last === null || t > last) last = t;
  }
  const calls = sendCallsAt.filter((t) => t >= from && t < to).length;
  return { count, first, last, calls };
}
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
  // The sandbox's log is its only word on each accepted email; nothing else listens to it here.
  log: tallyPrefix !== null ? tally : undefined,
});
sandbox.dodo.faults.setLatency(Number(values.latency));
sandbox.resend.faults.setLatency(Number(values.latency));

app.get('/stats', (_req, res) => {
  res.json({
    debits: sandbox.dodo.faults.requestCount(/^POST .*ledger-entries$/),
    sends: sandbox.resend.faults.requestCount(/^POST \/emails(\/batch)?$/),
    dodoCalls: sandbox.dodo.faults.requestCount(),
    resendCalls: sandbox.resend.faults.requestCount(),
    pendingWebhooks: sandbox.dodo.webhooks.list().filter((d) => d.state === 'pending').length,
    quotas: { dodo: sandbox.dodo.rateLimit(), resend: sandbox.resend.rateLimit() },
  });
});
app.post('/quotas', express.json(), (req, res) => {
  const on = (req.body as { on?: unknown }).on === true;
  sandbox.dodo.setRateLimit(on ? dodoRateLimit : { perMinute: 0 });
  sandbox.resend.setRateLimit(on ? resendRateLimit : 0);
  res.json({ dodo: sandbox.dodo.rateLimit(), resend: sandbox.resend.rateLimit() });
});
app.get('/accepted', (_req, res) => {
  res.json(Object.fromEntries(accepted));
});
app.get('/accepted/count', (req, res) => {
  const bound = (v: unknown, fallback: number) => (typeof v === 'string' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : fallback);
  res.json(acceptedBetween(bound(req.query.from, -Infinity), bound(req.query.to, Infinity)));
});
if (tallyPrefix !== null) {
  // Ahead of the sandbox: the time a send call's answer goes out, 2xx only (a 429 carried nothing).
  app.use('/sandbox/resend', (req, res, next) => {
    if (req.method === 'POST' && /^\/emails(\/batch)?\/?$/.test(req.path)) {
      res.once('finish', () => {
        if (res.statusCode >= 200 && res.statusCode < 300) sendCallsAt.push(Date.now());
      });
    }
    next();
  });
}
app.use('/sandbox', sandbox.router);
server.keepAliveTimeout = 65_000;

process.stdout.write(`${JSON.stringify({ port, webhookSecret })}\n`);
process.on('SIGTERM', () => {
  void sandbox.close().then(() => process.exit(0));
});
