/**
 * What the benchmarks share: child processes and temporary state that are cleaned up however
 * the run ends, loopback ports, fresh PostgreSQL databases, the upstream process
 * (bench/upstream.ts), MailKit's live-mode environment pointed at it, and API keys. Used by
 * bench/send.ts (`npm run bench`) and bench/quotas.ts (`npm run bench -- --quotas`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
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
  const child = spawn(process.execPath, [...(o.nodeFlags ?? []), '--import', 'tsx', ...(o.preload ?? []).flatMap((p) => ['--import', p]), o.script, ...(o.args ?? [])], {
    cwd: o.cwd ?? root,
    env: { ...process.env, ...o.env },
    stdio: ['ignore', o.stdout, 'inherit'],
  });
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
export function mailkitEnv(o: { port: number; dataDir: string; databaseUrl: string | null; upstream: Upstream; catalog: Catalog; keySecret: string }): Record<string, string> {
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
    if (await fetch(`${appUrl}/healthz`).then((r) => r.ok, () => false)) return;
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
