import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * MailKit's configuration, parsed once at boot from the environment.
 *
 * Mode is decided by one variable: with no `DODO_PAYMENTS_API_KEY` MailKit runs on its
 * built-in sandbox (Dodo and Resend on loopback, catalog provisioned by itself); with
 * one, it runs live against Dodo (test or live mode) and Resend, and every variable a
 * live setup needs must be present. A half-configured live setup stops at boot with a
 * message naming each missing variable.
 */
export type Mode = 'sandbox' | 'live';

/**
 * Express's `trust proxy`: which peers may say who the client is in `X-Forwarded-For`. `false`:
 * none (the socket's address is the client's); a number: that many proxies in front; a list:
 * the proxies' addresses or subnets, or `loopback`, `linklocal`, `uniquelocal`.
 */
export type TrustProxy = false | number | readonly string[];

export interface Config {
  readonly mode: Mode;
  readonly port: number;
  /** Interface to listen on: loopback in sandbox mode (the sandbox grants credits to anyone who reaches it). */
  readonly host: string;
  /** Public origin of the dashboard, used in checkout return URLs and emails. */
  readonly baseUrl: string;
  /** Directory for durable local state (the SQLite database, the sandbox's data). */
  readonly dataDir: string;
  /** PostgreSQL URL for MailKit's own state (several instances share it); null: SQLite in dataDir. */
  readonly databaseUrl: string | null;
  /** Sender address for every email MailKit sends. */
  readonly mailFrom: string;
  /** Server secret API keys are derived from; rotating it revokes every key. Null in sandbox mode until generated. */
  readonly keySecret: string | null;
  readonly logLevel: string;
  readonly dodo: {
    readonly apiKey: string | null;
    readonly webhookKey: string | null;
    readonly environment: 'test_mode' | 'live_mode';
    readonly baseUrl: string | null;
    readonly creditEntitlementId: string | null;
    readonly planProductId: string | null;
    readonly topupProductId: string | null;
  };
  readonly resend: {
    readonly apiKey: string | null;
    readonly baseUrl: string | null;
    /** Signing secret of the Resend webhook endpoint (/webhooks/resend); generated in sandbox mode. */
    readonly webhookSecret: string | null;
  };
  readonly sandbox: {
    /** Where the sandbox delivers Dodo webhooks; null: this server's own /webhooks/dodo on loopback. */
    readonly webhookUrl: string | null;
    /** Resend sandbox requests per second before 429, all keys together (0: no limit). */
    readonly resendRateLimit: number;
    /** Dodo sandbox quota: a token bucket of `burst` refilled at `perMinute` a minute (perMinute 0: no limit). */
    readonly dodoRateLimit: { readonly perMinute: number; readonly burst: number };
  };
  /**
   * The vendors' quotas MailKit budgets every call against, shared by all instances
   * (src/quotas.ts); 0: unbudgeted. Live defaults are the vendors' defaults; in sandbox mode
   * they follow the sandbox's own limits.
   */
  readonly quotas: {
    /** Resend API requests a second. */
    readonly resendPerSecond: number;
    /** Dodo API requests a minute (spent evenly: Dodo's burst allowance is left unused). */
    readonly dodoPerMinute: number;
    /** Dodo's bucket size (tier 0: 40): how many calls it takes at once. */
    readonly dodoBurst: number;
  };
  /** Who may set the client's address for the rate limits (TRUST_PROXY; default: off in sandbox mode, loopback live). */
  readonly trustProxy: TrustProxy;
  /** How long the email history (GET /emails) is kept, days (EMAIL_HISTORY_DAYS, default 30). */
  readonly emailHistoryDays: number;
  /** The bearer token GET /metrics takes in live mode (METRICS_TOKEN; unset: no /metrics live). */
  readonly metricsToken: string | null;
  /** How often, at most, a customer's spends are settled with Dodo while it sends, seconds (SETTLE_EVERY_SECONDS, default 5). */
  readonly settleEverySeconds: number;
  /** Single sends packed into shared Resend batch calls (BATCH_DELIVERY, default on). */
  readonly batchDelivery: boolean;
  /** Connections one client address may hold open at once (0: no cap; loopback and trusted proxies are never capped). */
  readonly connectionsPerAddress: number;
  /** MailKit's own limits, requests per minute (see src/rate-limits.ts). */
  readonly rateLimits: {
    readonly perKey: number;
    readonly publicPerIp: number;
    readonly authFailuresPerIp: number;
    readonly checkoutsPerCustomer: number;
  };
}

/** Thrown when the environment cannot run MailKit; its message says which variables and how to fix them. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

// Values copied from the tutorial's .env template: treated as "not set", with a hint.
const PLACEHOLDER = /^(your_|.*x{6,}|changeme|<.*>$)/i;

const optionalString = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v === undefined || v === '' ? null : v));

// For a setting whose default is not 0: an empty value (a copied .env.example line) means unset.
const blankIsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: optionalString,
  BASE_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).nullable()),
  MAILKIT_DATA_DIR: z.string().trim().min(1).default('.data'),
  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).nullable()),
  MAIL_FROM: z.string().trim().min(3).default('MailKit <onboarding@resend.dev>'),
  MAILKIT_KEY_SECRET: optionalString,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DODO_PAYMENTS_API_KEY: optionalString,
  DODO_WEBHOOK_KEY: optionalString,
  DODO_PAYMENTS_ENVIRONMENT: z.enum(['test_mode', 'live_mode']).default('test_mode'),
  DODO_PAYMENTS_BASE_URL: optionalString.pipe(z.url().nullable()),
  CREDIT_ENTITLEMENT_ID: optionalString,
  PLAN_PRODUCT_ID: optionalString,
  TOPUP_PRODUCT_ID: optionalString,
  RESEND_API_KEY: optionalString,
  RESEND_BASE_URL: optionalString.pipe(z.url().nullable()),
  RESEND_WEBHOOK_SECRET: optionalString,
  SANDBOX_WEBHOOK_URL: optionalString.pipe(z.url().nullable()),
  SANDBOX_RESEND_RATE_LIMIT: z.coerce.number().int().min(0).default(0),
  SANDBOX_DODO_RATE_LIMIT: z.coerce.number().int().min(0).max(1_000_000).default(0),
  // 40: the burst of Dodo's default tier (240 a minute, 40 at once).
  SANDBOX_DODO_BURST: z.preprocess(blankIsUnset, z.coerce.number().int().min(1).max(1_000_000).default(40)),
  RESEND_RATE_LIMIT: z.preprocess(blankIsUnset, z.coerce.number().int().min(0).max(1_000_000).optional()),
  DODO_RATE_LIMIT: z.preprocess(blankIsUnset, z.coerce.number().int().min(0).max(1_000_000).optional()),
  DODO_BURST: z.preprocess(blankIsUnset, z.coerce.number().int().min(1).max(1_000_000).optional()),
  // Resend keeps its logs 30 days on its free plan: MailKit's history of the same emails as long.
  EMAIL_HISTORY_DAYS: z.preprocess(blankIsUnset, z.coerce.number().int().min(1).max(3650).default(30)),
  METRICS_TOKEN: z.preprocess(blankIsUnset, z.string().min(16, 'must be at least 16 characters').optional()),
  // A customer's spends are debited from Dodo in one entry at most this often while it sends (src/billing/README.md).
  SETTLE_EVERY_SECONDS: z.preprocess(blankIsUnset, z.coerce.number().int().min(1).max(300).default(5)),
  // Single sends share Resend batch calls. `off` gives one Resend call per send (the benchmark's baseline).
  BATCH_DELIVERY: z.preprocess(blankIsUnset, z.enum(['on', 'off']).default('on')),
  // 100: a client's pool of keep-alive connections fits, a slow client's pile of sockets does not.
  MAX_CONNECTIONS_PER_ADDRESS: z.preprocess(blankIsUnset, z.coerce.number().int().min(0).max(1_000_000).default(100)),
  RATE_LIMIT_PER_KEY: z.coerce.number().int().min(1).default(1200),
  RATE_LIMIT_PUBLIC_PER_IP: z.coerce.number().int().min(1).default(60),
  RATE_LIMIT_AUTH_FAILURES_PER_IP: z.coerce.number().int().min(1).default(60),
  // 10: a customer buys a top-up pack now and then; each checkout is one of Dodo's 240 calls a minute.
  RATE_LIMIT_CHECKOUTS_PER_CUSTOMER: z.preprocess(blankIsUnset, z.coerce.number().int().min(1).default(10)),
  TRUST_PROXY: optionalString,
});

const PROXY_PRESETS = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** One TRUST_PROXY entry: a preset, an address, or a subnet (`10.0.0.0/8`, `fd00::/8`). */
function isProxyEntry(entry: string): boolean {
  if (PROXY_PRESETS.has(entry)) return true;
  const [address = '', bits, ...rest] = entry.split('/');
  const family = isIP(address);
  if (!family || rest.length) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * TRUST_PROXY → Express's `trust proxy`. Unset: off in sandbox mode (every client is on this
 * machine; none is a proxy), `loopback` live (ngrok's agent or a reverse proxy on this machine
 * forwards; a remote client cannot reach the server from loopback). `true` is refused: it would
 * let every client choose its own address, and with it its own rate-limit bucket.
 */
function parseTrustProxy(value: string | null, mode: Mode, problems: string[]): TrustProxy {
  if (value === null) return mode === 'sandbox' ? false : ['loopback'];
  const v = value.toLowerCase();
  if (v === 'false' || v === 'off' || v === 'none' || v === '0') return false;
  if (/^\d{1,2}$/.test(v)) return Number(v);
  if (v === 'true') {
    problems.push(
      'TRUST_PROXY=true would let any client choose its address (and its rate-limit bucket): ' +
        'name the proxy (loopback, 10.0.0.0/8, …) or the number of proxies in front (1).',
    );
    return false;
  }
  const entries = v
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const bad = entries.filter((e) => !isProxyEntry(e));
  if (bad.length || !entries.length) {
    problems.push(
      `TRUST_PROXY: "${bad[0] ?? value}" is not loopback, linklocal, uniquelocal, an IP address or a subnet (or false, or a number of proxies).`,
    );
    return false;
  }
  return entries;
}

const LIVE_REQUIRED = [
  ['DODO_WEBHOOK_KEY', 'the signing key shown on your webhook endpoint in Dodo (Developers → Webhooks)'],
  ['CREDIT_ENTITLEMENT_ID', 'the Email Credits entitlement id (cde_…)'],
  ['PLAN_PRODUCT_ID', 'the MailKit Plan product id (pdt_…)'],
  ['TOPUP_PRODUCT_ID', 'the Email Top-Up Pack product id (pdt_…)'],
  ['RESEND_API_KEY', 'a Resend API key (re_…) from resend.com/api-keys'],
] as const;

/** Parses and validates the environment. Throws ConfigError naming every problem at once. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (name in schema.shape && value && PLACEHOLDER.test(value.trim())) {
      problems.push(`${name} still holds the placeholder "${value.slice(0, 24)}"; set a real value or remove the line.`);
    }
  }
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  if (problems.length || !parsed.success) throw new ConfigError(formatProblems(problems));
  const e = parsed.data;
  const mode: Mode = e.DODO_PAYMENTS_API_KEY ? 'live' : 'sandbox';

  if (mode === 'live') {
    const missing = LIVE_REQUIRED.filter(([name]) => !e[name]).map(([name, how]) => `${name} is missing: ${how}.`);
    if (missing.length) {
      throw new ConfigError(
        formatProblems([
          'DODO_PAYMENTS_API_KEY is set, so MailKit runs live, but:',
          ...missing,
          'Or remove DODO_PAYMENTS_API_KEY to run on the built-in sandbox.',
        ]),
      );
    }
    if (e.MAILKIT_KEY_SECRET && e.MAILKIT_KEY_SECRET.length < 32) {
      throw new ConfigError(formatProblems(['MAILKIT_KEY_SECRET must be at least 32 characters.']));
    }
  }

  const trustProxy = parseTrustProxy(e.TRUST_PROXY, mode, problems);
  if (problems.length) throw new ConfigError(formatProblems(problems));

  const port = e.PORT;
  const host = e.HOST ?? (mode === 'sandbox' ? '127.0.0.1' : '0.0.0.0');
  const baseUrl = (e.BASE_URL ?? `http://localhost:${port}`).replace(/\/+$/, '');
  return Object.freeze({
    mode,
    port,
    host,
    baseUrl,
    dataDir: e.MAILKIT_DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    mailFrom: e.MAIL_FROM,
    keySecret: e.MAILKIT_KEY_SECRET,
    logLevel: e.LOG_LEVEL,
    dodo: Object.freeze({
      apiKey: e.DODO_PAYMENTS_API_KEY,
      webhookKey: e.DODO_WEBHOOK_KEY,
      environment: e.DODO_PAYMENTS_ENVIRONMENT,
      baseUrl: e.DODO_PAYMENTS_BASE_URL,
      creditEntitlementId: e.CREDIT_ENTITLEMENT_ID,
      planProductId: e.PLAN_PRODUCT_ID,
      topupProductId: e.TOPUP_PRODUCT_ID,
    }),
    resend: Object.freeze({ apiKey: e.RESEND_API_KEY, baseUrl: e.RESEND_BASE_URL, webhookSecret: e.RESEND_WEBHOOK_SECRET }),
    sandbox: Object.freeze({
      webhookUrl: e.SANDBOX_WEBHOOK_URL,
      resendRateLimit: e.SANDBOX_RESEND_RATE_LIMIT,
      dodoRateLimit: Object.freeze({ perMinute: e.SANDBOX_DODO_RATE_LIMIT, burst: e.SANDBOX_DODO_BURST }),
    }),
    quotas: Object.freeze({
      // Resend: 2 requests a second per team by default. Dodo tier 0: 240 a minute.
      resendPerSecond: e.RESEND_RATE_LIMIT ?? (mode === 'live' ? 2 : e.SANDBOX_RESEND_RATE_LIMIT),
      dodoPerMinute: e.DODO_RATE_LIMIT ?? (mode === 'live' ? 240 : e.SANDBOX_DODO_RATE_LIMIT),
      dodoBurst: e.DODO_BURST ?? (mode === 'live' ? 40 : e.SANDBOX_DODO_BURST),
    }),
    trustProxy: Array.isArray(trustProxy) ? Object.freeze([...trustProxy]) : trustProxy,
    settleEverySeconds: e.SETTLE_EVERY_SECONDS,
    metricsToken: e.METRICS_TOKEN ?? null,
    emailHistoryDays: e.EMAIL_HISTORY_DAYS,
    batchDelivery: e.BATCH_DELIVERY === 'on',
    connectionsPerAddress: e.MAX_CONNECTIONS_PER_ADDRESS,
    rateLimits: Object.freeze({
      perKey: e.RATE_LIMIT_PER_KEY,
      publicPerIp: e.RATE_LIMIT_PUBLIC_PER_IP,
      authFailuresPerIp: e.RATE_LIMIT_AUTH_FAILURES_PER_IP,
      checkoutsPerCustomer: e.RATE_LIMIT_CHECKOUTS_PER_CUSTOMER,
    }),
  });
}

function formatProblems(lines: string[]): string {
  return ['MailKit cannot start:', ...lines.map((l) => `  - ${l}`), 'See .env.example for every variable.'].join('\n');
}
