/**
 * bench/compare.ts: MailKit's CPU per email in two checkouts, run in turns in one sitting on one
 * machine. Written to compare the journal store (commit ecaf8de, the last with the hand-written
 * snapshot + journal) with the database (this checkout, on SQLite), for the database issue's
 * "within 1.5× of the journal store's"; it runs any two checkouts.
 *
 *   git worktree add /work/wt-bench-old ecaf8de && (cd /work/wt-bench-old && npm ci)
 *   npx tsx bench/compare.ts --old /work/wt-bench-old [--new DIR] [--rounds 5]
 *                            [--only send-n,send-1] [--clients 16] [--sends 1600] [--unloaded 200] [--latency 20]
 *
 * Each round runs bench/send.ts (this checkout's clients, upstreams and relay) once against each
 * checkout's server.ts (--mailkit-dir), with fresh processes and a fresh MAILKIT_DATA_DIR, the
 * order alternating (old then new, new then old, ...) so that drift in the machine's load falls
 * on both. Prints every run's CPU ms/email and emails/s, then per scenario the new/old ratio of
 * each round and of the medians. The old checkout needs its own node_modules.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    old: { type: 'string' },
    new: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    only: { type: 'string', default: 'send-n,send-1' },
    clients: { type: 'string', default: '16' },
    sends: { type: 'string', default: '1600' },
    unloaded: { type: 'string', default: '200' },
    latency: { type: 'string', default: '20' },
  },
});
if (!values.old) {
  console.error('usage: tsx bench/compare.ts --old DIR [--new DIR] [--rounds N] [--only send-n,send-1]');
  process.exit(2);
}
const root = fileURLToPath(new URL('..', import.meta.url));
const sides = { old: resolve(values.old), new: resolve(values.new ?? root) } as const;
const rounds = Number(values.rounds);
const tmp = mkdtempSync(join(tmpdir(), 'mailkit-compare-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

type Row = { scenario: string; emailsPerSecond: number; p50: number; p99: number; cpuMsPerEmail: number | null };
type Run = { round: number; side: 'old' | 'new'; rev: string; engine: string; rows: Row[] };
const runs: Run[] = [];

function runOnce(round: number, side: 'old' | 'new'): Run {
  const json = join(tmp, `${round}-${side}.json`);
  const args = ['--import', 'tsx', 'bench/send.ts', '--mailkit-dir', sides[side], '--only', values.only!, '--soak', '0', '--json', json];
  args.push('--clients', values.clients!, '--sends', values.sends!, '--unloaded', values.unloaded!, '--latency', values.latency!);
  // SQLite on the database side: no PostgreSQL URL reaches the bench.
  const env = { ...process.env, BENCH_DATABASE_URL: '' };
  const r = spawnSync(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`bench/send.ts for ${side} (${sides[side]}) exited with ${r.status}`);
  const out = JSON.parse(readFileSync(json, 'utf8')) as { mailkitRev: string; results: { engine: string; rows: Row[] }[] };
  const run: Run = { round, side, rev: out.mailkitRev, engine: out.results[0]!.engine, rows: out.results[0]!.rows };
  runs.push(run);
  const cells = run.rows.map(
    (row) =>
      `${row.scenario}: ${row.cpuMsPerEmail?.toFixed(2) ?? '-'} ms/email, ${row.emailsPerSecond.toFixed(0)} emails/s, p50 ${row.p50.toFixed(1)} ms`,
  );
  console.log(`round ${round} ${side.padEnd(3)} ${run.rev} (${run.engine}): ${cells.join('; ')}`);
  return run;
}

const started = new Date();
console.log(
  `tsx bench/compare.ts --old ${sides.old} --new ${sides.new} --rounds ${rounds} --only ${values.only}` +
    ` --clients ${values.clients} --sends ${values.sends} --unloaded ${values.unloaded} --latency ${values.latency}`,
);
console.log(`started ${started.toISOString()}, node ${process.version}\n`);
for (let round = 1; round <= rounds; round++) {
  const order: ('old' | 'new')[] = round % 2 === 1 ? ['old', 'new'] : ['new', 'old'];
  for (const side of order) runOnce(round, side);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const cpu = (side: 'old' | 'new', round: number, scenario: string) =>
  runs.find((r) => r.side === side && r.round === round)!.rows.find((row) => row.scenario === scenario)?.cpuMsPerEmail ?? Number.NaN;

console.log(`\nfinished ${new Date().toISOString()}`);
const scenarios = runs[0]!.rows.map((r) => r.scenario);
const oldRun = runs.find((r) => r.side === 'old')!;
const newRun = runs.find((r) => r.side === 'new')!;
for (const scenario of scenarios) {
  const olds = Array.from({ length: rounds }, (_, i) => cpu('old', i + 1, scenario));
  const news = Array.from({ length: rounds }, (_, i) => cpu('new', i + 1, scenario));
  const ratios = olds.map((o, i) => news[i]! / o);
  console.log(`\n${scenario}: MailKit CPU ms/email`);
  console.log(
    `  old ${oldRun.rev} (${oldRun.engine}): ${olds.map((x) => x.toFixed(2)).join(' ')}` +
      `  median ${median(olds).toFixed(2)}, range ${Math.min(...olds).toFixed(2)} to ${Math.max(...olds).toFixed(2)}`,
  );
  console.log(
    `  new ${newRun.rev} (${newRun.engine}):  ${news.map((x) => x.toFixed(2)).join(' ')}` +
      `  median ${median(news).toFixed(2)}, range ${Math.min(...news).toFixed(2)} to ${Math.max(...news).toFixed(2)}`,
  );
  console.log(
    `  new / old per round: ${ratios.map((x) => x.toFixed(2)).join(' ')}` +
      `  (range ${Math.min(...ratios).toFixed(2)} to ${Math.max(...ratios).toFixed(2)})`,
  );
  console.log(`  new / old of the medians: ${(median(news) / median(olds)).toFixed(2)}`);
}
process.exit(0);
