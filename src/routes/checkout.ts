import DodoPayments from 'dodopayments';
import { HttpError } from '../errors';
import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { assertSameCustomer, customerOf } from '../auth/middleware';
import type { Billing } from '../billing/billing';
import { customerIdField, emailAddress, headerText, parse } from './validate';

export const subscribeBody = z.strictObject({
  email: emailAddress,
  name: headerText(200).trim().pipe(z.string().min(1, 'is required')),
});
export const topupBody = z.strictObject({ customer_id: customerIdField }).optional();

/** POST /checkout/subscribe (public) and POST /checkout/topup (the key's customer). */
export function checkoutRoutes(deps: { billing: Billing; auth: RequestHandler; publicLimit: RequestHandler }): Router {
  const router = Router();

  // Public, and each call creates a Dodo checkout session: limited per client address.
  router.post('/checkout/subscribe', deps.publicLimit, async (req, res) => {
    const { email, name } = parse(subscribeBody, req.body);
    res.json({ checkout_url: await deps.billing.subscribeCheckout({ email, name }) });
  });

  router.post('/checkout/topup', deps.auth, async (req, res) => {
    const body = parse(topupBody, req.body);
    assertSameCustomer(req, body?.customer_id);
    const customerId = customerOf(req);
    const url = await deps.billing.topupCheckout(customerId).catch((err: unknown) => {
      // A key is self-verifying, so one can be minted for any id: Dodo may not know its customer.
      if (err instanceof DodoPayments.NotFoundError || err instanceof DodoPayments.UnprocessableEntityError) {
        throw new HttpError(404, 'unknown_customer', `This key is for ${customerId}, a customer Dodo Payments does not know.`);
      }
      throw err;
    });
    res.json({ checkout_url: url });
  });

  return router;
}
