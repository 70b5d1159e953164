/**
 * What the benchmarks share: child processes and temporary state that are cleaned up however
 * the run ends, loopback ports, fresh PostgreSQL databases, the upstream process
 * (bench/upstream.ts) and its control API, MailKit's live-mode environment pointed at it, API
 * keys, and readings of a MailKit process (memory, the size of its database). Used by
 * bench/send.ts (`npm run bench`) and bench/quotas.ts (`npm run bench -- --quotas`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import DodoPayments from 'dodopayments';
import pg from 'pg';
import { Resend } from 'resend';
import { createApiKeys } from '../src/auth/api-keys';
import type { Catalog } from '../src/billing/billing';
import { openDatabase } from '../src/db/index';

/** This checkout: the clients, the upstream and the relay always run from here. */
export const root = fileURLToPath(new URL('..', import.meta.url));

// Every child, temporary directory and database of the run, for a clean exit however it comes.
const children: ChildProcess[] = [];
const tempDirs: string[] = [];
const dropDatabases: (() => Promise<void>)[] = [];
/** Children stopped on purpose: their exit is not a failure of the run. */
const stopping = new WeakSet<ChildProcess>();
const cleanup = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => {
  cleanup();
  void Promise.allSettled(dropDatabases.map((d) => d())).then(() => process.exit(130));
});

/** A fresh temporary directory, removed when the process exits (or earlier with removeTempDir). */
export function tempDir(prefix = 'mailkit-bench-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A free loopback port (probed, then released: fine for a benchmark). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A fresh PostgreSQL database next to the one `url` names; dropped by the returned function. */
export async function freshPostgres(url: string): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `mailkit_bench_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`create database ${name}`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    await admin(`drop database if exists ${name} with (force)`);
  };
  dropDatabases.push(drop);
  return { url: u.toString(), name, drop };
}

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
export const epochMs = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface StartOptions {
  script: string;
  args?: string[];
  env?: Record<string, string>;
  /** A file descriptor for the child's stdout, or a pipe to read it. */
  stdout: number | 'pipe';
  /** Modules loaded with --import after tsx (bench/trace-hook.ts). */
  preload?: string[];
  cwd?: string;
  /** Flags for node itself, before --import tsx (--cpu-prof, --expose-gc). */
  nodeFlags?: string[];
}

/**
 * Starts `node --import tsx <script>`. A child that exits before stop() was called for it
 * ends the whole run: every figure after that would be wrong.
 */
export function startNode(o: StartOptions): ChildProcess {
  const child = spawn(
    process.execPath,
    [...(o.nodeFlags ?? []), '--import', 'tsx', ...(o.preload ?? []).flatMap((p) => ['--import', p]), o.script, ...(o.args ?? [])],
    {
      cwd: o.cwd ?? root,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', o.stdout, 'inherit'],
    },
  );
  children.push(child);
  child.once('exit', (code) => {
    if (!stopping.has(child)) {
      console.error(`${o.script} exited with ${code}`);
      process.exit(1);
    }
  });
  return child;
}

/** Resolves once `child` has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Marks the children as stopping on purpose, signals them and waits for them to exit. */
export async function stop(processes: ChildProcess[], signal: NodeJS.Signals = 'SIGTERM'): Promise<(number | null)[]> {
  for (const c of processes) {
    stopping.add(c);
    if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  }
  return Promise.all(processes.map(exited));
}

/** The first line a child writes on its stdout (the upstream's and the relay's ready line). */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
}

export interface Upstream {
  process: ChildProcess;
  url: string;
  webhookSecret: string;
  dodo: DodoPayments;
  resend: Resend;
}

/** Starts bench/upstream.ts (the sandbox alone) and the SDK clients pointed at it. */
export async function startUpstream(o: { latency: number; webhookUrl: string; args?: string[]; nodeFlags?: string[] }): Promise<Upstream> {
  const child = startNode({
    script: 'bench/upstream.ts',
    args: ['--latency', String(o.latency), '--webhook-url', o.webhookUrl, ...(o.args ?? [])],
    stdout: 'pipe',
    nodeFlags: o.nodeFlags,
  });
  const { port, webhookSecret } = JSON.parse(await firstLine(child)) as { port: number; webhookSecret: string };
  const url = `http://127.0.0.1:${port}`;
  return {
    process: child,
    url,
    webhookSecret,
    dodo: new DodoPayments({ bearerToken: 'bench', baseURL: `${url}/sandbox/dodo`, webhookKey: webhookSecret }),
    resend: new Resend('re_bench', { baseUrl: `${url}/sandbox/resend` }),
  };
}

/**
 * MailKit's environment in live mode against the upstream: the configuration a real deployment
 * uses, with the vendors' base URLs pointed at loopback. Callers add what their run varies.
 */
export function mailkitEnv(o: {
  port: number;
  dataDir: string;
  databaseUrl: string | null;
  upstream: Upstream;
  catalog: Catalog;
  keySecret: string;
}): Record<string, string> {
  const appUrl = `http://127.0.0.1:${o.port}`;
  return {
    PORT: String(o.port),
    HOST: '127.0.0.1',
    BASE_URL: appUrl,
    MAILKIT_DATA_DIR: o.dataDir,
    // Empty selects SQLite even when the caller's environment names a PostgreSQL.
    DATABASE_URL: o.databaseUrl ?? '',
    LOG_LEVEL: 'info',
    DODO_PAYMENTS_API_KEY: 'bench',
    DODO_PAYMENTS_BASE_URL: `${o.upstream.url}/sandbox/dodo`,
    DODO_WEBHOOK_KEY: o.upstream.webhookSecret,
    CREDIT_ENTITLEMENT_ID: o.catalog.creditEntitlementId,
    PLAN_PRODUCT_ID: o.catalog.planProductId,
    TOPUP_PRODUCT_ID: o.catalog.topupProductId,
    RESEND_API_KEY: 're_bench',
    RESEND_BASE_URL: `${o.upstream.url}/sandbox/resend`,
    MAILKIT_KEY_SECRET: o.keySecret,
    // The benchmark's clients are few keys sending far faster than a customer's 1,200 a minute.
    RATE_LIMIT_PER_KEY: '1000000',
    // Required live; the bench's upstream sends no email events, so any well-formed secret does.
    RESEND_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
  };
}

/** Waits until MailKit answers /healthz. */
export async function waitHealthy(appUrl: string): Promise<void> {
  for (;;) {
    if (
      await fetch(`${appUrl}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    await sleep(100);
  }
}

/**
 * API keys for `customers`. Keys at epoch 0 need no server state: a throwaway database mints
 * them (the same format the journal store's MailKit checks, for send.ts's --mailkit-dir).
 */
export async function mintKeys(keySecret: string, customers: string[]): Promise<string[]> {
  const keysDb = await openDatabase({ file: ':memory:' });
  const apiKeys = createApiKeys({ database: keysDb, secret: keySecret, env: 'test' });
  const keys = await Promise.all(customers.map((c) => apiKeys.mint(c)));
  await keysDb.close();
  return keys;
}

/** What git answers in `dir` (by default the short id of HEAD), trimmed; 'unknown' outside a checkout. */
export function gitRev(dir: string, args: string[] = ['rev-parse', '--short', 'HEAD']): string {
  try {
    return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** The upstream's control API (bench/upstream.ts and the sandbox's /sandbox/api): JSON in, JSON out, any non-2xx throws. */
export function upstreamControl(upstream: Pick<Upstream, 'url'>) {
  return async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
    const r = await fetch(`${upstream.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`${method} ${path} answered ${r.status}: ${await r.text()}`);
    return (await r.json()) as T;
  };
}

/** A process's resident memory (VmRSS of /proc/<pid>/status) in MB; null where /proc is missing. */
export function rssMb(pid: number | undefined): number | null {
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : null;
  } catch {
    return null;
  }
}

/**
 * A MailKit process's V8 heap in use right after a full garbage collection, and its VmRSS a
 * second later (V8 hands the freed pages back only after the collection), in MB. MailKit must
 * run with --expose-gc and bench/trace-hook.ts, which answers SIGUSR2 by collecting and writing
 * process.memoryUsage() to `memoryFile` (its $BENCH_MEMORY_FILE). Null if it never answered.
 */
export async function afterFullGc(child: ChildProcess, memoryFile: string): Promise<{ heapMb: number; rssMb: number } | null> {
  rmSync(memoryFile, { force: true });
  child.kill('SIGUSR2');
  for (let i = 0; i < 200; i++) {
    await sleep(25);
    let m: { collected: boolean; heapUsed: number };
    try {
      m = JSON.parse(readFileSync(memoryFile, 'utf8')) as { collected: boolean; heapUsed: number };
    } catch {
      continue; // not written yet (or half written)
    }
    if (!m.collected) return null;
    await sleep(1000);
    const rss = rssMb(child.pid);
    return rss === null ? null : { heapMb: m.heapUsed / 2 ** 20, rssMb: rss };
  }
  return null;
}

/** The bytes of MailKit's SQLite database: the file and its write-ahead log (-wal), as they are now. */
export function sqliteBytes(file: string): number {
  const size = (f: string) => {
    try {
      return statSync(f).size;
    } catch {
      return 0;
    }
  };
  return size(file) + size(`${file}-wal`);
}

/** pg_database_size of the database `url` names, in bytes. */
export async function postgresBytes(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ bytes: string }>('select pg_database_size(current_database()) as bytes');
    return Number(rows[0]!.bytes);
  } finally {
    await client.end();
  }
}
