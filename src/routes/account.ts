import DodoPayments from 'dodopayments';
import { Router, type RequestHandler } from 'express';
import type { ApiKeys } from '../auth/api-keys';
import { customerOf } from '../auth/middleware';
import type { Billing } from '../billing/billing';
import { HttpError } from '../errors';
import { emptyBody, parse } from './validate';

/** GET /account (who this key is) and POST /account/key (rotate: the old key stops working at once). */
export function accountRoutes(deps: { billing: Billing; apiKeys: ApiKeys; auth: RequestHandler }): Router {
  const router = Router();

  router.get('/account', deps.auth, async (req, res) => {
    const customerId = customerOf(req);
    const customer = await deps.billing.customer(customerId).catch((err: unknown) => {
      // A key is self-verifying, so one can be minted for any id: Dodo may not know its customer.
      if (err instanceof DodoPayments.NotFoundError)
        throw new HttpError(404, 'unknown_customer', `This key is for ${customerId}, a customer Dodo Payments does not know.`);
      throw err;
    });
    res.set('Cache-Control', 'no-store');
    res.json({ customer_id: customerId, email: customer.email, name: customer.name });
  });

  router.post('/account/key', deps.auth, async (req, res) => {
    parse(emptyBody, req.body);
    // Committed before the answer: an acknowledged rotation survives a crash.
    const key = await deps.apiKeys.rotate(customerOf(req));
    res.set('Cache-Control', 'no-store');
    res.status(201).json({ api_key: key });
  });

  return router;
}
