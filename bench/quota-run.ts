/**
 * One run of `npm run bench -- --quotas` (bench/quotas.ts documents what is measured): its
 * processes (the upstream, one MailKit or several on one database), its customers, its load
 * (closed-loop clients, bursts of batches, or a rush on a few credits), the drain after it and
 * the settling. Each step is a function of its own; runScenario and runSoak only put them in
 * order. The figures are drawn from what these return by bench/quota-report.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureCatalog } from '../src/billing/catalog';
import {
  afterFullGc,
  freePort,
  freshPostgres,
  mailkitEnv,
  mintKeys,
  postgresBytes,
  removeTempDir,
  root,
  rssMb,
  sleep,
  sqliteBytes,
  startNode,
  startUpstream,
  stop,
  tempDir,
  upstreamControl,
  waitHealthy,
  type Upstream,
} from './harness';

export type ScenarioId = 'a' | 'b' | 'c' | 'd' | 'e';
export type VariantId = 'baseline' | 'default' | 'queued';
export type Engine = 'sqlite' | 'postgres';

export interface CustomerPlan {
  /** Closed-loop clients ((a)–(c)); in (e), sends fired at once. (d) sends bursts instead. */
  clients: number;
  /** (c)'s light customers, whose latency is reported on its own line. */
  light: boolean;
  credits: number;
}
export interface Scenario {
  id: ScenarioId;
  title: string;
  customers: CustomerPlan[];
  /** loop: clients send one email after another; bursts: (d); dry: (e). */
  load: 'loop' | 'bursts' | 'dry';
}
export interface Variant {
  id: VariantId;
  label: string;
  env: Record<string, string>;
  /** Clients ask to be answered once queued (`Prefer: respond-async`, 202), not once Resend accepted. */
  respondAsync: boolean;
}

/** Credits for the customers of (a)–(d): far more than any run sends (200 a second at most). */
const PLENTY = 1_000_000;
/** (d): emails per batch, and batches per customer per burst. */
export const BURST = { batchSize: 100, batchesPerCustomer: 2 } as const;

const spread = (customers: number, clients: number, credits = PLENTY): CustomerPlan[] =>
  Array.from({ length: customers }, (_, i) => ({
    clients: Math.floor(clients / customers) + (i < clients % customers ? 1 : 0),
    light: false,
    credits,
  }));

export const SCENARIOS: Scenario[] = [
  { id: 'a', title: 'one customer, 32 clients', customers: spread(1, 32), load: 'loop' },
  { id: 'b', title: '50 customers, 64 clients', customers: spread(50, 64), load: 'loop' },
  {
    id: 'c',
    title: 'one customer flat out (32 clients) + 20 light customers (1 client each)',
    customers: [{ clients: 32, light: false, credits: PLENTY }, ...Array.from({ length: 20 }, () => ({ clients: 1, light: true, credits: PLENTY }))],
    load: 'loop',
  },
  {
    id: 'd',
    title:
      `bursts: 50 customers, each ${BURST.batchesPerCustomer * BURST.batchSize} emails at once ` +
      `(${BURST.batchesPerCustomer} × /send/batch of ${BURST.batchSize})`,
    customers: spread(50, 50),
    load: 'bursts',
  },
  { id: 'e', title: 'running dry: 5 customers with 10 credits each, 200 sends at once (40 each)', customers: spread(5, 200, 10), load: 'dry' },
];

export const VARIANTS: Variant[] = [
  // One Resend call per email: what the flights buy (2 emails a second at Resend's 2 calls).
  { id: 'baseline', label: "BATCH_DELIVERY=off, clients waiting for Resend's ids", env: { BATCH_DELIVERY: 'off' }, respondAsync: false },
  // MailKit's own defaults: nothing set, so the run measures what a deployment gets.
  { id: 'default', label: "MailKit default, clients waiting for Resend's ids", env: {}, respondAsync: false },
  { id: 'queued', label: 'MailKit default, clients answered once queued (Prefer: respond-async)', env: {}, respondAsync: true },
];

export interface RunOptions {
  duration: number;
  warmup: number;
  latency: number;
  retryAfterCap: number;
  settleTimeout: number;
  drainTimeout: number;
  burstEvery: number;
  burstDuration: number;
  instances: number;
  postgresUrl: string | null;
  logDir: string | null;
}

/** Every customer sends to its own address under this prefix: the upstream counts what Resend accepted by it. */
const RECIPIENT_PREFIX = 'delivered+q';
const recipientOf = (customer: number) => `${RECIPIENT_PREFIX}${customer}@resend.dev`;

/** One answer a client got. Times in ms on this process's performance.now() clock. */
export interface Answer {
  start: number;
  end: number;
  /** HTTP status; 0: no answer (connection error or the client's 60 s timeout). */
  status: number;
  /** Emails the request carried (1, or a batch's 100). */
  emails: number;
  light: boolean;
}

/** Emails Resend accepted against credits Dodo debited net, summed over the customers. */
export interface Tally {
  emails: number;
  netDebits: number;
  /** Σ per customer of emails beyond its net debits. */
  unpaid: number;
  /** Σ per customer of net debits beyond its emails. */
  overcharged: number;
}

export type Stats = {
  dodoCalls: number;
  resendCalls: number;
  pendingWebhooks: number;
  quotas: { dodo: { limited: number } | null; resend: { limited: number } | null };
};
type Control = ReturnType<typeof upstreamControl>;

interface Instance {
  url: string;
  env: Record<string, string>;
  logFile: string;
  process: ChildProcess | null;
}

/** A run's processes and customers. */
interface Rig {
  scenario: Scenario;
  variant: Variant;
  engine: Engine;
  dataDir: string;
  database: Awaited<ReturnType<typeof freshPostgres>> | null;
  upstream: Upstream;
  control: Control;
  instances: Instance[];
  customerIds: string[];
  keys: string[];
  /** Dodo's balance of each customer once set up, for the net debits. */
  before: Map<string, number>;
  /** Started with --expose-gc and bench/trace-hook.ts (the soak), which writes here on SIGUSR2. */
  memoryFile: string | null;
}

/** Where the load's times sit on the two clocks: answers on performance.now(), the upstream's on Date.now(). */
export interface Clock {
  perf: number;
  wall: number;
}
const wallOf = (clock: Clock, perf: number) => clock.wall + (perf - clock.perf);

/** What a run hands to bench/quota-report.ts. */
export interface RawRun {
  scenario: Scenario;
  variant: Variant;
  engine: Engine;
  instances: number;
  answers: Answer[];
  /** The load's start, the measured window's start and the moment the load stopped (perf ms). */
  t0: number;
  from: number;
  endAt: number;
  /**
   * Emails Resend accepted in the window, and the calls that carried them; after it (the drain),
   * and the last one's time less endAt; in all.
   */
  atResend: { inWindow: number; callsInWindow: number; drained: number; drainMs: number; total: number };
  stats0: Stats;
  stats1: Stats;
  settlement: Tally & { how: string; atEnd: Tally; afterStop: Tally };
  /** (d): the batches sent, and those still refused when the run ended. */
  batches: { sent: number; givenUp: number } | null;
}

// ---------------------------------------------------------------------------------------------
// The rig: upstream, MailKit, customers

/** Starts the upstream and MailKit (one or several instances), and sets up the customers with the quotas lifted. */
async function setUp(scenario: Scenario, variant: Variant, engine: Engine, opts: RunOptions, soak: boolean): Promise<Rig> {
  const dataDir = tempDir();
  const database = engine === 'postgres' ? await freshPostgres(opts.postgresUrl!) : null;
  const ports = await Promise.all(Array.from({ length: opts.instances }, () => freePort()));
  // Dodo's webhooks go to the first instance, as a load balancer would send them to any one.
  const upstream = await startUpstream({
    latency: opts.latency,
    webhookUrl: `http://127.0.0.1:${ports[0]}/webhooks/dodo`,
    args: ['--quotas', '--tally', RECIPIENT_PREFIX],
  });
  const control = upstreamControl(upstream);
  // The setup is not what is measured: it runs with the quotas off, and they are set afresh
  // (Dodo's bucket full) when the load starts, as on a day whose quota nobody has touched yet.
  await control('POST', '/quotas', { on: false });

  const catalog = await ensureCatalog(upstream.dodo);
  const keySecret = randomBytes(32).toString('hex');
  const memoryFile = soak ? join(dataDir, 'memory.json') : null;
  const instances = ports.map((port, i): Instance => {
    const env = {
      ...mailkitEnv({ port, dataDir: join(dataDir, `app${i}`), databaseUrl: database?.url ?? null, upstream, catalog, keySecret }),
      ...variant.env,
      ...(memoryFile ? { BENCH_MEMORY_FILE: memoryFile } : {}),
    };
    const name = `${engine}-${scenario.id}-${variant.id}${soak ? '-soak' : ''}${opts.instances > 1 ? `-${i}` : ''}.log`;
    // MailKit logs at info, as in production, to /dev/null unless kept (a restart appends).
    return { url: `http://127.0.0.1:${port}`, env, logFile: opts.logDir ? join(resolve(opts.logDir), name) : '/dev/null', process: null };
  });
  const rig: Rig = {
    scenario,
    variant,
    engine,
    dataDir,
    database,
    upstream,
    control,
    instances,
    customerIds: [],
    keys: [],
    before: new Map(),
    memoryFile,
  };
  // One after the other: their migrations on one fresh database would race.
  for (const instance of instances) await startInstance(rig, instance);

  // Customers without a subscription (a checkout's API-key email would spend Resend's quota),
  // each granted its credits through the control API, whose adjustment MailKit hears as a webhook.
  rig.customerIds = await Promise.all(
    scenario.customers.map(async (plan, i) => {
      const c = await upstream.dodo.customers.create({ email: `quota${i}@example.com`, name: `Quota ${i}` });
      await control('POST', `/sandbox/api/customers/${c.customer_id}/adjust`, { amount: plan.credits, reason: 'bench' });
      return c.customer_id;
    }),
  );
  rig.keys = await mintKeys(keySecret, rig.customerIds);
  while ((await stats(rig)).pendingWebhooks > 0) await sleep(50);
  rig.before = await balances(rig);
  return rig;
}

async function startInstance(rig: Rig, instance: Instance): Promise<void> {
  instance.process = startNode({
    script: 'server.ts',
    env: instance.env,
    stdout: openSync(instance.logFile, 'a'),
    ...(rig.memoryFile ? { nodeFlags: ['--expose-gc'], preload: [pathToFileURL(join(root, 'bench/trace-hook.ts')).href] } : {}),
  });
  await waitHealthy(instance.url);
}

/** SIGTERM to every instance (its graceful shutdown settles what it holds); their exit codes. */
async function stopInstances(rig: Rig): Promise<(number | null)[]> {
  const codes = await stop(rig.instances.map((i) => i.process!));
  for (const i of rig.instances) i.process = null;
  return codes;
}

async function tearDown(rig: Rig): Promise<void> {
  const running = rig.instances.filter((i) => i.process);
  if (running.length) await stop(running.map((i) => i.process!));
  await stop([rig.upstream.process]);
  if (rig.database) await rig.database.drop();
  removeTempDir(rig.dataDir);
}

const stats = (rig: Rig) => rig.control<Stats>('GET', '/stats');

async function balances(rig: Rig): Promise<Map<string, number>> {
  const { data } = await rig.control<{ data: { customer_id: string; balance: string }[] }>('GET', '/sandbox/api/customers');
  return new Map(data.map((c) => [c.customer_id, Number(c.balance)]));
}

/** Emails Resend accepted for the bench's recipients in [from, to) of the wall clock (all of them by default). */
function acceptedBetween(rig: Rig, from?: number, to?: number) {
  const q = new URLSearchParams();
  if (from !== undefined) q.set('from', String(from));
  if (to !== undefined) q.set('to', String(to));
  return rig.control<{ count: number; first: number | null; last: number | null; calls: number }>('GET', `/accepted/count?${q}`);
}

// ---------------------------------------------------------------------------------------------
// The load

interface Attempt {
  status: number;
  retryAfter: string | null;
}

/** One request to MailKit; a connection error or the 60 s timeout is status 0. */
async function attempt(url: string, key: string, body: string, headers: Record<string, string>): Promise<Attempt> {
  try {
    const r = await fetch(url, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...headers },
      body,
      signal: AbortSignal.timeout(60_000),
    });
    await r.arrayBuffer();
    return { status: r.status, retryAfter: r.headers.get('retry-after') };
  } catch {
    return { status: 0, retryAfter: null };
  }
}

/**
 * How long a well-behaved client waits before sending the same request again under the same
 * key, or null when it is done with it. A 429: Retry-After (1 s if absent), at most `capMs`:
 * nothing was sent. No answer, a key still in use (409) or a 5xx: 250 ms.
 */
function pauseAfter(a: Attempt, capMs: number): number | null {
  if (a.status === 429) {
    const ra = Number(a.retryAfter);
    return Math.min(capMs, (Number.isFinite(ra) && ra > 0 ? ra : 1) * 1000);
  }
  if (a.status === 0 || a.status === 409 || a.status >= 500) return 250;
  return null;
}

/** When the clients stop sending; the soak moves it once its last reading is taken. */
interface Deadline {
  endAt: number;
}

/**
 * Sends one request until it gets an answer it is done with or the deadline passes, recording
 * every answer. True when the last answer was 2xx.
 */
async function sendUntilDone(
  answers: Answer[],
  deadline: Deadline,
  capMs: number,
  request: { url: string; key: string; body: string; headers: Record<string, string>; emails: number; light: boolean },
): Promise<boolean> {
  while (performance.now() < deadline.endAt) {
    const start = performance.now();
    const a = await attempt(request.url, request.key, request.body, request.headers);
    answers.push({ start, end: performance.now(), status: a.status, emails: request.emails, light: request.light });
    const pause = pauseAfter(a, capMs);
    if (pause === null) return a.status >= 200 && a.status < 300;
    await sleep(Math.max(0, Math.min(deadline.endAt - performance.now(), pause)));
  }
  return false;
}

const asyncHeaders = (variant: Variant, extra: Record<string, string>): Record<string, string> => ({
  ...(variant.respondAsync ? { Prefer: 'respond-async' } : {}),
  ...extra,
});

/**
 * (a)–(c) and the soak: closed-loop clients, each POST /send of one email to its customer's
 * address under a fresh Idempotency-Key, the next as soon as it is done with the last. Client i
 * talks to instance i mod N. `extraHeaders`: the soak's X-Bench-Untraced.
 */
async function closedLoops(rig: Rig, deadline: Deadline, capMs: number, runId: string, extraHeaders: Record<string, string> = {}): Promise<Answer[]> {
  const answers: Answer[] = [];
  const clients = rig.scenario.customers.flatMap((plan, customer) => Array.from({ length: plan.clients }, () => ({ customer, light: plan.light })));
  await Promise.all(
    clients.map(async ({ customer, light }, client) => {
      const body = JSON.stringify({ to: recipientOf(customer), subject: 'Bench', html: '<p>bench</p>' });
      const url = `${rig.instances[client % rig.instances.length]!.url}/send`;
      for (let n = 0; performance.now() < deadline.endAt; n++) {
        const key = `q-${runId}-${client}-${n}`;
        await sendUntilDone(answers, deadline, capMs, {
          url,
          key: rig.keys[customer]!,
          body,
          headers: { 'Idempotency-Key': key, ...asyncHeaders(rig.variant, extraHeaders) },
          emails: 1,
          light,
        });
      }
    }),
  );
  return answers;
}

/**
 * (d): every `every` seconds until `duration`, each customer sends its burst at once: BURST
 * batches of BURST.batchSize emails, each batch one POST /send/batch under its own key, retried
 * after a 429 as any client does, until accepted or the deadline. Batch j goes to instance j mod N.
 */
async function bursts(
  rig: Rig,
  deadline: Deadline,
  capMs: number,
  runId: string,
  t0: number,
  every: number,
  duration: number,
): Promise<{ answers: Answer[]; sent: number; givenUp: number }> {
  const answers: Answer[] = [];
  let sent = 0;
  let givenUp = 0;
  const burstCount = Math.ceil(duration / every);
  await Promise.all(
    Array.from({ length: burstCount }, async (_, k) => {
      await sleep(Math.max(0, t0 + k * every * 1000 - performance.now()));
      const batches = rig.customerIds.flatMap((_, customer) => Array.from({ length: BURST.batchesPerCustomer }, (__, j) => ({ customer, j })));
      await Promise.all(
        batches.map(async ({ customer, j }, index) => {
          const emails = Array.from({ length: BURST.batchSize }, (__, i) => ({
            to: recipientOf(customer),
            subject: `Burst ${k} ${j} ${i}`,
            html: '<p>bench</p>',
          }));
          const key = `b-${runId}-${k}-${customer}-${j}`;
          const url = `${rig.instances[index % rig.instances.length]!.url}/send/batch`;
          sent++;
          const ok = await sendUntilDone(answers, deadline, capMs, {
            url,
            key: rig.keys[customer]!,
            body: JSON.stringify({ emails }),
            headers: { 'Idempotency-Key': key, ...asyncHeaders(rig.variant, {}) },
            emails: BURST.batchSize,
            light: false,
          });
          if (!ok) givenUp++;
        }),
      );
    }),
  );
  return { answers, sent, givenUp };
}

/** (e): every customer's sends fired at once, one request each (no retry: the answer is the figure). */
async function rush(rig: Rig, runId: string): Promise<Answer[]> {
  const answers: Answer[] = [];
  const sends = rig.scenario.customers.flatMap((plan, customer) => Array.from({ length: plan.clients }, (_, n) => ({ customer, n })));
  await Promise.all(
    sends.map(async ({ customer, n }, index) => {
      const start = performance.now();
      const body = JSON.stringify({ to: recipientOf(customer), subject: `Dry ${n}`, html: '<p>bench</p>' });
      const a = await attempt(`${rig.instances[index % rig.instances.length]!.url}/send`, rig.keys[customer]!, body, {
        'Idempotency-Key': `e-${runId}-${customer}-${n}`,
        ...asyncHeaders(rig.variant, {}),
      });
      answers.push({ start, end: performance.now(), status: a.status, emails: 1, light: false });
    }),
  );
  return answers;
}

// ---------------------------------------------------------------------------------------------
// After the load: the drain, the settling

/**
 * Waits, MailKit still up, until Resend has accepted at least `expected` emails (those answered
 * 2xx), or none more came for `quietMs` (a queued send refused by Resend waits up to 10 s before
 * it flies again), or `timeoutMs` passed.
 */
async function waitForDrain(rig: Rig, expected: number, quietMs: number, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  let last = -1;
  let since = performance.now();
  while (performance.now() < until) {
    const { count } = await acceptedBetween(rig);
    if (count >= expected) return;
    if (count !== last) {
      last = count;
      since = performance.now();
    } else if (performance.now() - since > quietMs) {
      return;
    }
    await sleep(250);
  }
}

/** Per customer, the emails Resend accepted against the credits Dodo debited net since the setup. */
async function tally(rig: Rig): Promise<Tally> {
  const [after, accepted] = await Promise.all([balances(rig), rig.control<Record<string, number>>('GET', '/accepted')]);
  const t: Tally = { emails: 0, netDebits: 0, unpaid: 0, overcharged: 0 };
  rig.customerIds.forEach((id, i) => {
    const e = accepted[recipientOf(i)] ?? 0;
    const d = rig.before.get(id)! - after.get(id)!;
    t.emails += e;
    t.netDebits += d;
    t.unpaid += Math.max(0, e - d);
    t.overcharged += Math.max(0, d - e);
  });
  return t;
}

/**
 * The tally three times: now (what MailKit still holds, spends not yet settled with Dodo, shows
 * as unpaid), after a graceful stop of every instance (which settles them), and, only if that
 * left a difference, after the instances were started again on the same state and given up to
 * `settleTimeout` for their reconciler, then stopped again.
 */
async function settle(rig: Rig, settleTimeout: number): Promise<RawRun['settlement']> {
  const atEnd = await tally(rig);
  const codes = await stopInstances(rig);
  const afterStop = await tally(rig);
  let settled = afterStop;
  // Exit 0: the shutdown finished in time (MailKit exits 1 when its 15 s run out).
  let how = `SIGTERM, MailKit exited ${codes.join(', ')}`;
  if (settled.unpaid + settled.overcharged > 0) {
    const from = performance.now();
    for (const instance of rig.instances) await startInstance(rig, instance);
    while (performance.now() - from < settleTimeout * 1000) {
      await sleep(2000);
      settled = await tally(rig);
      if (settled.unpaid + settled.overcharged === 0) break;
    }
    const again = await stopInstances(rig);
    settled = await tally(rig);
    how +=
      `; restarted for ${((performance.now() - from) / 1000).toFixed(0)} s for its reconciler, exited ${again.join(', ')}` +
      `${settled.unpaid + settled.overcharged > 0 ? ', still unsettled' : ''}`;
  }
  return { how, ...settled, atEnd, afterStop };
}

/** The drain (waited for), what reached Resend in the window and after it, the settling. */
async function finish(rig: Rig, opts: RunOptions, clock: Clock, answers: Answer[], from: number, endAt: number) {
  const answered2xx = answers.filter((a) => a.status >= 200 && a.status < 300).reduce((n, a) => n + a.emails, 0);
  await waitForDrain(rig, answered2xx, 12_000, opts.drainTimeout * 1000);
  const [inWindow, drained, total] = await Promise.all([
    acceptedBetween(rig, wallOf(clock, from), wallOf(clock, endAt)),
    acceptedBetween(rig, wallOf(clock, endAt)),
    acceptedBetween(rig),
  ]);
  const atResend = {
    inWindow: inWindow.count,
    callsInWindow: inWindow.calls,
    drained: drained.count,
    drainMs: drained.last === null ? 0 : drained.last - wallOf(clock, endAt),
    total: total.count,
  };
  const settlement = await settle(rig, opts.settleTimeout);
  return { atResend, settlement, stats1: await stats(rig) };
}

const newRunId = () => randomBytes(4).toString('hex');

async function startLoad(rig: Rig): Promise<{ clock: Clock; stats0: Stats }> {
  await rig.control('POST', '/quotas', { on: true });
  const stats0 = await stats(rig);
  return { clock: { perf: performance.now(), wall: Date.now() }, stats0 };
}

/** One scenario in one variant on one engine, with fresh processes. */
export async function runScenario(scenario: Scenario, variant: Variant, engine: Engine, opts: RunOptions): Promise<RawRun> {
  const rig = await setUp(scenario, variant, engine, opts, false);
  const capMs = opts.retryAfterCap * 1000;
  const runId = newRunId();
  const { clock, stats0 } = await startLoad(rig);
  const t0 = clock.perf;
  let answers: Answer[];
  let from = t0;
  let endAt: number;
  let batches: RawRun['batches'] = null;
  if (scenario.load === 'loop') {
    endAt = t0 + opts.duration * 1000;
    from = t0 + opts.warmup * 1000;
    answers = await closedLoops(rig, { endAt }, capMs, runId);
  } else if (scenario.load === 'bursts') {
    endAt = t0 + opts.burstDuration * 1000;
    const r = await bursts(rig, { endAt }, capMs, runId, t0, opts.burstEvery, opts.burstDuration);
    answers = r.answers;
    batches = { sent: r.sent, givenUp: r.givenUp };
  } else {
    answers = await rush(rig, runId);
    // The load is over once its last answer is in.
    endAt = Math.max(...answers.map((a) => a.end));
  }
  const { atResend, settlement, stats1 } = await finish(rig, opts, clock, answers, from, endAt);
  await tearDown(rig);
  return { scenario, variant, engine, instances: rig.instances.length, answers, t0, from, endAt, atResend, stats0, stats1, settlement, batches };
}

// ---------------------------------------------------------------------------------------------
// The soak

/** MailKit's memory and database at one moment of the soak. */
export interface SoakReading {
  /** Wall clock (Date.now()). */
  at: number;
  /** V8 heap in use right after a full GC, and VmRSS a second later; null if MailKit did not answer. */
  afterGc: { heapMb: number; rssMb: number } | null;
  /** VmRSS before the collection. */
  rssMb: number | null;
  databaseBytes: number;
  /** Emails Resend had accepted for the bench's recipients by then. */
  emailsAtResend: number;
}
export interface RawSoak {
  run: RawRun;
  seconds: number;
  start: SoakReading;
  end: SoakReading;
}

async function readSoak(rig: Rig): Promise<SoakReading> {
  const mailkit = rig.instances[0]!.process!;
  const rss = rssMb(mailkit.pid);
  const afterGc = await afterFullGc(mailkit, rig.memoryFile!);
  const databaseBytes = rig.database ? await postgresBytes(rig.database.url) : sqliteBytes(join(rig.dataDir, 'app0', 'mailkit.sqlite'));
  const { count } = await acceptedBetween(rig);
  return { at: Date.now(), afterGc, rssMb: rss, databaseBytes, emailsAtResend: count };
}

/**
 * Scenario (a) queued at the ceiling for `seconds` after `warmup` seconds, one instance: MailKit's
 * memory and database read at the warm-up's end and again when the time is up, both under load
 * (the clients keep sending while each reading is taken), then the same drain and settling. The
 * warm-up is longer than a scenario's: the room for queued sends (1,000 emails) takes some 10 s
 * to fill, and what it holds is in the heap at both readings only once it is full.
 */
export async function runSoak(engine: Engine, seconds: number, warmup: number, opts: RunOptions): Promise<RawSoak> {
  const scenario = SCENARIOS.find((s) => s.id === 'a')!;
  const variant = VARIANTS.find((v) => v.id === 'queued')!;
  const rig = await setUp(scenario, variant, engine, { ...opts, instances: 1 }, true);
  const runId = newRunId();
  const { clock, stats0 } = await startLoad(rig);
  const t0 = clock.perf;
  const deadline: Deadline = { endAt: Infinity };
  // X-Bench-Untraced: bench/trace-hook.ts would otherwise keep a sample of every send in MailKit's heap.
  const load = closedLoops(rig, deadline, opts.retryAfterCap * 1000, runId, { 'X-Bench-Untraced': '1' });
  await sleep(warmup * 1000);
  const from = performance.now();
  const start = await readSoak(rig);
  await sleep(Math.max(0, from + seconds * 1000 - performance.now()));
  const end = await readSoak(rig);
  deadline.endAt = performance.now();
  const answers = await load;
  const { atResend, settlement, stats1 } = await finish(rig, opts, clock, answers, from, deadline.endAt);
  await tearDown(rig);
  return {
    run: { scenario, variant, engine, instances: 1, answers, t0, from, endAt: deadline.endAt, atResend, stats0, stats1, settlement, batches: null },
    seconds,
    start,
    end,
  };
}
