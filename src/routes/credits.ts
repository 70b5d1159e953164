import { Router, type RequestHandler } from 'express';
import { assertSameCustomer, customerOf } from '../auth/middleware';
import type { Credits } from '../billing/credits';
import { customerIdString, parse } from './validate';

/**
 * GET /credits/:customerId → { balance } (the tutorial's route; the id must be the key's
 * own) and GET /credits for the key's customer. The balance MailKit keeps: what the customer
 * can spend now, every send paid so far counted (Dodo's balance equals it once the spends are
 * settled, within seconds). A decimal string, as Dodo and the tutorial give it. GET /credits
 * adds `pending`: credits of emails still on their way, given back if the provider refuses them.
 */
export function creditRoutes(deps: { credits: Credits; auth: RequestHandler }): Router {
  const router = Router();

  router.get('/credits', deps.auth, async (req, res) => {
    const customerId = customerOf(req);
    const b = await deps.credits.balance(customerId);
    res.set('Cache-Control', 'no-store');
    res.json({ customer_id: customerId, balance: String(b.available), pending: String(b.held) });
  });

  router.get('/credits/:customerId', deps.auth, async (req, res) => {
    assertSameCustomer(req, parse(customerIdString, req.params.customerId, 'customerId'));
    const b = await deps.credits.balance(customerOf(req));
    res.set('Cache-Control', 'no-store');
    res.json({ balance: String(b.available) });
  });

  return router;
}
