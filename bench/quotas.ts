/**
 * `npm run bench -- --quotas`: MailKit under the vendors' real quotas (Resend 2 requests a
 * second, Dodo 240 a minute with bursts of 40, 20 ms per API call), beside a baseline of one
 * Resend call per email (BATCH_DELIVERY=off).
 *
 * Three scenarios, each run three times (the baseline; MailKit as configured by default, its
 * clients waiting for Resend's ids; the same MailKit, its clients asking `Prefer: respond-async`,
 * answered 202 once their email is paid and queued), every run with fresh processes: the upstream (bench/upstream.ts --quotas --latency 20), MailKit
 * (server.ts, live mode, pointed at it) on a fresh SQLite MAILKIT_DATA_DIR, and again on a fresh
 * PostgreSQL database when --postgres is given.
 *   (a) one customer, 32 clients;
 *   (b) 50 customers, 64 clients (14 customers with two clients, 36 with one);
 *   (c) one customer flat out with 32 clients, plus 20 light customers with one client each.
 *
 * A client is a closed loop: POST /send, one email, its customer's API key, a unique
 * Idempotency-Key (and, in the queued run, `Prefer: respond-async`: its 202 counts as its 200); on a 429 it waits Retry-After (at most --retry-after-cap seconds) and sends
 * the same email again under the same key, as a well-behaved client would. MailKit runs with
 * RATE_LIMIT_PER_KEY=1000000: its per-key limit (1,200 a minute) would otherwise be what is
 * measured, not the vendors' quotas.
 *
 * The figures of a run, over its measured window (the run less its first --warmup seconds, while
 * the first flights and debits get going): emails a second (200 answers received in the window),
 * requests offered a second (sent in the window, 429s and their retries included), p50/p99 of the
 * requests sent in the window (every one is answered: the clients stop sending at the end and
 * wait for what is in flight) and of the 200s among them. Over the whole run: 429s answered (and
 * how many went to requests sent in a second of the run when fewer than 150 were sent), other
 * non-200 answers, and upstream calls per email (every Dodo and Resend API call the upstream
 * counted from the start of the clients until MailKit has settled, over the emails Resend accepted;
 * the vendors' own 429s apart).
 *
 * Settling: once every request in flight is answered, MailKit is stopped with SIGTERM (its
 * graceful shutdown settles what it holds); then, per customer, the emails Resend accepted
 * (bench/upstream.ts counts them by recipient: each customer sends to its own
 * delivered+q<N>@resend.dev) are compared with the credits Dodo debited net (its balance before
 * the run less after, read from the sandbox's control API, which spends no quota). Unpaid: emails
 * beyond the net debits; overcharged: net debits beyond the emails; each summed over customers.
 * When they do not match after the stop, MailKit is started again on the same state and given up
 * to --settle-timeout seconds for its reconciler, then stopped again, and the figures are taken
 * then. The same comparison at the last answer (MailKit still up) is printed too: it shows what
 * MailKit still held then.
 *
 * Options: --duration S (30) --baseline-duration S (10) --warmup S (3) --only a,b,c
 *          --variants baseline,default,queued
 *          --latency MS (20) --retry-after-cap S (5) --settle-timeout S (150)
 *          --postgres URL (or env BENCH_DATABASE_URL): also run on PostgreSQL
 *          --json FILE (also write the figures there)
 *          --log-dir DIR (keep MailKit's log of each run there, <engine>-<scenario>-<variant>.log;
 *            by default it goes to /dev/null)
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureCatalog } from '../src/billing/catalog';
import { freePort, freshPostgres, mailkitEnv, mintKeys, pct, removeTempDir, root, sleep, startNode, startUpstream, stop, tempDir, waitHealthy, type Upstream } from './harness';

const { values } = parseArgs({
  options: {
    quotas: { type: 'boolean', default: false },
    duration: { type: 'string', default: '30' },
    'baseline-duration': { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    only: { type: 'string' },
    variants: { type: 'string' },
    latency: { type: 'string', default: '20' },
    'retry-after-cap': { type: 'string', default: '5' },
    'settle-timeout': { type: 'string', default: '150' },
    postgres: { type: 'string' },
    json: { type: 'string' },
    'log-dir': { type: 'string' },
  },
});

/** A positive number option, or the run stops naming it. */
function seconds(name: 'duration' | 'baseline-duration' | 'warmup' | 'latency' | 'retry-after-cap' | 'settle-timeout', min = 0): number {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < min) {
    console.error(`--${name} must be a number of at least ${min}, not "${values[name]}"`);
    process.exit(2);
  }
  return n;
}
const duration = seconds('duration', 1);
const baselineDuration = seconds('baseline-duration', 1);
const warmup = seconds('warmup');
const latency = seconds('latency');
const retryAfterCap = seconds('retry-after-cap', 0.1);
const settleTimeout = seconds('settle-timeout');
const postgresUrl = values.postgres ?? process.env.BENCH_DATABASE_URL ?? null;
for (const [name, d] of [['duration', duration], ['baseline-duration', baselineDuration]] as const) {
  if (warmup >= d) {
    console.error(`--warmup (${warmup} s) must be shorter than --${name} (${d} s)`);
    process.exit(2);
  }
}

/** The targets the issue sets. */
const TARGET = { emailsPerSecond: 150, p99Ms: 2000, lightP99Ms: 2000, offeredFor429: 150 } as const;
/** Credits each customer gets beforehand: far more than any run sends (200 a second at most). */
const CREDITS = 1_000_000;

interface Customer {
  clients: number;
  /** (c)'s light customers, reported on their own line. */
  light: boolean;
}
interface Scenario {
  id: 'a' | 'b' | 'c';
  title: string;
  customers: Customer[];
  /** Held to the 150 emails a second target ((c) is about fairness, not throughput). */
  throughputTarget: boolean;
}
const spread = (customers: number, clients: number): Customer[] =>
  Array.from({ length: customers }, (_, i) => ({ clients: Math.floor(clients / customers) + (i < clients % customers ? 1 : 0), light: false }));
const SCENARIOS: Scenario[] = [
  { id: 'a', title: 'one customer, 32 clients', customers: spread(1, 32), throughputTarget: true },
  { id: 'b', title: '50 customers, 64 clients', customers: spread(50, 64), throughputTarget: true },
  {
    id: 'c',
    title: 'one customer flat out (32 clients) + 20 light customers (1 client each)',
    customers: [{ clients: 32, light: false }, ...Array.from({ length: 20 }, () => ({ clients: 1, light: true }))],
    throughputTarget: false,
  },
];
const only = new Set(values.only ? values.only.split(',').map((s) => s.trim()) : SCENARIOS.map((s) => s.id));
for (const id of only) {
  if (!SCENARIOS.some((s) => s.id === id)) {
    console.error(`--only: unknown scenario "${id}" (scenarios: a, b, c)`);
    process.exit(2);
  }
}

interface Variant {
  id: 'baseline' | 'default' | 'queued';
  label: string;
  env: Record<string, string>;
  /** Clients ask to be answered once queued (202), not once Resend accepted. */
  respondAsync: boolean;
}
const ALL_VARIANTS: Variant[] = [
  { id: 'baseline', label: 'baseline (BATCH_DELIVERY=off)', env: { BATCH_DELIVERY: 'off' }, respondAsync: false },
  // MailKit's own defaults: nothing set, so the run measures what a deployment gets.
  { id: 'default', label: "MailKit default, clients waiting for Resend's ids", env: {}, respondAsync: false },
  { id: 'queued', label: 'MailKit default, clients answered once queued (Prefer: respond-async)', env: {}, respondAsync: true },
];
const VARIANTS = values.variants ? ALL_VARIANTS.filter((v) => values.variants!.split(',').map((x) => x.trim()).includes(v.id)) : ALL_VARIANTS;
if (VARIANTS.length === 0) {
  console.error('--variants: none of baseline, default, queued');
  process.exit(2);
}
/** A send's success: 200, or 202 when answered once queued. */
const ok = (status: number) => status === 200 || status === 202;

const mailkitRev = (() => {
  try {
    return execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();

/** One answer a client got. Times in ms on this process's clock (performance.now()). */
interface Answer {
  start: number;
  end: number;
  /** HTTP status; 0: no answer (connection error or the client's 60 s timeout). */
  status: number;
  light: boolean;
}

/** Emails Resend accepted against credits debited net, summed over the customers. */
interface Tally {
  emails: number;
  netDebits: number;
  /** Σ per customer of emails beyond its net debits. */
  unpaid: number;
  /** Σ per customer of net debits beyond its emails. */
  overcharged: number;
}
interface Latency {
  p50: number;
  p99: number;
}
export interface RunResult {
  scenario: Scenario['id'];
  variant: Variant['id'];
  engine: 'sqlite' | 'postgres';
  seconds: number;
  warmupSeconds: number;
  clients: number;
  customers: number;
  emailsPerSecond: number;
  offeredPerSecond: number;
  /** The requests sent in the measured window (all answered), and the 200s among them alone. */
  latencyMs: { all: Latency; ok: Latency };
  /** Over the whole run. */
  answered429: number;
  /** 429s answered to requests sent in a second when fewer than 150 requests were offered. */
  answered429BelowTarget: number;
  otherNon200: Record<string, number>;
  upstream: { dodoCalls: number; resendCalls: number; dodoCallsPerEmail: number; resendCallsPerEmail: number; dodo429: number; resend429: number };
  /** After settling; `atEnd` when the last answer was in, `afterStop` after the graceful stop. */
  settlement: Tally & { how: string; atEnd: Tally; afterStop: Tally };
  /** (c) only: the light customers' own figures. */
  light: { emailsPerSecond: number; latencyMs: { all: Latency; ok: Latency }; answered429: number } | null;
}

type Stats = { dodoCalls: number; resendCalls: number; pendingWebhooks: number; quotas: { dodo: { limited: number } | null; resend: { limited: number } | null } };

/** One run: fresh upstream and MailKit, the customers, the clients for `runSeconds`, the settlement. */
async function run(scenario: Scenario, variant: Variant, engine: 'sqlite' | 'postgres', runSeconds: number): Promise<RunResult> {
  const dataDir = tempDir();
  const database = engine === 'postgres' ? await freshPostgres(postgresUrl!) : null;
  const appPort = await freePort();
  const appUrl = `http://127.0.0.1:${appPort}`;
  const upstream: Upstream = await startUpstream({ latency, webhookUrl: `${appUrl}/webhooks/dodo`, args: ['--quotas', '--tally-recipients'] });
  const control = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
    const r = await fetch(`${upstream.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`${method} ${path} answered ${r.status}: ${await r.text()}`);
    return (await r.json()) as T;
  };
  const stats = () => control<Stats>('GET', '/stats');
  // The setup is not what is measured: it runs with the quotas off, and they are set afresh
  // (Dodo's bucket full) when the clients start, as on a day whose quota nobody has touched yet.
  await control('POST', '/quotas', { on: false });

  const catalog = await ensureCatalog(upstream.dodo);
  const keySecret = randomBytes(32).toString('hex');
  const env = {
    ...mailkitEnv({ port: appPort, dataDir: join(dataDir, 'app'), databaseUrl: database?.url ?? null, upstream, catalog, keySecret }),
    ...variant.env,
  };
  // MailKit logs at info, as in production, to /dev/null unless kept (a restart appends).
  const logFile = values['log-dir'] ? join(resolve(values['log-dir']), `${engine}-${scenario.id}-${variant.id}.log`) : '/dev/null';
  const startMailkit = async (): Promise<ChildProcess> => {
    const child = startNode({ script: 'server.ts', env, stdout: openSync(logFile, 'a') });
    await waitHealthy(appUrl);
    return child;
  };
  let mailkit = await startMailkit();

  // Customers without a subscription (a checkout's API-key email would spend Resend's quota),
  // each granted CREDITS through the control API, whose adjustment MailKit hears as a webhook.
  const customerIds = await Promise.all(
    scenario.customers.map(async (_, i) => {
      const c = await upstream.dodo.customers.create({ email: `quota${i}@example.com`, name: `Quota ${i}` });
      await control('POST', `/sandbox/api/customers/${c.customer_id}/adjust`, { amount: CREDITS, reason: 'bench' });
      return c.customer_id;
    }),
  );
  const keys = await mintKeys(keySecret, customerIds);
  while ((await stats()).pendingWebhooks > 0) await sleep(50);
  const balances = async () => {
    const { data } = await control<{ data: { customer_id: string; balance: string }[] }>('GET', '/sandbox/api/customers');
    return new Map(data.map((c) => [c.customer_id, Number(c.balance)]));
  };
  const before = await balances();

  await control('POST', '/quotas', { on: true });
  const stats0 = await stats();

  // The clients. Each customer's emails go to its own address, for the settlement's count.
  const answers: Answer[] = [];
  const runId = randomBytes(4).toString('hex');
  const t0 = performance.now();
  const endAt = t0 + runSeconds * 1000;
  const clients = scenario.customers.flatMap((c, customer) => Array.from({ length: c.clients }, () => ({ customer, light: c.light })));
  await Promise.all(
    clients.map(async ({ customer, light }, client) => {
      const body = JSON.stringify({ to: `delivered+q${customer}@resend.dev`, subject: 'Bench', html: '<p>bench</p>' });
      let n = 0;
      while (performance.now() < endAt) {
        const start = performance.now();
        let status = 0;
        let retryAfter: string | null = null;
        try {
          const r = await fetch(`${appUrl}/send`, {
            method: 'POST',
            headers: {
              Authorization: `Bearer ${keys[customer]}`,
              'Content-Type': 'application/json',
              'Idempotency-Key': `q-${runId}-${client}-${n}`,
              ...(variant.respondAsync ? { Prefer: 'respond-async' } : {}),
            },
            body,
            signal: AbortSignal.timeout(60_000),
          });
          status = r.status;
          retryAfter = r.headers.get('retry-after');
          await r.arrayBuffer();
        } catch {
          status = 0;
        }
        const end = performance.now();
        answers.push({ start, end, status, light });
        const left = endAt - end;
        if (status === 429) {
          // The same email again under the same key once MailKit says to: nothing was sent.
          const ra = Number(retryAfter);
          await sleep(Math.max(0, Math.min(left, retryAfterCap * 1000, (Number.isFinite(ra) && ra > 0 ? ra : 1) * 1000)));
        } else if (status === 0 || status === 409 || status >= 500) {
          // No answer, a key still in use, or MailKit in trouble: the same key again, not at once.
          await sleep(Math.max(0, Math.min(left, 250)));
        } else {
          n++;
        }
      }
    }),
  );

  // Settling. Emails against net debits per customer, read three times: when the last answer is
  // in (what MailKit still holds, e.g. leased credits, shows as overcharged), after the graceful
  // stop, and, only if that left a difference, after a restart that lets the reconciler finish.
  const settle = async (): Promise<Tally> => {
    const [after, accepted] = await Promise.all([balances(), control<Record<string, number>>('GET', '/accepted')]);
    const t: Tally = { emails: 0, netDebits: 0, unpaid: 0, overcharged: 0 };
    customerIds.forEach((id, i) => {
      const e = accepted[`delivered+q${i}@resend.dev`] ?? 0;
      const d = before.get(id)! - after.get(id)!;
      t.emails += e;
      t.netDebits += d;
      t.unpaid += Math.max(0, e - d);
      t.overcharged += Math.max(0, d - e);
    });
    return t;
  };
  const atEnd = await settle();
  const [firstExit] = await stop([mailkit]);
  const afterStop = await settle();
  let settled = afterStop;
  // Exit 0: MailKit's shutdown finished in time (it exits 1 when its 15 s run out).
  let how = `SIGTERM, MailKit exited ${firstExit}`;
  if (settled.unpaid + settled.overcharged > 0) {
    const from = performance.now();
    mailkit = await startMailkit();
    while (performance.now() - from < settleTimeout * 1000) {
      await sleep(2000);
      settled = await settle();
      if (settled.unpaid + settled.overcharged === 0) break;
    }
    const [secondExit] = await stop([mailkit]);
    settled = await settle();
    how += `; restarted for ${((performance.now() - from) / 1000).toFixed(0)} s for its reconciler, exited ${secondExit}${settled.unpaid + settled.overcharged > 0 ? ', still unsettled' : ''}`;
  }
  const stats1 = await stats();
  await stop([upstream.process]);
  if (database) await database.drop();
  removeTempDir(dataDir);

  // The figures.
  const from = t0 + warmup * 1000;
  const windowSeconds = (endAt - from) / 1000;
  const answeredIn = (xs: Answer[]) => xs.filter((a) => a.end >= from && a.end <= endAt);
  // Latency of the requests sent in the window, every one of them answered (those still in
  // flight at its end too, the slowest, which a window of answers would leave out).
  const sentIn = (xs: Answer[]) => xs.filter((a) => a.start >= from && a.start < endAt);
  const latencyOf = (xs: Answer[]) => {
    const q = (ys: Answer[]): Latency => (ys.length ? { p50: pct(ys.map((a) => a.end - a.start), 50), p99: pct(ys.map((a) => a.end - a.start), 99) } : { p50: Number.NaN, p99: Number.NaN });
    const sent = sentIn(xs);
    return { all: q(sent), ok: q(sent.filter((a) => ok(a.status))) };
  };
  const okPerSecond = (xs: Answer[]) => answeredIn(xs).filter((a) => ok(a.status)).length / windowSeconds;
  // Requests offered in each whole second of the run, by when they were sent, and the 429s
  // answered to the requests of the seconds that offered fewer than the target.
  const perSecond = new Map<number, { offered: number; refused: number }>();
  for (const a of answers) {
    const s = Math.floor((a.start - t0) / 1000);
    const b = perSecond.get(s) ?? { offered: 0, refused: 0 };
    b.offered++;
    if (a.status === 429) b.refused++;
    perSecond.set(s, b);
  }
  let refusedBelow = 0;
  for (const [s, b] of perSecond) {
    // A last, partial second (a duration that is not whole seconds) counts as a rate over its length.
    const length = Math.min(1, runSeconds - s);
    if (b.offered / length < TARGET.offeredFor429) refusedBelow += b.refused;
  }
  const other: Record<string, number> = {};
  for (const a of answers) {
    if (ok(a.status) || a.status === 429) continue;
    const k = a.status === 0 ? 'no answer' : String(a.status);
    other[k] = (other[k] ?? 0) + 1;
  }
  const dodoCalls = stats1.dodoCalls - stats0.dodoCalls;
  const resendCalls = stats1.resendCalls - stats0.resendCalls;
  const lightAnswers = answers.filter((a) => a.light);
  return {
    scenario: scenario.id,
    variant: variant.id,
    engine,
    seconds: runSeconds,
    warmupSeconds: warmup,
    clients: clients.length,
    customers: scenario.customers.length,
    emailsPerSecond: okPerSecond(answers),
    offeredPerSecond: sentIn(answers).length / windowSeconds,
    latencyMs: latencyOf(answers),
    answered429: answers.filter((a) => a.status === 429).length,
    answered429BelowTarget: refusedBelow,
    otherNon200: other,
    upstream: {
      dodoCalls,
      resendCalls,
      dodoCallsPerEmail: dodoCalls / Math.max(1, settled.emails),
      resendCallsPerEmail: resendCalls / Math.max(1, settled.emails),
      // The quotas' counts were zeroed when they were set for the run.
      dodo429: stats1.quotas.dodo?.limited ?? 0,
      resend429: stats1.quotas.resend?.limited ?? 0,
    },
    settlement: { how, ...settled, atEnd, afterStop },
    light: scenario.id === 'c' ? { emailsPerSecond: okPerSecond(lightAnswers), latencyMs: latencyOf(lightAnswers), answered429: lightAnswers.filter((a) => a.status === 429).length } : null,
  };
}

const ms = (x: number) => (Number.isNaN(x) ? '-' : x >= 10_000 ? x.toFixed(0) : x.toFixed(1));
const rate = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const engineName = (e: RunResult['engine']) => (e === 'postgres' ? 'PostgreSQL' : 'SQLite');
const titleOf = (id: Scenario['id']) => SCENARIOS.find((s) => s.id === id)!.title;
const labelOf = (id: Variant['id']) => ALL_VARIANTS.find((v) => v.id === id)!.label;

const tally = (t: Tally) => `${t.emails} emails, ${t.netDebits} debited, unpaid ${t.unpaid}, overcharged ${t.overcharged}`;

function describe(r: RunResult): string[] {
  const other = Object.entries(r.otherNon200).map(([s, n]) => `${s} × ${n}`).join(', ') || 'none';
  const lines = [
    `== (${r.scenario}) ${titleOf(r.scenario)}: ${labelOf(r.variant)}, ${engineName(r.engine)}, ${r.seconds} s (the first ${r.warmupSeconds} s warm-up)`,
    `   ${rate(r.emailsPerSecond)} emails/s, ${rate(r.offeredPerSecond)} requests/s offered; latency p50 ${ms(r.latencyMs.all.p50)} ms, p99 ${ms(r.latencyMs.all.p99)} ms (successes alone: p50 ${ms(r.latencyMs.ok.p50)} ms, p99 ${ms(r.latencyMs.ok.p99)} ms)`,
    `   429s answered ${r.answered429} (${r.answered429BelowTarget} while fewer than ${TARGET.offeredFor429} requests/s were offered); other non-200: ${other}`,
    `   upstream calls per email: Dodo ${r.upstream.dodoCallsPerEmail.toFixed(3)} (${r.upstream.dodoCalls}), Resend ${r.upstream.resendCallsPerEmail.toFixed(3)} (${r.upstream.resendCalls}); the vendors' own 429s: Dodo ${r.upstream.dodo429}, Resend ${r.upstream.resend429}`,
    `   after settling (${r.settlement.how}): ${r.settlement.emails} emails accepted by Resend, ${r.settlement.netDebits} credits debited net: unpaid ${r.settlement.unpaid}, overcharged ${r.settlement.overcharged}`,
    `     (at the last answer: ${tally(r.settlement.atEnd)}; after the stop: ${tally(r.settlement.afterStop)})`,
  ];
  if (r.light) {
    lines.push(
      `   light customers (20 × 1 client): p99 ${ms(r.light.latencyMs.all.p99)} ms (p50 ${ms(r.light.latencyMs.all.p50)} ms; successes alone p99 ${ms(r.light.latencyMs.ok.p99)} ms), ${rate(r.light.emailsPerSecond)} emails/s, 429s ${r.light.answered429}`,
    );
  }
  return lines;
}

function table(results: RunResult[]): string[] {
  const header = ['run', 'emails/s', 'offered/s', 'p50 ms', 'p99 ms', 'p99 2xx', '429s', '429s <150/s', 'other', 'Dodo/email', 'Resend/email', 'emails', 'net debits', 'unpaid', 'overcharged', 'light p99'];
  const rows = results.map((r) => [
    `(${r.scenario}) ${r.variant}${engines.length > 1 ? ` ${engineName(r.engine)}` : ''}`,
    rate(r.emailsPerSecond),
    rate(r.offeredPerSecond),
    ms(r.latencyMs.all.p50),
    ms(r.latencyMs.all.p99),
    ms(r.latencyMs.ok.p99),
    String(r.answered429),
    String(r.answered429BelowTarget),
    String(Object.values(r.otherNon200).reduce((a, b) => a + b, 0)),
    r.upstream.dodoCallsPerEmail.toFixed(3),
    r.upstream.resendCallsPerEmail.toFixed(3),
    String(r.settlement.emails),
    String(r.settlement.netDebits),
    String(r.settlement.unpaid),
    String(r.settlement.overcharged),
    r.light ? ms(r.light.latencyMs.all.p99) : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cs: string[]) => cs.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** One PASS/FAIL line per target, for one variant's runs. */
function targets(results: RunResult[], variant: Variant['id']): string[] {
  const mine = results.filter((r) => r.variant === variant);
  const name = (r: RunResult) => `(${r.scenario})${engines.length > 1 ? ` ${engineName(r.engine)}` : ''}`;
  const check = (what: string, rs: RunResult[], figure: (r: RunResult) => string, ok: (r: RunResult) => boolean) =>
    rs.length ? [`  ${rs.every(ok) ? 'PASS' : 'FAIL'}  ${what}: ${rs.map((r) => `${name(r)} ${figure(r)}`).join(', ')}`] : [];
  const sustained = mine.filter((r) => SCENARIOS.find((s) => s.id === r.scenario)!.throughputTarget);
  return [
    `targets, ${labelOf(variant)}:`,
    ...check(`at least ${TARGET.emailsPerSecond} emails/s sustained in (a) and (b)`, sustained, (r) => rate(r.emailsPerSecond), (r) => r.emailsPerSecond >= TARGET.emailsPerSecond),
    ...check(`p99 under ${TARGET.p99Ms / 1000} s`, mine, (r) => `${ms(r.latencyMs.all.p99)} ms`, (r) => r.latencyMs.all.p99 < TARGET.p99Ms),
    ...check(`light customers' p99 in (c) under ${TARGET.lightP99Ms / 1000} s`, mine.filter((r) => r.light), (r) => `${ms(r.light!.latencyMs.all.p99)} ms`, (r) => r.light!.latencyMs.all.p99 < TARGET.lightP99Ms),
    ...check('0 unpaid after settling', mine, (r) => String(r.settlement.unpaid), (r) => r.settlement.unpaid === 0),
    ...check('0 overcharged after settling', mine, (r) => String(r.settlement.overcharged), (r) => r.settlement.overcharged === 0),
    ...check(`no 429 answered while less than ${TARGET.offeredFor429} emails/s are offered`, mine, (r) => String(r.answered429BelowTarget), (r) => r.answered429BelowTarget === 0),
  ];
}

if (values['log-dir']) mkdirSync(values['log-dir'], { recursive: true });
const engines: RunResult['engine'][] = postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];
const command = `npm run bench -- --quotas --duration ${duration} --baseline-duration ${baselineDuration} --warmup ${warmup}${values.only ? ` --only ${values.only}` : ''}${values.variants ? ` --variants ${values.variants}` : ''}${postgresUrl ? ' --postgres URL' : ''}`;
console.log(command);
console.log(`node ${process.version}, MailKit ${mailkitRev}; upstream: the sandbox with the vendors' quotas (Resend 2 requests/s, Dodo 240/min with bursts of 40), ${latency} ms per API call;`);
console.log(`MailKit live with its default budgets (RESEND_RATE_LIMIT 2/s, DODO_RATE_LIMIT 240/min) and RATE_LIMIT_PER_KEY=1000000; a client waits Retry-After (at most ${retryAfterCap} s) after a 429`);
const results: RunResult[] = [];
for (const engine of engines) {
  for (const scenario of SCENARIOS.filter((s) => only.has(s.id))) {
    for (const variant of VARIANTS) {
      const r = await run(scenario, variant, engine, variant.id === 'baseline' ? baselineDuration : duration);
      results.push(r);
      console.log(`\n${describe(r).join('\n')}`);
    }
  }
}
console.log(`\n${table(results).join('\n')}\n`);
for (const v of VARIANTS) console.log(targets(results, v.id).join('\n'));
if (values.json) writeFileSync(values.json, JSON.stringify({ command, node: process.version, mailkitRev, latencyMs: latency, targets: TARGET, results }, null, 2));
process.exit(0);
