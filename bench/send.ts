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
 * Each engine gets the whole run, with fresh processes: SQLite always (the file in a fresh
 * temporary MAILKIT_DATA_DIR, on disk as in production), then PostgreSQL when a URL is given
 * (a fresh database `mailkit_bench_<hex>` created through that URL and dropped at the end).
 * The last step, the soak, sends /send at full speed for --soak seconds and reports MailKit's
 * resident memory (VmRSS from /proc/<pid>/status) at its start and end, and the peak; and, to
 * tell memory kept from garbage not yet collected, its V8 heap right after a full GC (and RSS a
 * second later) before the first send and after the last (MailKit runs with --expose-gc;
 * bench/trace-hook.ts).
 *
 * Options: --latency MS (default 20) --clients N (16) --sends N (1600) --batches N (48)
 *          --unloaded N (200: sends measured one at a time, baseline and /send)
 *          --pairs N (400: direct calls, bare relay and /send taking turns, for the overhead figures)
 *          --soak SECONDS (60; 0 skips it)
 *          --postgres URL (or env BENCH_DATABASE_URL): also run on PostgreSQL; the role must
 *            be allowed to `create database`
 *          --only LIST (comma-separated steps, default all: baseline-1, send-1, pairs,
 *            baseline-n, send-n, batch, soak)
 *          --mailkit-dir DIR (run server.ts from another checkout of MailKit, e.g. an older
 *            commit in a git worktree; the clients, upstreams and relay stay this checkout's)
 *          --json FILE (also write the figures there, for bench/compare.ts)
 *          --cpu-prof DIR (write a V8 CPU profile of the upstream and MailKit processes there)
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureCatalog } from '../src/billing/catalog';
import {
  epochMs,
  firstLine,
  freePort,
  freshPostgres,
  mailkitEnv,
  mintKeys,
  pct,
  removeTempDir,
  root,
  startNode,
  startUpstream,
  stop,
  tempDir,
  waitHealthy,
} from './harness';

const STEPS = ['baseline-1', 'send-1', 'pairs', 'baseline-n', 'send-n', 'batch', 'soak'] as const;
type Step = (typeof STEPS)[number];

const { values } = parseArgs({
  options: {
    latency: { type: 'string', default: '20' },
    clients: { type: 'string', default: '16' },
    sends: { type: 'string', default: '1600' },
    batches: { type: 'string', default: '48' },
    unloaded: { type: 'string', default: '200' },
    pairs: { type: 'string', default: '400' },
    soak: { type: 'string', default: '60' },
    postgres: { type: 'string' },
    only: { type: 'string' },
    'mailkit-dir': { type: 'string' },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const profileArgs = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(values['cpu-prof'])] : [];
const latency = Number(values.latency);
const clients = Number(values.clients);
const sends = Number(values.sends);
const batches = Number(values.batches);
const unloaded = Number(values.unloaded);
const pairs = Number(values.pairs);
const soakSeconds = Number(values.soak);
const postgresUrl = values.postgres ?? process.env.BENCH_DATABASE_URL ?? null;
const only = new Set<string>(values.only ? values.only.split(',').map((s) => s.trim()) : STEPS);
for (const s of only) {
  if (!(STEPS as readonly string[]).includes(s)) {
    console.error(`--only: unknown step "${s}" (steps: ${STEPS.join(', ')})`);
    process.exit(2);
  }
}
if (soakSeconds <= 0) only.delete('soak');
const runs = (step: Step) => only.has(step);

/** The checkout MailKit's server.ts runs from (the clients, upstreams and relay are this one's: harness.ts's root). */
const mailkitDir = resolve(values['mailkit-dir'] ?? root);
const mailkitRev = (() => {
  try {
    return execFileSync('git', ['-C', mailkitDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
/** Older checkouts kept MailKit's state in a snapshot + journal under MAILKIT_DATA_DIR, not a database. */
const hasDatabase = existsSync(join(mailkitDir, 'src/db/index.ts'));

const email = { to: 'delivered@resend.dev', subject: 'Bench', html: '<p>bench</p>' };

type Row = {
  scenario: string;
  step: Step;
  requests: number;
  emailsPerSecond: number;
  p50: number;
  p99: number;
  upstreamCallsPerEmail: number;
  cpuMsPerEmail: number | null;
  own: string;
};
type Soak = {
  seconds: number;
  clients: number;
  sends: number;
  emailsPerSecond: number;
  cpuMsPerEmail: number | null;
  rssStartMb: number;
  rssEndMb: number;
  rssPeakMb: number;
  rssSeriesMb: number[];
  /** V8 heap right after a full garbage collection and VmRSS a second later, before the first send and after the last. */
  afterGc: { start: { rssMb: number; heapMb: number }; end: { rssMb: number; heapMb: number } } | null;
};
type EngineResult = { engine: string; state: string; lines: string[]; rows: Row[]; soak: Soak | null; rssReadyMb: number | null };

/** One engine's whole run: fresh upstreams, MailKit, relay and customers; every selected step. */
async function benchEngine(engine: 'sqlite' | 'postgres'): Promise<EngineResult> {
  const dataDir = tempDir();
  // This engine's children, stopped together at its end (an earlier exit ends the run: harness.ts).
  const mine: ChildProcess[] = [];

  const database = engine === 'postgres' ? await freshPostgres(postgresUrl!) : null;
  const appDir = join(dataDir, 'app');
  const state = !hasDatabase
    ? `journal store (snapshot + journal in a fresh temporary MAILKIT_DATA_DIR)`
    : database
      ? `PostgreSQL, fresh database ${database.name} at ${new URL(postgresUrl!).host}`
      : `SQLite, ${join(appDir, 'mailkit.sqlite')} (fresh temporary MAILKIT_DATA_DIR)`;

  const appPort = await freePort();
  const appUrl = `http://127.0.0.1:${appPort}`;
  const upstream = await startUpstream({ latency, webhookUrl: `${appUrl}/webhooks/dodo`, nodeFlags: profileArgs });
  mine.push(upstream.process);
  const { dodo, resend, url: upstreamUrl } = upstream;
  const catalog = await ensureCatalog(dodo);
  const keySecret = randomBytes(32).toString('hex');

  // MailKit's own time per send (bench/trace-hook.ts), read once MailKit has exited.
  const traceFile = join(dataDir, 'trace.jsonl');
  // MailKit's memory after a full collection, asked for with SIGUSR2 (bench/trace-hook.ts).
  const memoryFile = join(dataDir, 'memory.json');
  // MailKit logs at info, as in production, to /dev/null (reading the lines here would cost this process).
  const mailkit = startNode({
    script: 'server.ts',
    env: {
      ...mailkitEnv({ port: appPort, dataDir: appDir, databaseUrl: database?.url ?? null, upstream, catalog, keySecret }),
      BENCH_TRACE_FILE: traceFile,
      BENCH_MEMORY_FILE: memoryFile,
      // The upstream enforces no quota here; neither does MailKit's budget (live defaults would).
      RESEND_RATE_LIMIT: '0',
      DODO_RATE_LIMIT: '0',
    },
    stdout: openSync('/dev/null', 'w'),
    preload: [pathToFileURL(join(root, 'bench/trace-hook.ts')).href],
    cwd: mailkitDir,
    nodeFlags: [...profileArgs, '--expose-gc'],
  });
  mine.push(mailkit);
  await waitHealthy(appUrl);

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
  /** MailKit's resident memory (VmRSS of /proc/<pid>/status) in MB; null where /proc is missing. */
  function mailkitRssMb(): number | null {
    try {
      const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${mailkit.pid}/status`, 'utf8'))?.[1];
      return kb ? Number(kb) / 1024 : null;
    } catch {
      return null;
    }
  }
  /**
   * MailKit's V8 heap in use right after a full garbage collection, and its VmRSS a second later
   * (V8 hands the freed pages back to the system only after the collection), in MB.
   */
  async function mailkitAfterGc(): Promise<{ rssMb: number; heapMb: number } | null> {
    rmSync(memoryFile, { force: true });
    mailkit.kill('SIGUSR2');
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setTimeout(r, 25));
      try {
        const m = JSON.parse(readFileSync(memoryFile, 'utf8')) as { collected: boolean; heapUsed: number };
        if (!m.collected) return null;
        await new Promise((r) => setTimeout(r, 1000));
        const rssMb = mailkitRssMb();
        return rssMb === null ? null : { rssMb, heapMb: m.heapUsed / 2 ** 20 };
      } catch {
        // not written yet (or half written)
      }
    }
    return null;
  }
  const rssReadyMb = mailkitRssMb();

  // One customer per client, subscribed through the hosted checkout, then given plenty of credits.
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
  const keys = await mintKeys(keySecret, customers);

  // The bare relay (bench/relay.ts): the same two upstream calls behind a do-nothing HTTP server.
  const relayProcess = startNode({
    script: 'bench/relay.ts',
    env: { RELAY_UPSTREAM: upstreamUrl, RELAY_CUSTOMER: customers[0]!, RELAY_ENTITLEMENT: catalog.creditEntitlementId },
    stdout: 'pipe',
    nodeFlags: profileArgs,
  });
  mine.push(relayProcess);
  const relayUrl = `http://127.0.0.1:${await firstLine(relayProcess)}`;

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
  async function drive(
    total: number,
    op: (client: number, i: number) => Promise<void>,
    concurrency = clients,
  ): Promise<{ ms: number[]; wall: number }> {
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

  const post = (path: string, client: number, body: unknown, headers: Record<string, string> = {}) => postTo(appUrl, path, client, body, headers);
  async function postTo(origin: string, path: string, client: number, body: unknown, headers: Record<string, string> = {}): Promise<void> {
    const r = await fetch(`${origin}${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${keys[client]}`, 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`${path} answered ${r.status}: ${await r.text()}`);
    await r.arrayBuffer();
  }

  const rows: Row[] = [];
  /** Row index → the wall-clock window its requests ran in, to pick its sends out of the trace. */
  const windows = new Map<number, [number, number]>();
  /**
   * Runs one scenario and adds its row. Upstream calls and MailKit's CPU are counted until the
   * webhooks the scenario caused have been delivered, since handling them is part of an email's cost.
   */
  async function scenario(
    step: Step,
    name: string,
    ops: number,
    emailsPerOp: number,
    run: () => Promise<{ ms: number[]; wall: number }>,
    viaMailkit: boolean,
  ): Promise<{ ms: number[]; wall: number } | null> {
    if (!runs(step)) return null;
    const calls0 = await upstreamCalls();
    const cpu0 = mailkitCpuMs();
    const from = epochMs();
    const r = await run();
    if (viaMailkit) windows.set(rows.length, [from, epochMs()]);
    await webhooksIdle();
    const cpu1 = mailkitCpuMs();
    const calls = (await upstreamCalls()) - calls0;
    const emails = ops * emailsPerOp;
    rows.push({
      scenario: name,
      step,
      requests: ops,
      emailsPerSecond: emails / (r.wall / 1000),
      p50: pct(r.ms, 50),
      p99: pct(r.ms, 99),
      upstreamCallsPerEmail: calls / emails,
      cpuMsPerEmail: viaMailkit && cpu0 !== null && cpu1 !== null ? (cpu1 - cpu0) / emails : null,
      own: '-',
    });
    return r;
  }

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
  const quietBaseline = await scenario(
    'baseline-1',
    'baseline, 1 client',
    unloaded,
    1,
    () => drive(unloaded, (client, i) => direct(client, i, 'quiet'), 1),
    false,
  );
  const quietSingle = await scenario(
    'send-1',
    'POST /send, 1 client',
    unloaded,
    1,
    () => drive(unloaded, (client) => post('/send', client, email), 1),
    true,
  );

  // The overhead figures: one client taking turns between the direct calls, the bare relay and
  // /send, so that all three see the same machine at the same moment (sequential runs drift by
  // more than the figures themselves).
  const paired = { direct: [] as number[], relay: [] as number[], send: [] as number[] };
  const timed = async (into: number[], op: () => Promise<void>) => {
    const t = performance.now();
    await op();
    into.push(performance.now() - t);
  };
  let pairsWindow: [number, number] | null = null;
  if (runs('pairs')) {
    const pairsFrom = epochMs();
    for (let i = 0; i < pairs; i++) {
      const steps = [
        () => timed(paired.direct, () => direct(0, i, 'paired')),
        () => timed(paired.relay, () => postTo(relayUrl, '/send', 0, email)),
        () => timed(paired.send, () => post('/send', 0, email)),
      ];
      for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!();
    }
    pairsWindow = [pairsFrom, epochMs()];
    await webhooksIdle();
  }
  const baseline = await scenario(
    'baseline-n',
    `baseline, ${clients} clients`,
    sends,
    1,
    () => drive(sends, (client, i) => direct(client, i, 'baseline')),
    false,
  );
  const single = await scenario(
    'send-n',
    `POST /send, ${clients} clients`,
    sends,
    1,
    () => drive(sends, (client) => post('/send', client, email)),
    true,
  );
  const batch = Array.from({ length: 100 }, (_, i) => ({ ...email, subject: `Bench ${i}` }));
  await scenario(
    'batch',
    `POST /send/batch (100 emails), ${clients} clients`,
    batches,
    100,
    () => drive(batches, (client) => post('/send/batch', client, { emails: batch })),
    true,
  );

  // The soak: /send at full speed for --soak seconds, MailKit's RSS sampled every second. Its
  // sends skip bench/trace-hook.ts (the X-Bench-Untraced header), whose samples would otherwise
  // grow MailKit's heap by the benchmark's own bookkeeping.
  let soak: Soak | null = null;
  if (runs('soak')) {
    const gcStart = await mailkitAfterGc();
    const rssStart = mailkitRssMb() ?? Number.NaN;
    const series: number[] = [rssStart];
    let peak = rssStart;
    const sampler = setInterval(() => {
      const rss = mailkitRssMb();
      if (rss === null) return;
      peak = Math.max(peak, rss);
      series.push(rss);
    }, 1000);
    const cpu0 = mailkitCpuMs();
    let done = 0;
    const begin = performance.now();
    const until = begin + soakSeconds * 1000;
    await Promise.all(
      Array.from({ length: clients }, async (_, client) => {
        while (performance.now() < until) {
          await post('/send', client, email, { 'X-Bench-Untraced': '1' });
          done++;
        }
      }),
    );
    const wall = performance.now() - begin;
    await webhooksIdle();
    clearInterval(sampler);
    const cpu1 = mailkitCpuMs();
    const rssEnd = mailkitRssMb() ?? Number.NaN;
    peak = Math.max(peak, rssEnd);
    series.push(rssEnd);
    const gcEnd = await mailkitAfterGc();
    soak = {
      seconds: soakSeconds,
      clients,
      sends: done,
      emailsPerSecond: done / (wall / 1000),
      cpuMsPerEmail: cpu0 !== null && cpu1 !== null ? (cpu1 - cpu0) / done : null,
      rssStartMb: rssStart,
      rssEndMb: rssEnd,
      rssPeakMb: peak,
      rssSeriesMb: series,
      afterGc: gcStart && gcEnd ? { start: gcStart, end: gcEnd } : null,
    };
  }

  await stop(mine);
  if (database) await database.drop();

  // MailKit's own time per send: each /send's time in MailKit less its waits on Dodo and Resend.
  type Trace = { at: number; total: number; upstream: number };
  const traces: Trace[] = existsSync(traceFile)
    ? readFileSync(traceFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Trace)
    : [];
  const ownIn = ([from, to]: [number, number]) => traces.filter((t) => t.at >= from && t.at <= to).map((t) => t.total - t.upstream);
  for (const [row, window] of windows) {
    const own = ownIn(window);
    if (own.length) rows[row]!.own = `${pct(own, 50).toFixed(2)} / ${pct(own, 99).toFixed(2)}`;
  }
  removeTempDir(dataDir);

  const lines: string[] = [];
  const out = (s = '') => lines.push(s);
  const header = ['scenario', 'requests', 'emails/s', 'p50 ms', 'p99 ms', 'upstream calls/email', 'MailKit CPU ms/email', 'MailKit own ms p50 / p99'];
  const cells = rows.map((r) => [
    r.scenario,
    String(r.requests),
    r.emailsPerSecond.toFixed(0),
    r.p50.toFixed(1),
    r.p99.toFixed(1),
    r.upstreamCallsPerEmail.toFixed(2),
    r.cpuMsPerEmail === null ? '-' : r.cpuMsPerEmail.toFixed(2),
    r.own,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (cs: string[]) =>
    cs
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const mb = (x: number | null) => (x === null || Number.isNaN(x) ? '?' : `${x.toFixed(0)} MB`);
  out(
    `== ${hasDatabase ? (engine === 'postgres' ? 'PostgreSQL' : 'SQLite') : 'journal store'}: ` +
      `MailKit ${mailkitRev}${mailkitDir === root ? '' : ` from ${mailkitDir}`}, state in ${state}`,
  );
  out(`   MailKit RSS when ready, before any send: ${mb(rssReadyMb)}`);
  out();
  if (rows.length) {
    out(line(header));
    for (const r of cells) out(line(r));
  }
  if (pairsWindow) {
    const pairedOwn = ownIn(pairsWindow);
    if (pairedOwn.length) {
      out(
        `\nMailKit's own time per /send, 1 client (the ${pairedOwn.length} sends taking turns): ` +
          `p50 ${pct(pairedOwn, 50).toFixed(2)} ms, p99 ${pct(pairedOwn, 99).toFixed(2)} ms`,
      );
      out('  (request parsed → answer written, less the time from each upstream request to its response headers)');
    }
    const p50 = (xs: number[]) => pct(xs, 50);
    out(
      `\n/send p50 overhead seen by one client, ${pairs} turns each (direct calls ${p50(paired.direct).toFixed(2)} ms, ` +
        `relay ${p50(paired.relay).toFixed(2)} ms, /send ${p50(paired.send).toFixed(2)} ms):`,
    );
    out(`  over the same two upstream calls made directly:   ${(p50(paired.send) - p50(paired.direct)).toFixed(2)} ms`);
    out(`    of which any HTTP service in between (bare relay less direct): ${(p50(paired.relay) - p50(paired.direct)).toFixed(2)} ms`);
    out(`    of which MailKit itself (/send less bare relay):              ${(p50(paired.send) - p50(paired.relay)).toFixed(2)} ms`);
    if (quietSingle && quietBaseline && single && baseline) {
      out(
        `  (sequential runs instead of turns: 1 client ${(p50(quietSingle.ms) - p50(quietBaseline.ms)).toFixed(1)} ms, ` +
          `${clients} clients ${(p50(single.ms) - p50(baseline.ms)).toFixed(1)} ms)`,
      );
    }
  }
  if (soak) {
    out(
      `\nSoak: POST /send at full speed, ${soak.clients} clients, ${soak.seconds} s: ${soak.sends} sends ` +
        `(${soak.emailsPerSecond.toFixed(0)} emails/s, MailKit CPU ${soak.cpuMsPerEmail?.toFixed(2) ?? '-'} ms/email)`,
    );
    out(
      `  MailKit RSS: start ${mb(soak.rssStartMb)}, end ${mb(soak.rssEndMb)} ` +
        `(${soak.rssEndMb >= soak.rssStartMb ? '+' : ''}${(soak.rssEndMb - soak.rssStartMb).toFixed(0)} MB), peak ${mb(soak.rssPeakMb)}`,
    );
    const every = Math.max(1, Math.round(soak.seconds / 10));
    const picks = soak.rssSeriesMb.filter((_, i) => i % every === 0);
    out(`  RSS every ${every} s: ${picks.map((x) => x.toFixed(0)).join(' ')} MB`);
    const g = soak.afterGc;
    if (g) {
      const d = (a: number, b: number) => `${b >= a ? '+' : ''}${(b - a).toFixed(0)} MB`;
      out(
        `  after a full GC, before the first send → after the last: ` +
          `V8 heap used ${mb(g.start.heapMb)} → ${mb(g.end.heapMb)} (${d(g.start.heapMb, g.end.heapMb)}), ` +
          `RSS a second later ${mb(g.start.rssMb)} → ${mb(g.end.rssMb)} (${d(g.start.rssMb, g.end.rssMb)})`,
      );
    }
  }
  return { engine: hasDatabase ? engine : 'journal', state, lines, rows, soak, rssReadyMb };
}

const engines: ('sqlite' | 'postgres')[] = hasDatabase && postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];
const results: EngineResult[] = [];
for (const engine of engines) {
  const r = await benchEngine(engine);
  results.push(r);
  if (results.length === 1) {
    const soakArgs = runs('soak') ? ` --soak ${soakSeconds}` : '';
    const onlyArgs = values.only ? ` --only ${values.only}` : '';
    console.log(
      `npm run bench -- --latency ${latency} --clients ${clients} --sends ${sends} --batches ${batches} --unloaded ${unloaded} --pairs ${pairs}` +
        `${soakArgs}${onlyArgs}${postgresUrl && hasDatabase ? ' --postgres URL' : ''}`,
    );
    console.log(`node ${process.version}, injected upstream latency ${latency} ms per call, ${clients} concurrent clients,`);
    console.log('upstreams (sandbox), MailKit (server.ts, live mode) and clients in three processes on loopback');
  }
  console.log(`\n${r.lines.join('\n')}`);
}
if (values.json) writeFileSync(values.json, JSON.stringify({ mailkitDir, mailkitRev, results: results.map(({ lines: _, ...r }) => r) }, null, 2));
process.exit(0);
