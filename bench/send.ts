/**
 * `npm run bench`: how fast MailKit sends, and what it adds on top of Dodo and Resend.
 *
 * Four processes on loopback, as in production where the vendors are elsewhere:
 *   - the upstreams: the sandbox alone (bench/upstream.ts), every API call delayed by --latency;
 *   - MailKit: `server.ts` in live mode, pointed at them with DODO_PAYMENTS_BASE_URL and
 *     RESEND_BASE_URL (the configuration a real deployment uses), logging at info to /dev/null,
 *     with bench/trace-hook.ts timing each send inside it;
 *   - the bare relay (bench/relay.ts): the same two upstream calls behind a do-nothing server;
 *   - this process: the clients.
 * The baseline makes the same two upstream calls per email (a debit, a send) straight through
 * the SDKs. /send less the baseline is everything MailKit costs a client; the relay less the
 * baseline is what any HTTP service in between costs; /send less the relay is MailKit itself.
 *
 * Options: --latency MS (default 20) --clients N (16) --sends N (1600) --batches N (48)
 *          --unloaded N (200: sends measured one at a time, baseline and /send)
 *          --pairs N (400: direct calls, bare relay and /send taking turns, for the overhead figures)
 *          --cpu-prof DIR (write a V8 CPU profile of the upstream and MailKit processes there)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import DodoPayments from 'dodopayments';
import { Resend } from 'resend';
import { createApiKeys } from '../src/auth/api-keys';
import { ensureCatalog } from '../src/billing/catalog';
import { openDatabase } from '../src/db/index';

const { values } = parseArgs({
  options: {
    latency: { type: 'string', default: '20' },
    clients: { type: 'string', default: '16' },
    sends: { type: 'string', default: '1600' },
    batches: { type: 'string', default: '48' },
    unloaded: { type: 'string', default: '200' },
    pairs: { type: 'string', default: '400' },
    'cpu-prof': { type: 'string' },
  },
});
const profileArgs = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']] : [];
const latency = Number(values.latency);
const clients = Number(values.clients);
const sends = Number(values.sends);
const batches = Number(values.batches);
const unloaded = Number(values.unloaded);
const pairs = Number(values.pairs);

const children: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'mailkit-bench-'));
const cleanup = () => {
  for (const c of children) c.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
};
process.on('exit', cleanup);

/** A free loopback port (probed, then released: fine for a benchmark). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts `node --import tsx <script>`; stdout goes to `stdout` (a file descriptor) or a pipe. */
function start(script: string, args: string[], env: Record<string, string>, stdout: number | 'pipe', preload: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...profileArgs, '--import', 'tsx', ...preload.flatMap((p) => ['--import', p]), script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', stdout, 'inherit'],
  });
  children.push(child);
  child.once('exit', (code) => {
    if (!finished) {
      console.error(`${script} exited with ${code}`);
      process.exit(1);
    }
  });
  return child;
}
let finished = false;

const appPort = await freePort();
const appUrl = `http://127.0.0.1:${appPort}`;
const upstreamProcess = start('bench/upstream.ts', ['--latency', String(latency), '--webhook-url', `${appUrl}/webhooks/dodo`], {}, 'pipe');
const upstream = JSON.parse(
  await new Promise<string>((resolve) => createInterface({ input: upstreamProcess.stdout! }).once('line', resolve)),
) as { port: number; webhookSecret: string };
const upstreamUrl = `http://127.0.0.1:${upstream.port}`;

const dodo = new DodoPayments({ bearerToken: 'bench', baseURL: `${upstreamUrl}/sandbox/dodo`, webhookKey: upstream.webhookSecret });
const resend = new Resend('re_bench', { baseUrl: `${upstreamUrl}/sandbox/resend` });
const catalog = await ensureCatalog(dodo);
const keySecret = randomBytes(32).toString('hex');

// MailKit's own time per send (bench/trace-hook.ts), read once MailKit has exited.
const traceFile = join(dataDir, 'trace.jsonl');
// MailKit logs at info, as in production, to /dev/null (reading the lines here would cost this process).
const mailkit = start(
  'server.ts',
  [],
  {
    PORT: String(appPort),
    HOST: '127.0.0.1',
    BASE_URL: appUrl,
    MAILKIT_DATA_DIR: join(dataDir, 'app'),
    BENCH_TRACE_FILE: traceFile,
    LOG_LEVEL: 'info',
    DODO_PAYMENTS_API_KEY: 'bench',
    DODO_PAYMENTS_BASE_URL: `${upstreamUrl}/sandbox/dodo`,
    DODO_WEBHOOK_KEY: upstream.webhookSecret,
    CREDIT_ENTITLEMENT_ID: catalog.creditEntitlementId,
    PLAN_PRODUCT_ID: catalog.planProductId,
    TOPUP_PRODUCT_ID: catalog.topupProductId,
    RESEND_API_KEY: 're_bench',
    RESEND_BASE_URL: `${upstreamUrl}/sandbox/resend`,
    // Required live; the bench's upstream sends no email events, so any well-formed secret does.
    RESEND_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
    MAILKIT_KEY_SECRET: keySecret,
    RATE_LIMIT_PER_KEY: '1000000',
  },
  openSync('/dev/null', 'w'),
  ['./bench/trace-hook.ts'],
);
for (let ready = false; !ready; ) {
  ready = await fetch(`${appUrl}/healthz`).then((r) => r.ok, () => false);
  if (!ready) await new Promise((r) => setTimeout(r, 100));
}

// One customer per client, subscribed through the hosted checkout, then given plenty of credits.
// Keys at epoch 0 need no server state: a throwaway database mints them.
const apiKeys = createApiKeys({ database: await openDatabase({ file: ':memory:' }), secret: keySecret, env: 'test' });
const customers: string[] = [];
for (let i = 0; i < clients; i++) {
  const session = await dodo.checkoutSessions.create({
    product_cart: [{ product_id: catalog.planProductId, quantity: 1 }],
    customer: { email: `bench${i}@example.com`, name: `Bench ${i}` },
    return_url: `${appUrl}/`,
  });
  const paid = await fetch(`${upstreamUrl}/sandbox/checkout/${session.session_id}/pay`, { method: 'POST', redirect: 'manual' });
  if (paid.status !== 303) throw new Error(`checkout payment answered ${paid.status}`);
  const customer = (await dodo.customers.list({ email: `bench${i}@example.com`, page_number: 0 })).items[0]!;
  await dodo.creditEntitlements.balances.createLedgerEntry(customer.customer_id, {
    credit_entitlement_id: catalog.creditEntitlementId,
    amount: '1000000',
    entry_type: 'credit',
    reason: 'bench',
  });
  customers.push(customer.customer_id);
}
const keys = customers.map((c) => apiKeys.mint(c));

// The bare relay (bench/relay.ts): the same two upstream calls behind a do-nothing HTTP server.
const relayProcess = start('bench/relay.ts', [], { RELAY_UPSTREAM: upstreamUrl, RELAY_CUSTOMER: customers[0]!, RELAY_ENTITLEMENT: catalog.creditEntitlementId }, 'pipe');
const relayUrl = `http://127.0.0.1:${await new Promise<string>((resolve) => createInterface({ input: relayProcess.stdout! }).once('line', resolve))}`;

type Stats = { debits: number; sends: number; pendingWebhooks: number };
const stats = async (): Promise<Stats> => (await fetch(`${upstreamUrl}/stats`)).json() as Promise<Stats>;
const upstreamCalls = async () => {
  const s = await stats();
  return s.debits + s.sends;
};
async function webhooksIdle() {
  while ((await stats()).pendingWebhooks > 0) await new Promise((r) => setTimeout(r, 50));
}
await webhooksIdle();

/** Runs `total` operations over `clients` concurrent loops; returns per-operation latencies in ms. */
async function drive(total: number, op: (client: number, i: number) => Promise<void>, concurrency = clients): Promise<{ ms: number[]; wall: number }> {
  const ms: number[] = [];
  let next = 0;
  const begin = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      for (let i = next++; i < total; i = next++) {
        const t = performance.now();
        await op(client, i);
        ms.push(performance.now() - t);
      }
    }),
  );
  return { ms, wall: performance.now() - begin };
}

/** CPU time (user + system) MailKit's process has used so far, in ms; null where /proc is missing. */
function mailkitCpuMs(): number | null {
  try {
    // Fields 14 and 15 of /proc/<pid>/stat, counted after the command name's closing parenthesis.
    const fields = readFileSync(`/proc/${mailkit.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

const post = (path: string, client: number, body: unknown) => postTo(appUrl, path, client, body);
async function postTo(origin: string, path: string, client: number, body: unknown): Promise<void> {
  const r = await fetch(`${origin}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${keys[client]}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${path} answered ${r.status}: ${await r.text()}`);
  await r.arrayBuffer();
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const rows: string[][] = [];
const epochMs = () => performance.timeOrigin + performance.now();
/** Row index → the wall-clock window its requests ran in, to pick its sends out of the trace. */
const windows = new Map<number, [number, number]>();
/**
 * Runs one scenario and adds its row. Upstream calls and MailKit's CPU are counted until the
 * webhooks the scenario caused have been delivered, since handling them is part of an email's cost.
 */
async function scenario(
  name: string,
  ops: number,
  emailsPerOp: number,
  run: () => Promise<{ ms: number[]; wall: number }>,
  viaMailkit: boolean,
): Promise<{ ms: number[]; wall: number }> {
  const calls0 = await upstreamCalls();
  const cpu0 = mailkitCpuMs();
  const from = epochMs();
  const r = await run();
  if (viaMailkit) windows.set(rows.length, [from, epochMs()]);
  await webhooksIdle();
  const cpu1 = mailkitCpuMs();
  const calls = (await upstreamCalls()) - calls0;
  const emails = ops * emailsPerOp;
  rows.push([
    name,
    String(ops),
    (emails / (r.wall / 1000)).toFixed(0),
    pct(r.ms, 50).toFixed(1),
    pct(r.ms, 99).toFixed(1),
    (calls / emails).toFixed(2),
    viaMailkit && cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) / emails).toFixed(2) : '-',
  ]);
  return r;
}

const email = { to: 'delivered@resend.dev', subject: 'Bench', html: '<p>bench</p>' };

// Baseline: the same two upstream calls, made directly through the SDKs (no MailKit in between).
const direct = async (client: number, i: number, tag: string) => {
  await dodo.creditEntitlements.balances.createLedgerEntry(customers[client]!, {
    credit_entitlement_id: catalog.creditEntitlementId,
    amount: '1',
    entry_type: 'debit',
    idempotency_key: `bench-${tag}-${i}`,
  });
  const { error } = await resend.emails.send({ from: 'MailKit <onboarding@resend.dev>', ...email }, { idempotencyKey: `bench-${tag}-${i}` });
  if (error) throw new Error(error.message);
};

// Unloaded: one client at a time, so the figure is what each request costs, not queueing.
const quietBaseline = await scenario('baseline, 1 client', unloaded, 1, () => drive(unloaded, (client, i) => direct(client, i, 'quiet'), 1), false);
const quietSingle = await scenario('POST /send, 1 client', unloaded, 1, () => drive(unloaded, (client) => post('/send', client, email), 1), true);

// The overhead figures: one client taking turns between the direct calls, the bare relay and
// /send, so that all three see the same machine at the same moment (sequential runs drift by
// more than the figures themselves).
const paired = { direct: [] as number[], relay: [] as number[], send: [] as number[] };
const timed = async (into: number[], op: () => Promise<void>) => {
  const t = performance.now();
  await op();
  into.push(performance.now() - t);
};
const pairsFrom = epochMs();
for (let i = 0; i < pairs; i++) {
  const steps = [
    () => timed(paired.direct, () => direct(0, i, 'paired')),
    () => timed(paired.relay, () => postTo(relayUrl, '/send', 0, email)),
    () => timed(paired.send, () => post('/send', 0, email)),
  ];
  for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!();
}
const pairsWindow: [number, number] = [pairsFrom, epochMs()];
await webhooksIdle();
const baseline = await scenario(`baseline, ${clients} clients`, sends, 1, () => drive(sends, (client, i) => direct(client, i, 'baseline')), false);
const single = await scenario(`POST /send, ${clients} clients`, sends, 1, () => drive(sends, (client) => post('/send', client, email)), true);
const batch = Array.from({ length: 100 }, (_, i) => ({ ...email, subject: `Bench ${i}` }));
await scenario(`POST /send/batch (100 emails), ${clients} clients`, batches, 100, () => drive(batches, (client) => post('/send/batch', client, { emails: batch })), true);

finished = true;
for (const c of children) c.kill('SIGTERM');
await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));

// MailKit's own time per send: each /send's time in MailKit less its waits on Dodo and Resend.
type Trace = { at: number; total: number; upstream: number };
const traces: Trace[] = readFileSync(traceFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Trace);
const ownIn = ([from, to]: [number, number]) => traces.filter((t) => t.at >= from && t.at <= to).map((t) => t.total - t.upstream);
for (const [row, window] of windows) {
  const own = ownIn(window);
  rows[row]!.push(own.length ? `${pct(own, 50).toFixed(2)} / ${pct(own, 99).toFixed(2)}` : '-');
}
for (const r of rows) if (r.length < 8) r.push('-');

const header = ['scenario', 'requests', 'emails/s', 'p50 ms', 'p99 ms', 'upstream calls/email', 'MailKit CPU ms/email', 'MailKit own ms p50 / p99'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(`npm run bench -- --latency ${latency} --clients ${clients} --sends ${sends} --batches ${batches} --unloaded ${unloaded} --pairs ${pairs}`);
console.log(`node ${process.version}, injected upstream latency ${latency} ms per call, ${clients} concurrent clients,`);
console.log('upstreams (sandbox), MailKit (server.ts, live mode) and clients in three processes on loopback\n');
console.log(line(header));
for (const r of rows) console.log(line(r));

const pairedOwn = ownIn(pairsWindow);
console.log(`\nMailKit's own time per /send, 1 client (the ${pairedOwn.length} sends taking turns): p50 ${pct(pairedOwn, 50).toFixed(2)} ms, p99 ${pct(pairedOwn, 99).toFixed(2)} ms`);
console.log('  (request parsed → answer written, less the time from each upstream request to its response headers)');
const p50 = (xs: number[]) => pct(xs, 50);
console.log(`\n/send p50 overhead seen by one client, ${pairs} turns each (direct calls ${p50(paired.direct).toFixed(2)} ms, relay ${p50(paired.relay).toFixed(2)} ms, /send ${p50(paired.send).toFixed(2)} ms):`);
console.log(`  over the same two upstream calls made directly:   ${(p50(paired.send) - p50(paired.direct)).toFixed(2)} ms`);
console.log(`    of which any HTTP service in between (bare relay less direct): ${(p50(paired.relay) - p50(paired.direct)).toFixed(2)} ms`);
console.log(`    of which MailKit itself (/send less bare relay):              ${(p50(paired.send) - p50(paired.relay)).toFixed(2)} ms`);
console.log(`  (sequential runs instead of turns: 1 client ${(p50(quietSingle.ms) - p50(quietBaseline.ms)).toFixed(1)} ms, ${clients} clients ${(p50(single.ms) - p50(baseline.ms)).toFixed(1)} ms)`);
process.exit(0);
