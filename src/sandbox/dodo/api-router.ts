import express, { type RequestHandler, type Router } from 'express';
import { addBalanceRoutes } from './api/balances';
import { addCheckoutRoutes } from './api/checkouts';
import type { ApiContext } from './api/context';
import { addCreditEntitlementRoutes } from './api/credit-entitlements';
import { addCustomerRoutes } from './api/customers';
import { addProductRoutes } from './api/products';
import { createErrorHandler, DodoApiError, notFoundRoute } from './errors';
import { hasBearerToken } from './rate-limit';

export interface ApiRouterDeps extends ApiContext {
  /** The API quota (rate-limit.ts); passes everything through while none is set. */
  rateLimit: RequestHandler;
  faultsMiddleware: RequestHandler;
  log?: (entry: Record<string, unknown>) => void;
}

/** The Dodo REST subset, relative to the mount point (the SDK's baseURL). */
export function createApiRouter(deps: ApiRouterDeps): Router {
  const router = express.Router();

  // The quota first, as a gateway answers 429 before the service sees the request.
  router.use(deps.rateLimit);
  // Then faults, so an injected 503 or latency applies before auth and parsing, as upstream would.
  router.use(deps.faultsMiddleware);
  router.use(requireBearerToken);
  router.use(express.json({ limit: '1mb' }));
  router.use((_req, _res, next) => {
    // Renewals and expiries that fell due since the last request happen before anything reads state.
    deps.billing.processDue(deps.clock.now());
    next();
  });

  // On this one router, not a router each: a nested router answers an OPTIONS for its paths by
  // itself (200 with Allow), where Dodo's unknown-route 404 below must answer it.
  addCheckoutRoutes(router, deps);
  addCreditEntitlementRoutes(router, deps);
  addBalanceRoutes(router, deps);
  addCustomerRoutes(router, deps);
  addProductRoutes(router, deps);

  router.use(notFoundRoute);
  router.use(createErrorHandler(deps.log));
  return router;
}

/** Dodo authenticates with `Authorization: Bearer <key>`; the sandbox accepts any non-empty key. */
const requireBearerToken: RequestHandler = (req, _res, next) => {
  if (!hasBearerToken(req)) {
    next(new DodoApiError(401, 'UNAUTHORIZED', 'Missing or invalid API key: send Authorization: Bearer <key>'));
    return;
  }
  next();
};
