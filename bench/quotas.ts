/**
 * `npm run bench -- --quotas`: MailKit under the vendors' real quotas, judged by what reaches
 * Resend. The upstream (bench/upstream.ts --quotas --latency 20, its own process) enforces
 * Resend's 2 calls a second for the whole team (100 emails a call at most: a ceiling of 200
 * emails a second) and Dodo's tier 0 (a bucket of 240 a minute, bursts of 40), and delays every
 * API call by 20 ms. MailKit runs server.ts in live mode against it, with its default budgets
 * and RATE_LIMIT_PER_KEY=1000000 (its per-key limit of 1,200 a minute would otherwise be what is
 * measured). Every run has fresh processes: the upstream, MailKit on a fresh SQLite
 * MAILKIT_DATA_DIR, and again on a fresh PostgreSQL database with --postgres.
 *
 * Scenarios (bench/quota-run.ts):
 *   (a) one customer, 32 closed-loop clients;
 *   (b) 50 customers, 64 clients (14 customers with two, 36 with one);
 *   (c) one customer flat out with 32 clients, plus 20 light customers with one client each;
 *   (d) bursts: 50 customers, each sending 200 emails at once every --burst-every s (30) for
 *       --burst-duration s (120): two POST /send/batch of 100 emails per customer per burst, each
 *       under its own Idempotency-Key. 10,000 emails every 30 s is more than the ceiling (333 a
 *       second): MailKit has to refuse what it cannot hold, quickly;
 *   (e) running dry: 5 customers with 10 credits each, 200 single sends fired at once (40 each):
 *       50 must be sent, 150 refused 402.
 * Variants: default (clients wait for Resend's ids, the tutorial's contract) and queued
 * (`Prefer: respond-async`, answered 202 once the email is paid and queued); baseline
 * (BATCH_DELIVERY=off, one Resend call per email: 2 emails a second) only when asked for with
 * --variants. (d) and (e) run queued only.
 *
 * A client is a closed loop: POST /send of one email to its customer's own address
 * (delivered+q<N>@resend.dev), a fresh Idempotency-Key each email. After a 429 it waits
 * Retry-After (1 s if absent, at most --retry-after-cap s) and sends the same request again
 * under the same key, as a well-behaved client would; after no answer, a 409 or a 5xx, 250 ms.
 * (d)'s batches do the same until accepted or the load's end; (e)'s sends are sent once.
 * The customers are set up with the quotas lifted (created through Dodo's API, granted their
 * credits through the sandbox's control API, no subscription: no API-key email spends Resend's
 * quota); the quotas are set afresh, Dodo's bucket full, as the load starts.
 *
 * The figures of a run:
 *   - the window: (a)–(c): the run (--duration) less its first --warmup s; (d) the whole load
 *     (its bursts from the first one to --burst-duration); (e) from the rush to its last answer.
 *   - Resend/s, the primary figure: emails Resend accepted for the bench's recipients during the
 *     window (the upstream stamps each with Date.now() as it accepts it), a second. Resend takes
 *     them in calls of up to 100, so it moves in steps of 100 emails over the window (3.7/s over
 *     27 s). calls/s × emails/call: the Resend calls answered 2xx in the window, a second, and the
 *     emails they carried each; their product is Resend/s. Flights not full show in the second,
 *     turns of Resend's quota left unused in the first (2 a second at most).
 *   - 2xx/s: emails in the 2xx answers received in the window, a second (for a queued send, an
 *     email paid and queued, not yet at Resend).
 *   - drain: once the load stops (clients send nothing new; what is in flight is answered),
 *     MailKit stays up until Resend has the emails answered 2xx (or none more came for 12 s, or
 *     --drain-timeout passed): the emails Resend accepted after the load stopped, and how long
 *     after it the last one came.
 *   - p50, p99, max: latency of every request sent in the window (all answered: the slowest,
 *     still in flight when it ended, are counted), 429s included; (c)'s light customers apart.
 *   - 429 MailKit: MailKit's 429s over the run; other: every other non-2xx by status (none: no
 *     answer); 429 Resend: the 429s Resend's own limiter answered MailKit (must be none).
 *   - calls per email: every Resend and Dodo API call the upstream counted from the load's start
 *     to the end of the settling (their 429s apart), over the emails Resend accepted. A full
 *     flight is 0.01 Resend calls an email.
 *   - settling: after the drain, MailKit is stopped with SIGTERM (its graceful shutdown settles
 *     the spends it has not yet debited from Dodo); then, per customer, the emails Resend accepted
 *     (counted by recipient) are set against the credits Dodo debited net (its balance before
 *     the load less after, read through the control API, which spends no quota). unpaid: emails
 *     beyond a customer's net debits; overcharged: net debits beyond its emails; each summed over
 *     customers. When the stop leaves a difference, MailKit is started again on the same state
 *     for up to --settle-timeout s (its reconciler), then stopped, and the figures taken then.
 *     The same tally before the stop (MailKit up, spends unsettled) is printed beside it.
 * The end prints one table of every run and a PASS/FAIL line per target (bench/quota-report.ts
 * TARGET): queued, at least 190 emails/s at Resend in (a) and (b), p99 under 500 ms in (a)–(c)
 * (the light customers' too) and under 1 s in (d), in (e) every answer within 1 s and exactly 50
 * emails at Resend; default, answers at least 90 % of min(2 × clients, 200) a second in (a) and
 * (b); every run, no 429 from Resend, 0 unpaid and 0 overcharged after settling.
 *
 * --instances N (PostgreSQL only): N MailKit processes on one database, the clients (and (d)'s
 * batches, (e)'s sends) dealt round-robin between them, Dodo's webhooks to the first. Resend's
 * quota is shared, not doubled: a target line checks that at most 200 emails a second reached it
 * (as Resend's one-second windows count: an L-second window meets at most ⌈L⌉ + 1 of them).
 *
 * --soak S: instead of the scenarios, (a) queued at the ceiling for S seconds after a warm-up of
 * --soak-warmup s (15: the room for queued sends takes some 10 s to fill), one instance, on each
 * engine asked for. MailKit runs with --expose-gc and
 * bench/trace-hook.ts (a full GC and process.memoryUsage() on SIGUSR2); at the warm-up's end and
 * at the end, both under load: V8 heap after a full GC, RSS (before it, and a second after it),
 * the database's size (SQLite: the file and its -wal; PostgreSQL: pg_database_size) and the
 * emails at Resend, so growth per email shows. Targets: heap within 10 MB of its start, RSS (as
 * read under load) within 50 MB.
 *
 * Why 60 s by default: at Resend's 2 calls a window of 1,030 ms, a 17 s window (a 20 s load
 * less its warm-up) holds 32 to 34 calls depending on where the windows fall in it, 188 to
 * 200 emails a second from the same pacing; over 57 s the spread is 110 to 112 calls, 1 %.
 *
 * Options: --duration S (60) --warmup S (3) --only a,b,c,d,e --variants default,queued[,baseline]
 *          --burst-every S (30) --burst-duration S (120)
 *          --latency MS (20) --retry-after-cap S (5) --drain-timeout S (120) --settle-timeout S (150)
 *          --postgres URL (or env BENCH_DATABASE_URL): also run on PostgreSQL
 *          --engines sqlite,postgres (default: SQLite, and PostgreSQL when a URL is given)
 *          --instances N (1; more than 1 runs on PostgreSQL alone)
 *          --soak S (run the soak alone, S seconds) --soak-warmup S (15)
 *          --json FILE (also write the figures there)
 *          --log-dir DIR (keep MailKit's log of each run there, by default /dev/null)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { gitRev, root } from './harness';
import { describe, figures, table, targets, TARGET, type RunResult } from './quota-report';
import { runScenario, runSoak, SCENARIOS, VARIANTS, type Engine, type RunOptions, type ScenarioId, type Variant } from './quota-run';

const usage = (message: string): never => {
  console.error(message);
  process.exit(2);
};

interface Options extends RunOptions {
  only: ScenarioId[];
  variants: Variant[];
  soak: number | null;
  soakWarmup: number;
  json: string | null;
  engines: Engine[];
}

/** The command line, checked: a bad value stops the run naming the option. */
function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      quotas: { type: 'boolean', default: false },
      duration: { type: 'string', default: '60' },
      warmup: { type: 'string', default: '3' },
      only: { type: 'string' },
      variants: { type: 'string', default: 'default,queued' },
      'burst-every': { type: 'string', default: '30' },
      'burst-duration': { type: 'string', default: '120' },
      latency: { type: 'string', default: '20' },
      'retry-after-cap': { type: 'string', default: '5' },
      'drain-timeout': { type: 'string', default: '120' },
      'settle-timeout': { type: 'string', default: '150' },
      postgres: { type: 'string' },
      engines: { type: 'string' },
      instances: { type: 'string', default: '1' },
      soak: { type: 'string' },
      'soak-warmup': { type: 'string', default: '15' },
      json: { type: 'string' },
      'log-dir': { type: 'string' },
    },
  });
  const number = (name: keyof typeof values, min: number, integer = false): number => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n)))
      usage(`--${name} must be a ${integer ? 'whole ' : ''}number of at least ${min}, not "${values[name]}"`);
    return n;
  };
  const list = (s: string) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const only = values.only ? list(values.only) : SCENARIOS.map((s) => s.id);
  for (const id of only)
    if (!SCENARIOS.some((s) => s.id === id)) usage(`--only: unknown scenario "${id}" (scenarios: ${SCENARIOS.map((s) => s.id).join(', ')})`);
  const variantIds = list(values.variants);
  for (const id of variantIds)
    if (!VARIANTS.some((v) => v.id === id)) usage(`--variants: unknown variant "${id}" (variants: ${VARIANTS.map((v) => v.id).join(', ')})`);
  const postgresUrl = values.postgres ?? process.env.BENCH_DATABASE_URL ?? null;
  const instances = number('instances', 1, true);
  if (instances > 1 && !postgresUrl) usage('--instances above 1 needs PostgreSQL: --postgres URL (or BENCH_DATABASE_URL)');
  const soak = values.soak === undefined ? null : number('soak', 1);
  if (soak !== null && instances > 1) usage('--soak runs one instance: leave --instances out');
  const duration = number('duration', 1);
  const warmup = number('warmup', 0);
  if (warmup >= duration && soak === null) usage(`--warmup (${warmup} s) must be shorter than --duration (${duration} s)`);
  // Several instances share one database: PostgreSQL alone.
  const engines = values.engines ? list(values.engines) : instances > 1 ? ['postgres'] : postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];
  for (const e of engines) if (e !== 'sqlite' && e !== 'postgres') usage(`--engines: unknown engine "${e}" (engines: sqlite, postgres)`);
  if (engines.includes('postgres') && !postgresUrl) usage('--engines postgres needs --postgres URL (or BENCH_DATABASE_URL)');
  if (instances > 1 && engines.includes('sqlite')) usage('--instances above 1 runs on PostgreSQL alone: leave sqlite out of --engines');
  if (values['log-dir']) mkdirSync(values['log-dir'], { recursive: true });
  return {
    duration,
    warmup,
    latency: number('latency', 0),
    retryAfterCap: number('retry-after-cap', 0.1),
    drainTimeout: number('drain-timeout', 1),
    settleTimeout: number('settle-timeout', 0),
    burstEvery: number('burst-every', 1),
    burstDuration: number('burst-duration', 1),
    instances,
    postgresUrl,
    logDir: values['log-dir'] ?? null,
    only: only as ScenarioId[],
    variants: VARIANTS.filter((v) => variantIds.includes(v.id)),
    soak,
    soakWarmup: number('soak-warmup', 0),
    json: values.json ?? null,
    engines: engines as Engine[],
  };
}

/** The variants a scenario runs in: (d) and (e) are about queued answers alone; baseline is about single sends. */
function variantsOf(id: ScenarioId, variants: Variant[]): Variant[] {
  if (id === 'd' || id === 'e') return variants.filter((v) => v.id === 'queued');
  return variants;
}

/** The command as typed, a PostgreSQL URL's credentials left out. */
function commandLine(): string {
  const args = process.argv.slice(2).map((a) => (/^postgres(ql)?:\/\//.test(a) ? 'URL' : a));
  return `npm run bench -- ${args.join(' ')}`;
}

function header(o: Options): string[] {
  // The MailKit that ran: the last commit that touched what server.ts runs, not the bench's own.
  const mailkit = gitRev(root, ['log', '-1', '--format=%h', '--', 'src', 'server.ts', 'package.json']);
  const dirty = gitRev(root, ['status', '--porcelain', '--', 'src', 'server.ts']) === '' ? '' : ' (with uncommitted changes)';
  return [
    commandLine(),
    `node ${process.version}, MailKit ${mailkit}${dirty} (checkout ${gitRev(root)}), ${new Date().toISOString()}`,
    `upstream: the sandbox with the vendors' quotas (Resend 2 calls/s, Dodo 240/min with bursts of 40), ${o.latency} ms per API call;`,
    `MailKit live with its default budgets and RATE_LIMIT_PER_KEY=1000000` +
      `${o.instances > 1 ? `, ${o.instances} instances on one PostgreSQL database` : ''}` +
      `; a client waits Retry-After (at most ${o.retryAfterCap} s) after a 429`,
  ];
}

async function runAll(o: Options): Promise<RunResult[]> {
  const results: RunResult[] = [];
  for (const engine of o.engines) {
    if (o.soak !== null) {
      const raw = await runSoak(engine, o.soak, o.soakWarmup, o);
      const r = figures(raw.run, raw);
      results.push(r);
      console.log(`\n${describe(r, SCENARIOS[0]!.title, 'soak, clients answered once queued').join('\n')}`);
      continue;
    }
    for (const scenario of SCENARIOS.filter((s) => o.only.includes(s.id))) {
      for (const variant of variantsOf(scenario.id, o.variants)) {
        const r = figures(await runScenario(scenario, variant, engine, o));
        results.push(r);
        console.log(`\n${describe(r, scenario.title, variant.label).join('\n')}`);
      }
    }
  }
  return results;
}

const options = parseOptions();
console.log(header(options).join('\n'));
const results = await runAll(options);
console.log(`\n${table(results, options.engines.length).join('\n')}\n`);
console.log(targets(results, options.engines.length).join('\n'));
if (options.json)
  writeFileSync(
    options.json,
    JSON.stringify({ command: commandLine(), node: process.version, latencyMs: options.latency, targets: TARGET, results }, null, 2),
  );
process.exit(0);
