/**
 * The figures of `npm run bench -- --quotas` (bench/quotas.ts says what each counts), drawn
 * from what bench/quota-run.ts returns, and their printing: a block per run, one table, one
 * PASS/FAIL line per target, the soak's readings.
 */
import { pct } from './harness';
import {
  BURST,
  type Answer,
  type Engine,
  type RawRun,
  type RawSoak,
  type ScenarioId,
  type SoakReading,
  type Tally,
  type VariantId,
} from './quota-run';

/** The targets: the ceiling under the vendors' default quotas, and exactness (docs/performance.md). */
export const TARGET = {
  /** Resend's 2 calls a second of 100 emails. */
  ceiling: 200,
  /** Queued: emails reaching Resend a second in (a) and (b). */
  resendPerSecond: 190,
  /** Queued: p99 of answers in (a)–(c), and in (d). */
  p99Ms: 500,
  burstP99Ms: 1000,
  /** (e): the slowest answer; the emails at Resend (5 customers × 10 credits). */
  dryMaxMs: 1000,
  dryEmails: 50,
  /** Clients waiting for Resend's ids: this share of min(2 × clients, ceiling) answers a second in (a) and (b). */
  defaultShare: 0.9,
  /** Soak: V8 heap after a full GC and RSS, end less start. */
  soakHeapMb: 10,
  soakRssMb: 50,
} as const;

interface Latency {
  p50: number;
  p99: number;
  max: number;
}

export interface RunResult {
  scenario: ScenarioId;
  variant: VariantId;
  engine: Engine;
  instances: number;
  /** From the load's start to the moment it stopped, and the measured window within it. */
  loadSeconds: number;
  windowSeconds: number;
  /** Closed-loop clients; (d): batches a burst; (e): sends fired at once. */
  clients: number;
  customers: number;
  /** Emails Resend accepted in the window, and a second. */
  atResend: number;
  resendPerSecond: number;
  /** Resend's calls that carried them, a second, and the emails a call: resendPerSecond is their product. */
  resendCallsPerSecond: number;
  emailsPerCall: number;
  /** Emails in the 2xx answers received in the window, a second. */
  answeredPerSecond: number;
  /** Of the requests sent in the window (every one answered), in ms. */
  latencyMs: Latency;
  /** (c): the light customers' alone. */
  lightLatencyMs: Latency | null;
  /** Answers by status over the whole run ('0': none). */
  statuses: Record<string, number>;
  /** Emails Resend accepted after the load stopped, and how long after it the last one was. */
  drain: { emails: number; seconds: number };
  /** Every API call the upstream counted from the load's start to the end of the settling (the vendors' 429s apart). */
  upstream: { dodoCalls: number; resendCalls: number; dodoCallsPerEmail: number; resendCallsPerEmail: number; dodo429: number; resend429: number };
  settlement: Tally & { how: string; atEnd: Tally; afterStop: Tally };
  batches: { sent: number; givenUp: number } | null;
  soak: SoakFigures | null;
}

export interface SoakFigures {
  /** Between the two readings. */
  seconds: number;
  emails: number;
  start: SoakReading;
  end: SoakReading;
}

const is2xx = (status: number) => status >= 200 && status < 300;

function latencyOf(answers: Answer[]): Latency {
  if (answers.length === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const ms = answers.map((a) => a.end - a.start);
  return { p50: pct(ms, 50), p99: pct(ms, 99), max: Math.max(...ms) };
}

/** The figures of one run (`soak`: of the soak, whose window is its readings' span). */
export function figures(raw: RawRun, soak: RawSoak | null = null): RunResult {
  const { answers, from, endAt } = raw;
  const windowSeconds = (endAt - from) / 1000;
  // Latency of the requests sent in the window, every one of them answered (those still in
  // flight at its end too, the slowest, which a window of answers would leave out).
  const sentIn = answers.filter((a) => a.start >= from && a.start < endAt);
  const answeredIn = answers.filter((a) => a.end >= from && a.end <= endAt && is2xx(a.status));
  const statuses: Record<string, number> = {};
  for (const a of answers) statuses[String(a.status)] = (statuses[String(a.status)] ?? 0) + 1;
  const emails = Math.max(1, raw.settlement.emails);
  const dodoCalls = raw.stats1.dodoCalls - raw.stats0.dodoCalls;
  const resendCalls = raw.stats1.resendCalls - raw.stats0.resendCalls;
  return {
    scenario: raw.scenario.id,
    variant: raw.variant.id,
    engine: raw.engine,
    instances: raw.instances,
    loadSeconds: (endAt - raw.t0) / 1000,
    windowSeconds,
    clients:
      raw.scenario.load === 'bursts'
        ? raw.scenario.customers.length * BURST.batchesPerCustomer
        : raw.scenario.customers.reduce((n, c) => n + c.clients, 0),
    customers: raw.scenario.customers.length,
    atResend: raw.atResend.inWindow,
    resendPerSecond: raw.atResend.inWindow / windowSeconds,
    resendCallsPerSecond: raw.atResend.callsInWindow / windowSeconds,
    emailsPerCall: raw.atResend.inWindow / Math.max(1, raw.atResend.callsInWindow),
    answeredPerSecond: answeredIn.reduce((n, a) => n + a.emails, 0) / windowSeconds,
    latencyMs: latencyOf(sentIn),
    lightLatencyMs: raw.scenario.customers.some((c) => c.light) ? latencyOf(sentIn.filter((a) => a.light)) : null,
    statuses,
    drain: { emails: raw.atResend.drained, seconds: raw.atResend.drainMs / 1000 },
    upstream: {
      dodoCalls,
      resendCalls,
      dodoCallsPerEmail: dodoCalls / emails,
      resendCallsPerEmail: resendCalls / emails,
      // The quotas' counts were zeroed when they were set for the load.
      dodo429: raw.stats1.quotas.dodo?.limited ?? 0,
      resend429: raw.stats1.quotas.resend?.limited ?? 0,
    },
    settlement: raw.settlement,
    batches: raw.batches,
    soak: soak
      ? {
          seconds: (soak.end.at - soak.start.at) / 1000,
          emails: soak.end.emailsAtResend - soak.start.emailsAtResend,
          start: soak.start,
          end: soak.end,
        }
      : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Printing

const ms = (x: number) => (Number.isNaN(x) ? '-' : x >= 10_000 ? x.toFixed(0) : x.toFixed(1));
const rate = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const mb = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? '?' : `${x.toFixed(1)} MB`);
const signed = (x: number, unit: string) => `${x >= 0 ? '+' : ''}${x.toFixed(1)} ${unit}`;
const engineName = (e: Engine) => (e === 'postgres' ? 'PostgreSQL' : 'SQLite');
const count = (r: RunResult, status: number) => r.statuses[String(status)] ?? 0;
/** The answers neither 2xx nor 429 (nor `but`), by status: "402×150 none×2" ('none': no answer). */
const others = (r: RunResult, but: string[] = []) =>
  Object.entries(r.statuses)
    .filter(([s]) => !is2xx(Number(s)) && s !== '429' && !but.includes(s))
    .map(([s, n]) => `${s === '0' ? 'none' : s}×${n}`)
    .join(' ') || '-';
const tally = (t: Tally) => `${t.emails} emails, ${t.netDebits} debited, unpaid ${t.unpaid}, overcharged ${t.overcharged}`;
/** A run's name in the table and the target lines. */
export const runName = (r: RunResult, engines: number) =>
  `(${r.scenario}) ${r.variant}${r.soak ? ` soak` : ''}${engines > 1 ? ` ${engineName(r.engine)}` : ''}${r.instances > 1 ? ` ×${r.instances}` : ''}`;

/** The block printed after each run: every figure, with what it counts. */
export function describe(r: RunResult, title: string, label: string): string[] {
  const window =
    r.scenario === 'a' || r.scenario === 'b' || r.scenario === 'c' ? `the ${r.windowSeconds.toFixed(0)} s after the warm-up` : 'the whole load';
  const lines = [
    `== (${r.scenario}) ${title}: ${label}, ${engineName(r.engine)}` +
      `${r.instances > 1 ? `, ${r.instances} instances on one database` : ''}, load ${r.loadSeconds.toFixed(1)} s`,
    `   at Resend: ${rate(r.resendPerSecond)} emails/s in ${window} (${r.atResend} emails): ` +
      `${r.resendCallsPerSecond.toFixed(2)} calls/s × ${r.emailsPerCall.toFixed(1)} emails a call; ` +
      `drain after the load: ${r.drain.emails} emails in ${r.drain.seconds.toFixed(1)} s`,
    `   answers: ${rate(r.answeredPerSecond)} emails/s answered 2xx in the window; ` +
      `requests sent in it: p50 ${ms(r.latencyMs.p50)} ms, p99 ${ms(r.latencyMs.p99)} ms, slowest ${ms(r.latencyMs.max)} ms`,
    `   statuses over the run: 2xx ${Object.entries(r.statuses)
      .filter(([s]) => is2xx(Number(s)))
      .reduce((n, [, k]) => n + k, 0)}, MailKit's 429 ${count(r, 429)}, other ${others(r)}`,
    `   upstream calls per email: Resend ${r.upstream.resendCallsPerEmail.toFixed(4)} (${r.upstream.resendCalls} calls, ` +
      `${(1 / Math.max(1e-9, r.upstream.resendCallsPerEmail)).toFixed(1)} emails a call), ` +
      `Dodo ${r.upstream.dodoCallsPerEmail.toFixed(4)} (${r.upstream.dodoCalls}); ` +
      `the vendors' own 429s: Resend ${r.upstream.resend429}, Dodo ${r.upstream.dodo429}`,
    `   after settling (${r.settlement.how}): ${tally(r.settlement)}`,
    `     (at the drain's end, MailKit up: ${tally(r.settlement.atEnd)}; after the stop: ${tally(r.settlement.afterStop)})`,
  ];
  if (r.lightLatencyMs)
    lines.push(
      `   light customers (1 client each): p50 ${ms(r.lightLatencyMs.p50)} ms, ` +
        `p99 ${ms(r.lightLatencyMs.p99)} ms, slowest ${ms(r.lightLatencyMs.max)} ms`,
    );
  if (r.batches) lines.push(`   batches: ${r.batches.sent} sent, ${r.batches.givenUp} still refused when the load stopped (their emails never sent)`);
  if (r.soak) lines.push(...describeSoak(r.soak));
  return lines;
}

function describeSoak(s: SoakFigures): string[] {
  const perEmail = s.emails > 0 ? ((s.end.databaseBytes - s.start.databaseBytes) / s.emails).toFixed(0) : '-';
  const heap = (x: SoakReading) => mb(x.afterGc?.heapMb);
  const gcRss = (x: SoakReading) => mb(x.afterGc?.rssMb);
  return [
    `   soak: ${s.seconds.toFixed(0)} s between the readings, ${s.emails} emails at Resend (${rate(s.emails / s.seconds)} a second)`,
    `     V8 heap after a full GC: ${heap(s.start)} → ${heap(s.end)}` +
      `${s.start.afterGc && s.end.afterGc ? ` (${signed(s.end.afterGc.heapMb - s.start.afterGc.heapMb, 'MB')})` : ''}`,
    `     RSS a second after it: ${gcRss(s.start)} → ${gcRss(s.end)}` +
      `${s.start.afterGc && s.end.afterGc ? ` (${signed(s.end.afterGc.rssMb - s.start.afterGc.rssMb, 'MB')})` : ''}` +
      `; before it: ${mb(s.start.rssMb)} → ${mb(s.end.rssMb)}`,
    `     database: ${mb(s.start.databaseBytes / 2 ** 20)} → ${mb(s.end.databaseBytes / 2 ** 20)} ` +
      `(${signed((s.end.databaseBytes - s.start.databaseBytes) / 2 ** 20, 'MB')}, ${perEmail} bytes an email)`,
  ];
}

/** One table of every run. */
export function table(results: RunResult[], engines: number): string[] {
  const header = [
    'run',
    'clients',
    'Resend/s',
    'calls/s',
    'emails/call',
    '2xx/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'light p99',
    '429 MailKit',
    '429 Resend',
    'other',
    'drain',
    'Resend calls/email',
    'Dodo calls/email',
    'emails',
    'debited',
    'unpaid',
    'overcharged',
  ];
  const rows = results.map((r) => [
    runName(r, engines),
    String(r.clients),
    r.scenario === 'e' ? '-' : rate(r.resendPerSecond),
    r.scenario === 'e' ? '-' : r.resendCallsPerSecond.toFixed(2),
    r.scenario === 'e' ? '-' : r.emailsPerCall.toFixed(1),
    r.scenario === 'e' ? '-' : rate(r.answeredPerSecond),
    ms(r.latencyMs.p50),
    ms(r.latencyMs.p99),
    ms(r.latencyMs.max),
    r.lightLatencyMs ? ms(r.lightLatencyMs.p99) : '-',
    String(count(r, 429)),
    String(r.upstream.resend429),
    others(r),
    `${r.drain.emails} in ${r.drain.seconds.toFixed(1)} s`,
    r.upstream.resendCallsPerEmail.toFixed(4),
    r.upstream.dodoCallsPerEmail.toFixed(4),
    String(r.settlement.emails),
    String(r.settlement.netDebits),
    String(r.settlement.unpaid),
    String(r.settlement.overcharged),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cs: string[]) =>
    cs
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** One PASS/FAIL line per target, each with the figures it was judged on (nothing for a target no run covers). */
export function targets(results: RunResult[], engines: number): string[] {
  const name = (r: RunResult) => runName(r, engines);
  const check = (what: string, rs: RunResult[], figure: (r: RunResult) => string, pass: (r: RunResult) => boolean) =>
    rs.length ? [`  ${rs.every(pass) ? 'PASS' : 'FAIL'}  ${what}: ${rs.map((r) => `${name(r)} ${figure(r)}`).join(', ')}`] : [];
  const of = (variant: VariantId, ...scenarios: ScenarioId[]) =>
    results.filter((r) => r.variant === variant && scenarios.includes(r.scenario) && !r.soak);
  const shared = results.filter((r) => r.instances > 1 && r.scenario !== 'e');
  const defaultBound = (r: RunResult) => Math.min(2 * r.clients, TARGET.ceiling);
  // Resend counts in one-second windows of its own: an interval of L seconds meets at most ⌈L⌉ + 1 of them.
  const resendAllows = (r: RunResult) => TARGET.ceiling * (Math.ceil(r.windowSeconds) + 1);
  const soaks = results.filter((r) => r.soak);
  const delta = (r: RunResult, f: (x: NonNullable<SoakReading['afterGc']>) => number) =>
    r.soak!.start.afterGc && r.soak!.end.afterGc ? f(r.soak!.end.afterGc) - f(r.soak!.start.afterGc) : Number.NaN;
  const rssDelta = (r: RunResult) => (r.soak!.end.rssMb ?? Number.NaN) - (r.soak!.start.rssMb ?? Number.NaN);
  return [
    'targets:',
    ...check(
      `queued: at least ${TARGET.resendPerSecond} emails/s reach Resend in (a) and (b)`,
      of('queued', 'a', 'b'),
      (r) => rate(r.resendPerSecond),
      (r) => r.resendPerSecond >= TARGET.resendPerSecond,
    ),
    ...check(
      `queued: p99 of answers under ${TARGET.p99Ms} ms in (a)–(c)`,
      of('queued', 'a', 'b', 'c'),
      (r) => `${ms(r.latencyMs.p99)} ms`,
      (r) => r.latencyMs.p99 < TARGET.p99Ms,
    ),
    ...check(
      `queued: light customers' p99 under ${TARGET.p99Ms} ms in (c)`,
      of('queued', 'c'),
      (r) => `${ms(r.lightLatencyMs!.p99)} ms`,
      (r) => r.lightLatencyMs!.p99 < TARGET.p99Ms,
    ),
    ...check(
      `queued: p99 of answers under ${TARGET.burstP99Ms} ms in (d)`,
      of('queued', 'd'),
      (r) => `${ms(r.latencyMs.p99)} ms`,
      (r) => r.latencyMs.p99 < TARGET.burstP99Ms,
    ),
    ...check(
      `queued: every answer within ${TARGET.dryMaxMs} ms in (e)`,
      of('queued', 'e'),
      (r) => `slowest ${ms(r.latencyMs.max)} ms`,
      (r) => r.latencyMs.max <= TARGET.dryMaxMs,
    ),
    ...check(
      `queued: exactly ${TARGET.dryEmails} emails at Resend in (e), ${TARGET.dryEmails} answered 2xx and the rest 402`,
      of('queued', 'e'),
      (r) =>
        `${r.settlement.emails} at Resend, 2xx ${count(r, 202) + count(r, 200)}, 402 ${count(r, 402)}, ` +
        `429 ${count(r, 429)}, other ${others(r, ['402'])}`,
      (r) =>
        r.settlement.emails === TARGET.dryEmails &&
        count(r, 202) + count(r, 200) === TARGET.dryEmails &&
        count(r, 402) === r.clients - TARGET.dryEmails,
    ),
    ...check(
      `default: answers at least ${TARGET.defaultShare * 100}% of min(2 × clients, ${TARGET.ceiling}) a second in (a) and (b)`,
      of('default', 'a', 'b'),
      (r) => `${rate(r.answeredPerSecond)}/s of ${defaultBound(r)}`,
      (r) => r.answeredPerSecond >= TARGET.defaultShare * defaultBound(r),
    ),
    ...check(
      `several instances: the ceiling shared, not doubled (at most ${TARGET.ceiling}/s at Resend)`,
      shared,
      (r) => `${rate(r.resendPerSecond)}/s`,
      (r) => r.atResend <= resendAllows(r),
    ),
    ...check(
      "every run: no 429 from Resend's own limiter",
      results,
      (r) => String(r.upstream.resend429),
      (r) => r.upstream.resend429 === 0,
    ),
    ...check(
      'every run: 0 unpaid after settling',
      results,
      (r) => String(r.settlement.unpaid),
      (r) => r.settlement.unpaid === 0,
    ),
    ...check(
      'every run: 0 overcharged after settling',
      results,
      (r) => String(r.settlement.overcharged),
      (r) => r.settlement.overcharged === 0,
    ),
    ...check(
      `soak: V8 heap after a full GC within ${TARGET.soakHeapMb} MB of its start`,
      soaks,
      (r) =>
        signed(
          delta(r, (x) => x.heapMb),
          'MB',
        ),
      (r) => Math.abs(delta(r, (x) => x.heapMb)) <= TARGET.soakHeapMb,
    ),
    // RSS as the system sees it under load (read before the collection), not the collected one.
    ...check(
      `soak: RSS within ${TARGET.soakRssMb} MB of its start`,
      soaks,
      (r) => signed(rssDelta(r), 'MB'),
      (r) => Math.abs(rssDelta(r)) <= TARGET.soakRssMb,
    ),
  ];
}
