import express, { type Express, type RequestHandler } from 'express';
import type DodoPayments from 'dodopayments';
import type { Resend } from 'resend';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import helmet from 'helmet';
import { requireAllowedHost } from './allowed-hosts';
import type { ApiKeys } from './auth/api-keys';
import { requireCustomer } from './auth/middleware';
import type { Credits } from './billing/credits';
import { metricsRoute, type Metrics } from './metrics';
import type { Billing } from './billing/billing';
import type { Mode, TrustProxy } from './config';
import { errorMiddleware, HttpError, notFound } from './errors';
import { bytesOf, refuseDeclaredOverLimit } from './lib/body-limit';
import { jsonShapeProblem } from './lib/json-shape';
import { upstreamOf, type Logger } from './logger';
import type { Readiness } from './health/readiness';
import type { Mailer } from './mail/mailer';
import { accountRoutes } from './routes/account';
import { checkoutRoutes } from './routes/checkout';
import { creditRoutes } from './routes/credits';
import { sendRoutes } from './routes/send';
import { usageRoutes } from './routes/usage';
import { LIMITS } from './routes/validate';
import { budgetParty } from './quotas';
import { clientAddressKey, createRateLimiters, customerGate, type RateLimits } from './rate-limits';
import { requestLog } from './request-log';
import type { Sandbox } from './sandbox';
import type { Sender } from './sending/sender';
import type { Database } from './db/index';
import { createDodoWebhookRouter } from './webhooks/dodo-webhooks';
import { createWebhookHandlers } from './webhooks/handlers';
import { createResendWebhookRouter } from './webhooks/resend-webhooks';
import { emailRoutes } from './routes/emails';
import { suppressionRoutes } from './routes/suppressions';
import { openApiRoutes } from './routes/openapi';

/** Everything the app needs, built by the caller (server.ts, or a test). */
export interface AppDeps {
  mode: Mode;
  /** What GET /metrics shows, and the token it takes live (null: no /metrics live). */
  metrics: Metrics;
  metricsToken: string | null;
  baseUrl: string;
  dodo: DodoPayments;
  /** Secret the Dodo webhooks are verified with. */
  webhookKey: string;
  billing: Billing;
  /** The balance MailKit keeps, settled to Dodo in arrears (src/billing/credits.ts). */
  credits: Credits;
  mailer: Mailer;
  sender: Sender;
  apiKeys: ApiKeys;
  database: Database;
  log: Logger;
  /** GET /readyz: whether the database, Dodo and Resend answer. */
  readiness: () => Promise<Readiness>;
  /** Mounted at /sandbox in sandbox mode only; absent in live mode, so /sandbox is a 404 there. */
  sandbox?: Sandbox;
  /** MailKit's own rate limits, requests per minute. */
  rateLimits: RateLimits;
  /** Express's `trust proxy` (TRUST_PROXY): who may name the client's address. Default: nobody. */
  trustProxy?: TrustProxy;
  /** Host names answered (sandbox mode: the DNS rebinding guard); absent: any Host. */
  allowedHosts?: ReadonlySet<string>;
  /** Verifies Resend's email events (`webhooks.verify`), with the endpoint's signing secret. */
  resend: Resend;
  /** Null live without RESEND_WEBHOOK_SECRET: /webhooks/resend answers 503. */
  resendWebhookSecret: string | null;
}

/** A request that carries a body must say it is JSON: anything else is a 415, before any route runs. */
const jsonBodiesOnly: RequestHandler = (req, _res, next) => {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody && !req.is('application/json')) {
    return next(new HttpError(415, 'unsupported_media_type', 'Send the request body as JSON with "Content-Type: application/json".'));
  }
  next();
};

/**
 * A JSON body parser bounded in bytes and in shape: a body nested too deep or holding too many
 * values is refused (400) before JSON.parse could block the event loop on it.
 */
function jsonBody(limit: string): RequestHandler {
  const parse = express.json({
    limit,
    // A `__proto__` key (however escaped) cannot be carried by a JavaScript object as it was
    // sent: it would set the object's prototype, and whatever it named (a custom header) would be
    // silently lost. No MailKit field is named so: the body is refused (400 invalid_json).
    reviver: (key, value) => {
      if (key === '__proto__') throw new SyntaxError('a key named __proto__');
      return value as unknown;
    },
    verify(_req, _res, buf) {
      const problem = jsonShapeProblem(buf, { maxDepth: LIMITS.jsonMaxDepth, maxValues: LIMITS.jsonMaxValues });
      if (problem) throw new HttpError(400, 'json_too_complex', `The JSON body ${problem}; no MailKit request needs that.`);
    },
  });
  return inTurn(refuseDeclaredOverLimit(bytesOf(limit)), parse);
}

/**
 * The rest of the request runs as `partyOf(req)`'s (budgetParty): the Dodo calls it causes take
 * their turns of MailKit's Dodo budget as that party's. Last before the route: the async steps
 * before it (reading the body) may resume outside this context.
 */
function dodoParty(partyOf: (req: Parameters<RequestHandler>[0]) => string): RequestHandler {
  return (req, _res, next) => budgetParty.run(partyOf(req), next);
}

/** `first`, then `second` if `first` let the request through; either may call next() later (async). */
function inTurn(first: RequestHandler, second: RequestHandler): RequestHandler {
  return (req, res, next) => first(req, res, (err?: unknown) => (err ? next(err) : second(req, res, next)));
}

const publicDir = fileURLToPath(new URL('../public', import.meta.url));
// The dashboard's chart library, served from node_modules: no CDN, no build step.
const uplotDir = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css'));
const UPLOT_FILES = ['uPlot.iife.min.js', 'uPlot.min.css'];

/** Builds the Express app. It never listens: server.ts (or a test) does. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // API answers are per-customer and never cached; hashing every body for an ETag is wasted
  // work on the send path. Static files keep theirs (serve-static sets its own).
  app.set('etag', false);
  // Who may say, in X-Forwarded-For, which address a client has: the rate limits count by it.
  // Trusting a peer that is not a proxy lets each client pick its own bucket.
  const trust = deps.trustProxy ?? false;
  app.set('trust proxy', Array.isArray(trust) ? [...trust] : trust);

  // Health probes would drown the log.
  app.use(requestLog(deps.log, { ignore: (path) => path === '/healthz' || path === '/readyz' }));
  if (deps.allowedHosts) app.use(requireAllowedHost(deps.allowedHosts));
  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          // The outbox shows email HTML in a sandboxed iframe served from this origin.
          frameSrc: ["'self'"],
          formAction: ["'self'"],
          connectSrc: ["'self'"],
          objectSrc: ["'none'"],
          baseUri: ["'none'"],
          frameAncestors: ["'self'"],
          // Only where the public origin is https: over plain http it would break every asset.
          upgradeInsecureRequests: deps.baseUrl.startsWith('https:') ? [] : null,
        },
      },
      strictTransportSecurity: deps.mode === 'live',
    }),
  );

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/metrics', metricsRoute(deps.metrics, deps.metricsToken, deps.mode === 'sandbox'));

  app.get('/readyz', async (_req, res) => {
    const r = await deps.readiness();
    res.status(r.ready ? 200 : 503).json({ status: r.ready ? 'ready' : 'unavailable', checks: r.checks });
  });

  if (deps.sandbox) app.use('/sandbox', deps.sandbox.router);

  // Raw body for the signature: registered before express.json().
  app.use(
    '/webhooks/dodo',
    createDodoWebhookRouter({
      dodo: deps.dodo,
      webhookKey: deps.webhookKey,
      database: deps.database,
      log: deps.log,
      handlers: createWebhookHandlers({
        apiKeys: deps.apiKeys,
        billing: deps.billing,
        credits: deps.credits,
        mailer: deps.mailer,
        baseUrl: deps.baseUrl,
      }),
    }),
  );

  app.use(
    '/webhooks/resend',
    createResendWebhookRouter({ resend: deps.resend, secret: deps.resendWebhookSecret, database: deps.database, log: deps.log }),
  );

  // Only the Content-Type header is checked here; no body is read before its route has let the
  // request in (see `auth` and `publicLimit` below).
  app.use(jsonBodiesOnly);

  const limiters = createRateLimiters(deps.rateLimits, deps.database);
  const body = { send: jsonBody(LIMITS.sendBodyBytes), batch: jsonBody(LIMITS.batchBodyBytes), public: jsonBody(LIMITS.publicBodyBytes) };
  // Authenticate and count the request against its limits first, then read the body: a request
  // without a valid key, or over a limit, costs no parsing at all, and the 8 MiB batch limit is
  // for customers only. Each step may finish asynchronously (key verification may read a database).
  // Last, the request's Dodo calls are made its customer's (or client address's): they share
  // MailKit's Dodo budget fairly with everyone else's (src/quotas.ts).
  const gate = customerGate(requireCustomer(deps.apiKeys), limiters);
  const auth = inTurn(
    inTurn(gate, (req, res, next) => (req.route?.path === '/send/batch' ? body.batch : body.send)(req, res, next)),
    dodoParty((req) => `customer:${req.customerId}`),
  );
  // A checkout is a Dodo call: a customer's are limited to fit in Dodo's budget (a few a minute).
  const checkoutAuth = inTurn(
    inTurn(inTurn(gate, limiters.checkoutsPerCustomer), body.public),
    dodoParty((req) => `customer:${req.customerId}`),
  );
  const publicLimit = inTurn(
    inTurn(limiters.publicPerIp, body.public),
    dodoParty((req) => `address:${clientAddressKey(req.ip)}`),
  );
  app.get('/config', (_req, res) => {
    res.json({ mode: deps.mode, outbox_url: deps.sandbox ? '/sandbox/outbox' : null, sandbox_url: deps.sandbox ? '/sandbox' : null });
  });
  app.use(checkoutRoutes({ billing: deps.billing, auth: checkoutAuth, publicLimit }));
  app.use(usageRoutes({ credits: deps.credits, database: deps.database, auth })); // before /credits/:customerId
  app.use(creditRoutes({ credits: deps.credits, auth }));
  app.use(sendRoutes({ sender: deps.sender, auth, database: deps.database }));
  app.use(accountRoutes({ billing: deps.billing, apiKeys: deps.apiKeys, auth }));
  app.use(emailRoutes({ database: deps.database, auth }));
  app.use(suppressionRoutes({ database: deps.database, auth }));
  app.use(openApiRoutes());

  // Exactly the two files the dashboard loads, not the whole package directory.
  app.get(
    UPLOT_FILES.map((f) => `/vendor/uplot/${f}`),
    (req, res) => {
      res.sendFile(req.path.slice('/vendor/uplot/'.length), { root: uplotDir, maxAge: '1h' });
    },
  );
  app.use(express.static(publicDir, { index: 'index.html', maxAge: 0 }));
  // Browsers ask for /favicon.ico on pages that name no icon (the sandbox's own pages).
  app.get('/favicon.ico', (_req, res) => res.redirect(301, '/favicon.svg'));
  app.use(notFound);
  app.use(
    errorMiddleware((err, req) => {
      // The request's logger carries the request id; a vendor's failure says which and why.
      const upstream = upstreamOf(err);
      req.log.error({ err }, upstream ? `${upstream.vendor} ${upstream.cause} (calling ${upstream.host})` : 'request failed');
    }),
  );
  return app;
}
