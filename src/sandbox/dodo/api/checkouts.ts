import type { Request, Response, Router } from 'express';
import type { CheckoutSessionResponse } from 'dodopayments/resources/checkout-sessions';
import { DodoApiError } from '../errors';
import { newId } from '../ids';
import { sessionStatusView } from '../serialize';
import type { DodoState } from '../state';
import { createCheckoutBody, parseBody } from '../validation';
import type { ApiContext } from './context';

/** Checkout sessions: `POST /checkouts`, `GET /checkouts/{id}`. */
export function addCheckoutRoutes(router: Router, ctx: ApiContext): void {
  router.post('/checkouts', (req, res) => createCheckoutSession(ctx, req, res));
  router.get('/checkouts/:id', (req, res) => getCheckoutSession(ctx, req, res));
}

function createCheckoutSession(ctx: ApiContext, req: Request, res: Response): void {
  const state = ctx.store.data;
  const body = parseBody(createCheckoutBody, req.body);
  let recurring = 0;
  for (const item of body.product_cart) {
    const product = state.products[item.product_id];
    // The spec declares only 422 for a bad session request, so an unknown product is a 422.
    if (!product || product.archived) throw new DodoApiError(422, 'PRODUCT_NOT_FOUND', `Product ${item.product_id} not found`);
    if (product.price.type === 'recurring_price') recurring += 1;
  }
  if (recurring > 0 && body.product_cart.length > 1) {
    throw new DodoApiError(422, 'INVALID_PRODUCT_CART', 'A subscription product must be the only item in the cart');
  }
  if (body.customer && 'customer_id' in body.customer && !state.customers[body.customer.customer_id]) {
    throw new DodoApiError(422, 'CUSTOMER_NOT_FOUND', `Customer ${body.customer.customer_id} not found`);
  }
  const id = newId('cks');
  state.sessions[id] = {
    id,
    created_at: ctx.clock.nowIso(),
    product_cart: body.product_cart,
    customer: !body.customer
      ? null
      : 'customer_id' in body.customer
        ? { customer_id: body.customer.customer_id }
        : { email: body.customer.email, name: body.customer.name ?? null, phone_number: body.customer.phone_number ?? null },
    return_url: body.return_url ?? null,
    metadata: body.metadata ?? {},
    billing: body.billing_address ? ({ ...body.billing_address } as DodoState['sessions'][string]['billing']) : { country: 'US' },
    status: 'open',
    payment_id: null,
    payment_status: null,
    customer_id: null,
    subscription_id: null,
    redirect_url: null,
  };
  ctx.store.save();
  const response: CheckoutSessionResponse = {
    session_id: id,
    checkout_url: `${ctx.publicUrl}${ctx.checkoutPath}/${id}`,
  };
  res.status(200).json(response);
}

function getCheckoutSession(ctx: ApiContext, req: Request<{ id: string }>, res: Response): void {
  const state = ctx.store.data;
  const session = state.sessions[req.params.id];
  if (!session) throw new DodoApiError(404, 'NOT_FOUND', `Checkout session ${req.params.id} not found`);
  res.json(sessionStatusView(state, session));
}
