import express, { type Express, type RequestHandler } from 'express';
import type DodoPayments from 'dodopayments';
import type { Resend } from 'resend';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import helmet from 'helmet';
import type { ApiKeys } from './auth/api-keys';
import { requireCustomer } from './auth/middleware';
import type { Billing } from './billing/billing';
import type { Mode } from './config';
import { errorMiddleware, HttpError, notFound } from './errors';
import type { Logger } from './logger';
import type { Readiness } from './health/readiness';
import type { Mailer } from './mail/mailer';
import { accountRoutes } from './routes/account';
import { checkoutRoutes } from './routes/checkout';
import { creditRoutes } from './routes/credits';
import { sendRoutes } from './routes/send';
import { usageRoutes } from './routes/usage';
import { LIMITS } from './routes/validate';
import { createRateLimiters, customerGate, type RateLimits } from './rate-limits';
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
  baseUrl: string;
  dodo: DodoPayments;
  /** Secret the Dodo webhooks are verified with. */
  webhookKey: string;
  billing: Billing;
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
  /** Verifies Resend's email events (`webhooks.verify`), with the endpoint's signing secret. */
  resend: Resend;
  resendWebhookSecret: string;
}

/** A request that carries a body must say it is JSON: anything else is a 415, before any route runs. */
const jsonBodiesOnly: RequestHandler = (req, _res, next) => {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody && !req.is('application/json')) {
    return next(new HttpError(415, 'unsupported_media_type', 'Send the request body as JSON with "Content-Type: application/json".'));
  }
  next();
};

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
  app.set('trust proxy', 'loopback');

  // Health probes would drown the log.
  app.use(requestLog(deps.log, { ignore: (path) => path === '/healthz' || path === '/readyz' }));
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
      handlers: createWebhookHandlers({ apiKeys: deps.apiKeys, billing: deps.billing, mailer: deps.mailer, baseUrl: deps.baseUrl }),
    }),
  );

  app.use('/webhooks/resend', createResendWebhookRouter({ resend: deps.resend, secret: deps.resendWebhookSecret, database: deps.database, log: deps.log }));

  app.use('/send/batch', express.json({ limit: LIMITS.batchBodyBytes }));
  app.use(express.json({ limit: LIMITS.sendBodyBytes }));
  app.use(jsonBodiesOnly);

  const limiters = createRateLimiters(deps.rateLimits);
  const auth = customerGate(requireCustomer(deps.apiKeys), limiters);
  app.get('/config', (_req, res) => {
    res.json({ mode: deps.mode, outbox_url: deps.sandbox ? '/sandbox/outbox' : null, sandbox_url: deps.sandbox ? '/sandbox' : null });
  });
  app.use(checkoutRoutes({ billing: deps.billing, auth, publicLimit: limiters.publicPerIp }));
  app.use(usageRoutes({ billing: deps.billing, auth })); // before /credits/:customerId
  app.use(creditRoutes({ billing: deps.billing, auth }));
  app.use(sendRoutes({ sender: deps.sender, auth, database: deps.database }));
  app.use(accountRoutes({ billing: deps.billing, apiKeys: deps.apiKeys, auth }));
  app.use(emailRoutes({ database: deps.database, auth }));
  app.use(suppressionRoutes({ database: deps.database, auth }));
  app.use(openApiRoutes());

  // Exactly the two files the dashboard loads, not the whole package directory.
  app.get(UPLOT_FILES.map((f) => `/vendor/uplot/${f}`), (req, res) => {
    res.sendFile(req.path.slice('/vendor/uplot/'.length), { root: uplotDir, maxAge: '1h' });
  });
  app.use(express.static(publicDir, { index: 'index.html', maxAge: 0 }));
  // Browsers ask for /favicon.ico on pages that name no icon (the sandbox's own pages).
  app.get('/favicon.ico', (_req, res) => res.redirect(301, '/favicon.svg'));
  app.use(notFound);
  app.use(
    errorMiddleware((err, req) => {
      // The request's logger carries the request id.
      req.log.error({ err }, 'request failed');
    }),
  );
  return app;
}

