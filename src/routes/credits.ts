import { Router, type RequestHandler } from 'express';
import { assertSameCustomer, customerOf } from '../auth/middleware';
import type { Billing } from '../billing/billing';
import { customerIdString, parse } from './validate';

/**
 * GET /credits/:customerId → { balance } (the tutorial's route; the id must be the key's
 * own) and GET /credits for the key's customer. Read from Dodo on every call: Dodo's
 * balance is the source of truth and is never cached here.
 */
export function creditRoutes(deps: { billing: Billing; auth: RequestHandler }): Router {
  const router = Router();

  router.get('/credits', deps.auth, async (req, res) => {
    const customerId = customerOf(req);
    res.set('Cache-Control', 'no-store');
    res.json({ customer_id: customerId, balance: await deps.billing.balance(customerId) });
  });

  router.get('/credits/:customerId', deps.auth, async (req, res) => {
    assertSameCustomer(req, parse(customerIdString, req.params.customerId, 'customerId'));
    res.set('Cache-Control', 'no-store');
    res.json({ balance: await deps.billing.balance(customerOf(req)) });
  });

  return router;
}
