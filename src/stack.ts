import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import DodoPayments from 'dodopayments';
import { Resend } from 'resend';
import express, { type Express, type RequestHandler } from 'express';
import { allowedHostNames, requireAllowedHost } from './allowed-hosts';
import { capConnectionsPerAddress, defaultCapExemption } from './connection-cap';
import { createApp } from './app';
import { createApiKeys, type ApiKeys } from './auth/api-keys';
import { createBilling, type Billing, type Catalog } from './billing/billing';
import { createCredits, type Credits, type CreditsOptions } from './billing/credits';
import { settleLegacyLeases } from './billing/legacy-leases';
import { ensureCatalog } from './billing/catalog';
import { createReadiness, type Readiness } from './health/readiness';
import { closeWithAnswer } from './lib/close-unread';
import { createHttpFetch } from './lib/http-fetch';
import type { Config } from './config';
import { errorMiddleware } from './errors';
import { createLogger, type Logger } from './logger';
import { createMetrics } from './metrics';
import { createMailer, type Mailer } from './mail/mailer';
import { createSandbox, type Sandbox } from './sandbox';
import { createDispatcher } from './sending/dispatcher';
import { createAcceptRoom, type AcceptRoom } from './sending/room';
import { createSender, newOwner, type ReconcileOptions, type Sender } from './sending/sender';
import { openDatabase, type Database } from './db/index';
import { refuseUnimportedStore } from './db/old-store';
import { generatedSecret } from './db/secrets';
import { budgetedFetch, createBudget, DODO_WAIT_MS } from './quotas';
import { newWebhookSecret } from './lib/webhook-secret';

/** A running MailKit: the HTTP server, the app, its services and (in sandbox mode) the sandbox. */
export interface Stack {
  server: Server;
  /** The origin the server answers on, e.g. http://127.0.0.1:3000. */
  url: string;
  /** The public origin the browser uses: checkout return URLs and email links point here. */
  baseUrl: string;
  config: Config;
  app: Express;
  dodo: DodoPayments;
  resend: Resend;
  catalog: Catalog;
  billing: Billing;
  /** The balance MailKit keeps, settled to Dodo in arrears. */
  credits: Credits;
  mailer: Mailer;
  sender: Sender;
  apiKeys: ApiKeys;
  /** Whether the database and the vendors answer (what /readyz reports). */
  readiness: () => Promise<Readiness>;
  database: Database;
  log: Logger;
  sandbox?: Sandbox;
  /** Stops accepting requests, lets in-flight sends finish, flushes and closes state. */
  close(): Promise<void>;
}

export interface StackOptions {
  /** Keep all state in memory (tests): nothing is read from or written to the data dir. */
  inMemory?: boolean;
  /** MailKit's database, opened by the caller (tests: a fresh PostgreSQL schema); closed with the stack. */
  database?: Database;
  log?: Logger;
  /** Sandbox webhook retry schedule (tests shorten it). */
  webhookRetryDelaysMs?: number[];
  /** Mailer tuning (tests shorten timeouts). */
  mailer?: { timeoutMs?: number; maxRetries?: number; maxBackoffMs?: number; pauseProbeMs?: number };
  /** Dodo SDK retries, and billing's own retries of ledger writes (default 2, the SDK's own). */
  dodoMaxRetries?: number;
  /** How long /readyz reuses the vendors' answers (default 30 s). */
  readinessVendorTtlMs?: number;
  /** The sender's reconciler timing (tests call stack.sender.reconcile() themselves). */
  reconcile?: ReconcileOptions;
  /** Settlement timing (tests shorten it, or call stack.credits.tick() themselves). */
  credits?: CreditsOptions;
  /** Emails this instance holds accepted (202) and undelivered at once (default 1,000). */
  acceptLimit?: number;
  /** How long a send answered once queued waits for room before its 429 (default 400 ms). */
  acceptWaitMs?: number;
  /** How long a client may take to send a request (tests shorten them); see HTTP_TIMEOUTS. */
  http?: Partial<HttpTimeouts>;
  /** Addresses MAX_CONNECTIONS_PER_ADDRESS does not count (default: loopback and TRUST_PROXY's proxies). */
  connectionCapExempt?: (address: string) => boolean;
}

export interface HttpTimeouts {
  /** From the connection (or, on a kept-alive one, the request's first byte) to its last header. */
  headersTimeoutMs: number;
  /** From the same instant to the last byte of the body; the answer itself may take longer. */
  requestTimeoutMs: number;
  /** How often Node looks for requests past either timeout: how late past it a socket may close. */
  checkIntervalMs: number;
}

/**
 * Node's defaults (60 s for the headers, 300 s for the request) let a client sending a byte
 * every few seconds hold a socket for five minutes, and Node looked for such requests only every
 * 30 s. Headers fit in one packet; 30 s for the whole request still lets an 8 MiB batch through
 * at 2.3 Mbit/s. Past either, Node answers 408 and closes the connection.
 */
export const HTTP_TIMEOUTS: HttpTimeouts = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, checkIntervalMs: 1_000 };

/**
 * Builds and starts MailKit. The server listens first, so that in sandbox mode the real
 * SDKs can reach the sandbox over loopback to provision the catalog; until the app is
 * ready, only /sandbox answers and everything else gets a 503.
 */
export async function startStack(config: Config, opts: StackOptions = {}): Promise<Stack> {
  const log = opts.log ?? createLogger(config.logLevel);
  const dataDir = opts.inMemory ? null : config.dataDir;
  // A folder still holding the store from before the database: refused before anything is written.
  if (dataDir && !opts.database) refuseUnimportedStore(dataDir);
  const database =
    opts.database ??
    (await openDatabase(config.databaseUrl ? { url: config.databaseUrl } : { file: dataDir ? join(dataDir, 'mailkit.sqlite') : ':memory:' }));
  const sandboxMode = config.mode === 'sandbox';
  const front = createFront(config, opts, sandboxMode);
  try {
    await front.listen();
  } catch (err) {
    await database.close();
    throw err;
  }
  const port = (front.server.address() as AddressInfo).port;
  const loopback = `http://127.0.0.1:${port}`;
  const baseUrl = config.port === 0 ? config.baseUrl.replace(/:0$/, `:${port}`) : config.baseUrl;
  // Sandbox mode answers only its own host names (DNS rebinding, see allowed-hosts.ts). Live mode
  // holds nothing a rebound page could read that a direct request could not.
  const allowedHosts = sandboxMode ? allowedHostNames({ baseUrl, host: config.host }) : undefined;

  try {
    const secrets = await secretsFor(config, database, log);
    const sandbox = sandboxMode
      ? startSandbox({ config, opts, dataDir, secrets, loopback, baseUrl, log, allowedHosts: allowedHosts!, front })
      : undefined;
    const vendors = vendorClients(config, opts, database, loopback, secrets.webhookKey);
    const catalog: Catalog = sandboxMode
      ? await ensureCatalog(vendors.dodo)
      : {
          creditEntitlementId: config.dodo.creditEntitlementId!,
          planProductId: config.dodo.planProductId!,
          topupProductId: config.dodo.topupProductId!,
        };
    const services = await buildServices({ config, opts, database, log, vendors, catalog, baseUrl, keySecret: secrets.keySecret });
    const app = createApp({
      ...services,
      mode: config.mode,
      metricsToken: config.metricsToken,
      baseUrl,
      dodo: vendors.dodo,
      resend: vendors.resend,
      webhookKey: secrets.webhookKey,
      resendWebhookSecret: secrets.resendWebhookSecret,
      database,
      log,
      sandbox,
      rateLimits: config.rateLimits,
      trustProxy: config.trustProxy,
      allowedHosts,
    });
    front.setHandler(app as unknown as RequestHandler);
    let closing: Promise<void> | undefined;
    return {
      ...services,
      server: front.server,
      url: loopback,
      baseUrl,
      config,
      app,
      dodo: vendors.dodo,
      resend: vendors.resend,
      catalog,
      database,
      log,
      sandbox,
      close() {
        closing ??= closeStack({ front, sandboxMode, services, sandbox, database });
        return closing;
      },
    };
  } catch (err) {
    front.server.closeAllConnections();
    await new Promise<void>((resolve) => front.server.close(() => resolve()));
    await database.close().catch(() => undefined);
    throw err;
  }
}

/**
 * The HTTP server in front of whatever serves requests now (`setHandler`: a 503 while starting,
 * the sandbox alone while the catalog is provisioned, then the app). At shutdown it refuses new
 * requests, except the sandbox's own in sandbox mode (the sends still in flight reach Dodo and
 * Resend through it), and counts out the requests already in.
 */
function createFront(config: Config, opts: StackOptions, sandboxMode: boolean) {
  let handler: RequestHandler = starting;
  let draining = false;
  const inFlight = new Set<ServerResponse>();
  let drained: (() => void) | undefined;
  const timeouts = { ...HTTP_TIMEOUTS, ...opts.http };
  const server = createServer(
    { headersTimeout: timeouts.headersTimeoutMs, requestTimeout: timeouts.requestTimeoutMs, connectionsCheckingInterval: timeouts.checkIntervalMs },
    (req, res) => {
      const sandboxCall = sandboxMode && (req.url ?? '').startsWith('/sandbox/');
      if (draining && !sandboxCall) return shuttingDown(res);
      if (!sandboxCall) {
        inFlight.add(res);
        res.once('close', () => {
          inFlight.delete(res);
          if (inFlight.size === 0) drained?.();
        });
      }
      handler(req as never, res as never, () => undefined);
    },
  );
  // Node's default keep-alive timeout (5 s) is shorter than many clients' pools: raise it so
  // a reused socket is not closed under a request.
  server.keepAliveTimeout = 65_000;
  capConnectionsPerAddress(server, {
    perAddress: config.connectionsPerAddress,
    exempt: opts.connectionCapExempt ?? defaultCapExemption(config.trustProxy),
  });
  return {
    server,
    listen: () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => resolve());
      }),
    setHandler(h: RequestHandler) {
      handler = h;
    },
    /** Refuses new requests from now on; resolves once those already in are answered. */
    async drain(): Promise<void> {
      draining = true;
      if (inFlight.size > 0) await new Promise<void>((resolve) => (drained = resolve));
    },
  };
}
type Front = ReturnType<typeof createFront>;

/**
 * The secrets the vendors' webhooks are verified with and API keys are derived from: the
 * environment's, or generated once and kept in the database (the sandbox's webhook secrets; the
 * key secret when MAILKIT_KEY_SECRET is not set, live too: every instance on the database shares
 * it). Live without RESEND_WEBHOOK_SECRET there is none for Resend's webhook (warned once).
 */
async function secretsFor(
  config: Config,
  database: Database,
  log: Logger,
): Promise<{ webhookKey: string; keySecret: string; resendWebhookSecret: string | null }> {
  const keySecret = config.keySecret ?? (await generatedSecret(database, 'keySecret', () => randomBytes(32).toString('base64url')));
  if (config.mode !== 'sandbox') {
    if (!config.resend.webhookSecret) {
      log.warn(
        "RESEND_WEBHOOK_SECRET is not set: Resend's delivery events (delivered, bounced, complained) " +
          'and the suppression of addresses that bounce are off, and /webhooks/resend answers 503. ' +
          'Add a webhook in Resend for <BASE_URL>/webhooks/resend and set its signing secret to turn them on.',
      );
    }
    return { webhookKey: config.dodo.webhookKey!, keySecret, resendWebhookSecret: config.resend.webhookSecret ?? null };
  }
  return {
    webhookKey: await generatedSecret(database, 'sandboxWebhookSecret', newWebhookSecret),
    keySecret,
    resendWebhookSecret: await generatedSecret(database, 'sandboxResendWebhookSecret', newWebhookSecret),
  };
}

/**
 * The local Dodo and Resend, answering alone (with the 503 of `starting` for the rest) while the
 * app is built: the catalog is provisioned through them.
 */
function startSandbox(deps: {
  config: Config;
  opts: StackOptions;
  dataDir: string | null;
  secrets: { webhookKey: string; resendWebhookSecret: string | null };
  loopback: string;
  baseUrl: string;
  log: Logger;
  allowedHosts: ReturnType<typeof allowedHostNames>;
  front: Front;
}): Sandbox {
  const { config, opts, secrets, loopback, log } = deps;
  const sandbox = createSandbox({
    dataDir: deps.dataDir,
    webhookSecret: secrets.webhookKey,
    webhookUrl: config.sandbox.webhookUrl ?? `${loopback}/webhooks/dodo`,
    publicUrl: deps.baseUrl,
    resendRateLimit: config.sandbox.resendRateLimit,
    dodoRateLimit: config.sandbox.dodoRateLimit,
    resendWebhooks: { secret: secrets.resendWebhookSecret!, url: `${loopback}/webhooks/resend` },
    webhookRetryDelaysMs: opts.webhookRetryDelaysMs,
    // A webhook MailKit took (2xx) is already in MailKit's own lines, its access log and what
    // the handler did: the sandbox's side of it is debug, or each event is three lines at info.
    // A refusal, a failure, and everything else the sandbox says stay at info.
    log: (entry) => {
      const sandboxLog = log.child({ component: 'sandbox' });
      if (entry.ok === true) sandboxLog.debug(entry);
      else sandboxLog.info(entry);
    },
  });
  const boot = express();
  boot.use(requireAllowedHost(deps.allowedHosts));
  boot.use('/sandbox', sandbox.router);
  boot.use(starting);
  boot.use(errorMiddleware((err) => log.error({ err }, 'request failed while starting')));
  deps.front.setHandler(boot as unknown as RequestHandler);
  return sandbox;
}

/**
 * The vendors' SDK clients, each call spending its vendor's budget first (one budget per
 * vendor, shared by every instance on this database). In sandbox mode they point at this very
 * server; nothing else differs.
 */
function vendorClients(config: Config, opts: StackOptions, database: Database, loopback: string, webhookKey: string) {
  const sandboxMode = config.mode === 'sandbox';
  const dodoBudget = createBudget({
    name: 'Dodo',
    database,
    windows: [{ points: config.quotas.dodoPerMinute, seconds: 60 }],
    burst: dodoBurstPool(config.quotas.dodoPerMinute, config.quotas.dodoBurst),
    maxWaitMs: DODO_WAIT_MS,
  });
  // Resend counts N calls in a window that opens with the first: that window mirrored, the
  // whole quota is used (10 % wider, 1/1.1 of it). The margin covers a call's way to Resend.
  const resendBudget = createBudget({
    name: 'Resend',
    database,
    windows: [{ points: config.quotas.resendPerSecond, seconds: 1, window: { marginMs: RESEND_WINDOW_MARGIN_MS } }],
  });
  const dodo = new DodoPayments({
    bearerToken: sandboxMode ? 'sandbox_dodo_key' : config.dodo.apiKey!,
    webhookKey,
    ...(sandboxMode
      ? { baseURL: `${loopback}/sandbox/dodo` }
      : config.dodo.baseUrl
        ? { baseURL: config.dodo.baseUrl } // the SDK refuses baseURL together with environment
        : { environment: config.dodo.environment }),
    timeout: 10_000,
    maxRetries: opts.dodoMaxRetries ?? 2,
    // Every Dodo call, reads included, spends the shared Dodo budget first.
    fetch: budgetedFetch(createHttpFetch(), dodoBudget),
  });
  const resend = new Resend(sandboxMode ? 're_sandbox_key' : config.resend.apiKey!, {
    baseUrl: sandboxMode ? `${loopback}/sandbox/resend` : (config.resend.baseUrl ?? undefined),
  });
  return { dodo, resend, resendBudget };
}

/** MailKit's own services over the vendors' clients: billing and credits (Dodo), the mailer (Resend), the sender, API keys, readiness. */
async function buildServices(deps: {
  config: Config;
  opts: StackOptions;
  database: Database;
  log: Logger;
  vendors: ReturnType<typeof vendorClients>;
  catalog: Catalog;
  baseUrl: string;
  keySecret: string;
}) {
  const { config, opts, database, log, vendors, catalog } = deps;
  const mailer = createMailer({ resend: vendors.resend, from: config.mailFrom, budget: vendors.resendBudget, log, ...opts.mailer });
  const billing = createBilling({ dodo: vendors.dodo, catalog, baseUrl: deps.baseUrl, writeRetries: opts.dodoMaxRetries });
  // Leases from before the balance MailKit keeps: settled with Dodo once, then their table goes.
  await settleLegacyLeases({ database, billing, log });
  const owner = newOwner();
  const metrics = createMetrics();
  const credits = createCredits({
    database,
    billing,
    owner,
    metrics,
    log: log.child({ component: 'credits' }),
    options: { settleEveryMs: config.settleEverySeconds * 1000, ...opts.credits },
  });
  const senderLog = log.child({ component: 'sender' });
  const sender = createSender({
    billing,
    credits,
    mailer,
    database,
    log: senderLog,
    reconcile: opts.reconcile,
    instanceId: owner,
    historyDays: config.emailHistoryDays,
    // First tries of every send share Resend batch calls (flights), unless BATCH_DELIVERY=off.
    dispatcher: config.batchDelivery ? createDispatcher({ database, mailer, log: senderLog, owner }) : null,
    room: acceptRoomFor(config.quotas.resendPerSecond, opts.acceptLimit, opts.acceptWaitMs),
  });
  const env = config.mode === 'sandbox' || config.dodo.environment === 'test_mode' ? 'test' : 'live';
  const apiKeys = createApiKeys({ database, secret: deps.keySecret, env });
  const readiness = createReadiness({
    database,
    dodo: vendors.dodo,
    resend: vendors.resend,
    creditEntitlementId: catalog.creditEntitlementId,
    vendorTtlMs: opts.readinessVendorTtlMs,
    sendingPaused: () => mailer.paused(),
  });
  return { mailer, billing, credits, sender, apiKeys, readiness, metrics };
}

/**
 * The graceful stop: no new requests, those in answered, the sends in flight finished, then what
 * was spent settled with Dodo until 12 s after the signal (server.ts forces the exit at 15 s:
 * what is left is settled by another instance, or this one restarted).
 */
async function closeStack(deps: {
  front: Front;
  sandboxMode: boolean;
  services: Awaited<ReturnType<typeof buildServices>>;
  sandbox?: Sandbox;
  database: Database;
}): Promise<void> {
  const { front, services, database } = deps;
  const closeStarted = Date.now();
  // Live: stop accepting at once. Sandbox: keep listening until the sends in flight are done,
  // for their upstream calls come back to this server.
  let stopped = deps.sandboxMode ? undefined : stopListening(front.server);
  await front.drain();
  await services.sender.drain();
  await services.credits.settleAll(closeStarted + 12_000);
  await deps.sandbox?.close();
  await database.close();
  stopped ??= stopListening(front.server);
  // What is still open holds no request of ours (they were all counted out).
  front.server.closeAllConnections();
  await stopped;
}

/** Stops accepting connections and closes the idle ones; resolves once every connection is gone. */
function stopListening(server: Server): Promise<void> {
  const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  return stopped;
}

/**
 * A 503 in the app's error envelope, written on the bare Node response: it serves both before
 * the app exists (starting) and after it stopped taking requests (shutting down).
 */
function unavailable(res: ServerResponse, code: string, message: string, retryAfterSeconds: number, close = false): void {
  res
    .writeHead(503, {
      'Content-Type': 'application/json; charset=utf-8',
      'Retry-After': String(retryAfterSeconds),
      ...(close ? { Connection: 'close' } : {}),
    })
    .end(JSON.stringify({ error: { code, message } }));
}

const shuttingDown = (res: ServerResponse) => unavailable(res, 'shutting_down', 'MailKit is restarting; retry in a few seconds.', 5, true);
const starting: RequestHandler = (req, res) => {
  // A body nobody will read is not waited for: the connection closes with the answer.
  if (!req.complete) closeWithAnswer(req, res);
  unavailable(res, 'starting', 'MailKit is starting; retry in a second.', 1);
};

/**
 * The room for emails answered once queued and not yet delivered: 5 s of flights at Resend's
 * quota (1,000 at its default 2 calls a second; 1,000 when Resend is not budgeted), refused at
 * once past what a second's wait could free at that pace (room.ts).
 */
export function acceptRoomFor(resendPerSecond: number, limit?: number, waitMs = ACCEPT_WAIT_MS): { room: AcceptRoom; limit: number } {
  const perSecond = resendPerSecond > 0 ? resendPerSecond * 100 : undefined;
  const size = limit ?? (perSecond ? perSecond * 5 : DEFAULT_ACCEPT_LIMIT);
  return { room: createAcceptRoom({ limit: size, waitMs, drainPerSecond: perSecond }), limit: size };
}
/** Emails held accepted and undelivered when Resend is not budgeted. */
const DEFAULT_ACCEPT_LIMIT = 1_000;
/**
 * How long a send to be answered once queued waits for room before its 429 (Retry-After): a
 * flight frees up to 100 places about every half second at Resend's default quota, so about
 * half the sends that wait at all get in within it, and an answer, 202 or 429, stays under
 * half a second at the ceiling. A longer wait admits more of them but makes every client wait
 * it out (400 ms put the p99 of answers at 590 ms in the benchmark's (b)); the room stays full
 * either way, so what reaches Resend does not change.
 */
const ACCEPT_WAIT_MS = 250;

/** How much longer than Resend's one-second window MailKit counts it: the spread of a call's time on its way to Resend. */
export const RESEND_WINDOW_MARGIN_MS = 30;

/**
 * The pool of turns lent at once on top of Dodo's spaced ones. Dodo's bucket holds `burst`
 * calls and refills at the quota's rate; the spaced turns use 1/1.1 of that rate, so the bucket
 * gains the rest back (0.36 a second at tier 0). The pool lends all but 4 of the bucket at once
 * (36 of 40), then lends again only once the bucket has gained them back: its window (which
 * rate-limiter-flexible starts at the first turn lent, not on a clock) lasts that long, 99 s.
 */
export function dodoBurstPool(perMinute: number, burst: number): { points: number; seconds: number } | undefined {
  const points = burst - 4;
  const spare = (perMinute / 60) * (1 - 1 / 1.1);
  if (points <= 0 || spare <= 0) return undefined;
  return { points, seconds: Math.ceil(points / spare) };
}
