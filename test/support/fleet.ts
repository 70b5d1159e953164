import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createApiKeys } from '../../src/auth/api-keys';
import { loadConfig } from '../../src/config';
import { openDatabase, type Database } from '../../src/db/index';
import { createLogger } from '../../src/logger';
import { startStack, type Stack, type StackOptions } from '../../src/stack';
import { startTestStack, storedSecrets } from './stack';

/**
 * Several MailKit instances in live mode against one upstream, as production runs them: the
 * upstream is a sandbox-mode stack (its Dodo and Resend halves play the vendors, on loopback);
 * each instance is a live-mode MailKit pointed at them, in this process or in a child process
 * that a test may SIGKILL. Instances share one database.
 */
export type Upstream = Awaited<ReturnType<typeof startTestStack>>;

export const startUpstream = (opts: StackOptions = {}) => startTestStack({}, { reconcile: { intervalMs: 0 }, ...opts });

/** The live-mode environment of an instance pointed at `upstream`. */
export async function instanceEnv(upstream: Upstream, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const secrets = await storedSecrets(upstream);
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    DODO_PAYMENTS_API_KEY: 'dodo_fleet_key',
    DODO_PAYMENTS_BASE_URL: `${upstream.url}/sandbox/dodo`,
    DODO_WEBHOOK_KEY: secrets.sandboxWebhookSecret!,
    CREDIT_ENTITLEMENT_ID: upstream.catalog.creditEntitlementId,
    PLAN_PRODUCT_ID: upstream.catalog.planProductId,
    TOPUP_PRODUCT_ID: upstream.catalog.topupProductId,
    RESEND_API_KEY: 're_fleet_key',
    RESEND_BASE_URL: `${upstream.url}/sandbox/resend`,
    RESEND_WEBHOOK_SECRET: secrets.sandboxResendWebhookSecret!,
    MAILKIT_KEY_SECRET: FLEET_SECRET,
    RATE_LIMIT_PER_KEY: '100000',
    // The upstream sandbox enforces no quota here: neither does the fleet's budget.
    RESEND_RATE_LIMIT: '0',
    DODO_RATE_LIMIT: '0',
    ...extra,
  };
}

/** The key secret every instance of a fleet shares. */
export const FLEET_SECRET = 'fleet-secret-'.repeat(4);

/** A live-mode instance in this process, on `database` (left open: the caller owns it). */
export async function startInstance(
  upstream: Upstream,
  database: Database,
  opts: StackOptions = {},
  env: Record<string, string> = {},
): Promise<Stack> {
  const config = loadConfig(await instanceEnv(upstream, env));
  const keepOpen = { ...database, close: async () => undefined };
  return startStack(config, {
    database: keepOpen,
    log: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
    // The production mailer timeout: a loaded CI machine must not turn slow answers into 503s.
    reconcile: { intervalMs: 0, graceMs: 0 },
    ...opts,
  });
}

/** An API key for `customerId` valid on every instance of the fleet (epoch 0). */
export async function fleetKey(database: Database, customerId: string): Promise<string> {
  return createApiKeys({ database, secret: FLEET_SECRET, env: 'test' }).mint(customerId);
}

/** Where a fleet keeps its state: a SQLite file, or a fresh PostgreSQL database of its own. */
export interface FleetStore {
  engine: 'sqlite' | 'postgres';
  /** The environment that points a child process at it. */
  env: Record<string, string>;
  open(): Promise<Database>;
  drop(): Promise<void>;
}

export async function fleetStore(engine: 'sqlite' | 'postgres'): Promise<FleetStore> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'mailkit-fleet-'));
    return {
      engine,
      env: { MAILKIT_DATA_DIR: dir },
      open: () => openDatabase({ file: join(dir, 'mailkit.sqlite') }),
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const base = new URL(process.env.TEST_DATABASE_URL!);
  const name = `mk_fleet_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: base.toString() });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    engine,
    env: { DATABASE_URL: url.toString() },
    open: () => openDatabase({ url: url.toString() }),
    drop: async () => {
      const c = new pg.Client({ connectionString: base.toString() });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/** A MailKit server process (`server.ts`), for tests that kill one. */
export interface Child {
  url: string;
  process: ChildProcess;
  output(): string;
  /** SIGKILL: no shutdown, no flush, whatever was in flight is cut. */
  kill(): Promise<void>;
}

export async function spawnInstance(env: Record<string, string>): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server.ts'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`MailKit did not start:\n${out}`)), 60_000);
    const look = () => {
      const m = /MailKit running on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', look);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`MailKit exited (${code}) before starting:\n${out}`));
    });
  });
  return {
    url: url.replace('localhost', '127.0.0.1'),
    process: child,
    output: () => out,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A customer's balance as Dodo holds it (the upstream's sandbox), read from the counterparty
 * itself: the upstream's own MailKit serves balances from its cache, which hears of the fleet's
 * debits only through webhooks still on their way.
 */
export async function dodoBalance(upstream: Upstream, customerId: string): Promise<number> {
  const customer = upstream.sandbox.dodo.customers().find((c) => c.customer_id === customerId);
  if (!customer) throw new Error(`no customer ${customerId} in the upstream's Dodo`);
  return Number(customer.balance);
}

/**
 * Drives `instance`'s reconciler and settlements until no send is unfinished and nothing spent
 * is left unsettled (a dead instance's claims expire after 30 s): Dodo's own balance then says
 * exactly what was spent. "After settling", as the issues put it.
 */
export async function settleFleet(instance: Stack, database: Database, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await instance.sender.reconcile();
    await instance.credits.settleNow();
    const sends = await database.db.selectFrom('sends').select('id').where('state', 'in', ['reserving', 'delivering', 'refunding']).execute();
    const owed = await database.db
      .selectFrom('creditBalances')
      .select('customerId')
      .where((eb) => eb.or([eb('held', '>', 0), eb('unsettled', '>', 0), eb('settling', '>', 0)]))
      .execute();
    if (sends.length === 0 && owed.length === 0) break;
    if (Date.now() > deadline) throw new Error(`${sends.length} sends unfinished and ${owed.length} balances unsettled`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
