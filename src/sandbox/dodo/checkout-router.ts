import express, { type Router } from 'express';
import type { JsonStore } from '../../lib/json-store';
import { formatAmount, groupDigits } from './amounts';
import type { SandboxBilling } from './billing';
import { CheckoutError } from './checkout-payment';
import { escapeHtml, formatPrice, renderCheckoutPage } from './checkout-page';
import type { SandboxClock } from './clock';
import { isCrossSite } from '../same-origin';
import type { DodoState } from './state';

/** The hosted checkout: GET /:id renders the page, POST /:id/pay and /:id/decline act and redirect 303. */
export function createCheckoutRouter(deps: {
  store: JsonStore<DodoState>;
  clock: SandboxClock;
  billing: SandboxBilling;
  checkoutPath: string;
}): Router {
  const { store, billing } = deps;
  const state = () => store.data;
  const router = express.Router();
  router.use(express.urlencoded({ extended: false, limit: '16kb' }));

  const page = (sessionId: string, notice?: string): { status: number; html: string } => {
    const session = state().sessions[sessionId];
    if (!session) {
      return { status: 404, html: simplePage('Checkout not found', `No checkout session ${sessionId}.`) };
    }
    const lines = session.product_cart.map((item) => {
      const product = state().products[item.product_id];
      return {
        name: product?.name ?? item.product_id,
        price: product ? formatPrice(product.price) : '',
        quantity: item.quantity,
        credits: (product?.attachments ?? []).map((a) => {
          const e = state().entitlements[a.credit_entitlement_id];
          const units = Number(a.credits_amount) * item.quantity;
          return `${groupDigits(formatAmount(Math.round(units * 10 ** (e?.precision ?? 0)), e?.precision ?? 0))} ${e?.name ?? 'credits'}`;
        }),
      };
    });
    const requested = session.customer;
    const email = session.customer_id
      ? (state().customers[session.customer_id]?.email ?? null)
      : requested && 'customer_id' in requested
        ? (state().customers[requested.customer_id]?.email ?? null)
        : requested && 'email' in requested
          ? requested.email
          : null;
    const status = session.status === 'paid' ? 'paid' : session.payment_status === 'failed' ? 'failed' : 'open';
    return {
      status: 200,
      html: renderCheckoutPage({ sessionId, checkoutPath: deps.checkoutPath, lines, email, status, notice }),
    };
  };

  const send = (res: express.Response, status: number, html: string) => {
    res.status(status).type('html').set('cache-control', 'no-store').send(html);
  };

  router.get('/:sessionId', (req, res) => {
    billing.processDue(deps.clock.now());
    const { status, html } = page(req.params.sessionId);
    send(res, status, html);
  });

  const act = (kind: 'pay' | 'decline') => (req: express.Request<{ sessionId: string }>, res: express.Response) => {
    // Another site's form must not pay (or decline) for the visitor: only this page, curl, the CLIs.
    if (isCrossSite(req)) {
      return send(res, 403, simplePage('Cross-site request refused', 'Pay or decline from the checkout page itself.'));
    }
    billing.processDue(deps.clock.now());
    const sessionId = req.params.sessionId;
    const body = (req.body ?? {}) as Record<string, unknown>;
    const details = {
      email: typeof body.email === 'string' && body.email.trim() ? body.email.trim() : undefined,
      name: typeof body.name === 'string' && body.name.trim() ? body.name.trim() : undefined,
    };
    try {
      const redirect = kind === 'pay' ? billing.pay(sessionId, details) : billing.decline(sessionId, details);
      // No return_url: come back to the session page, which shows the outcome.
      res.redirect(303, redirect || `${deps.checkoutPath}/${encodeURIComponent(sessionId)}`);
    } catch (err) {
      if (!(err instanceof CheckoutError)) throw err;
      const rendered = page(sessionId, err.message);
      send(res, rendered.status === 404 ? 404 : err.status, rendered.html);
    }
  };
  router.post('/:sessionId/pay', act('pay'));
  router.post('/:sessionId/decline', act('decline'));

  router.use((_req, res) => send(res, 404, simplePage('Not found', 'No such checkout page.')));
  return router;
}

function simplePage(title: string, text: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/sandbox/assets/checkout.css"></head>
<body><main class="checkout"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></main></body></html>`;
}
