import { Router, type RequestHandler } from 'express';
import { assertSameCustomer, customerOf } from '../auth/middleware';
import { freshnessHeaders, type BalanceCache } from '../billing/balance-cache';
import { customerIdString, parse } from './validate';

/**
 * GET /credits/:customerId → { balance } (the tutorial's route; the id must be the key's
 * own) and GET /credits for the key's customer. Served from the balance cache: what Dodo last
 * gave (a read, the answer to a debit or refund, a credit.* webhook), read again from Dodo
 * once older than the bound; `Age` and `Cache-Status` say how old it is.
 */
export function creditRoutes(deps: { balances: BalanceCache; auth: RequestHandler }): Router {
  const router = Router();

  router.get('/credits', deps.auth, async (req, res) => {
    const customerId = customerOf(req);
    const served = await deps.balances.balance(customerId);
    res.set(freshnessHeaders(served));
    res.json({ customer_id: customerId, balance: served.value });
  });

  router.get('/credits/:customerId', deps.auth, async (req, res) => {
    assertSameCustomer(req, parse(customerIdString, req.params.customerId, 'customerId'));
    const served = await deps.balances.balance(customerOf(req));
    res.set(freshnessHeaders(served));
    res.json({ balance: served.value });
  });

  return router;
}
