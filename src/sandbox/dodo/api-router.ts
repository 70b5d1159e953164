import express, { type RequestHandler, type Router } from 'express';
import { randomUUID } from 'node:crypto';
import type { CheckoutSessionResponse } from 'dodopayments/resources/checkout-sessions';
import type { BalanceCreateLedgerEntryResponse } from 'dodopayments/resources/credit-entitlements/balances';
import type { Customer, CustomerListCreditEntitlementsResponse } from 'dodopayments/resources/customers/customers';
import type { Price } from 'dodopayments/resources/products/products';
import type { JsonStore } from '../../lib/json-store';
import { formatAmount, parseAmount } from './amounts';
import type { Billing } from './billing';
import type { SandboxClock } from './clock';
import type { CreditLedger } from './credit-ledger';
import { createErrorHandler, DodoApiError, notFoundRoute } from './errors';
import { newId } from './ids';
import { hasBearerToken } from './rate-limit';
import {
  balanceView,
  entitlementView,
  grantStatus,
  grantView,
  ledgerEntryView,
  productListItem,
  productView,
  sessionStatusView,
} from './serialize';
import { type DodoState, type StoredAttachment, type StoredEntitlement, type StoredProduct } from './state';
import {
  createCheckoutBody,
  createCustomerBody,
  createEntitlementBody,
  createLedgerEntryBody,
  createProductBody,
  paginate,
  parseBody,
  parseBoolQuery,
  parseDateQuery,
  parsePage,
  patchCustomerBody,
  patchEntitlementBody,
  patchProductBody,
} from './validation';
import type { z } from 'zod';

export interface ApiRouterDeps {
  store: JsonStore<DodoState>;
  clock: SandboxClock;
  ledger: CreditLedger;
  billing: Billing;
  /** The API quota (rate-limit.ts); passes everything through while none is set. */
  rateLimit: RequestHandler;
  faultsMiddleware: RequestHandler;
  publicUrl: string;
  checkoutPath: string;
  log?: (entry: Record<string, unknown>) => void;
}

/** The Dodo REST subset, relative to the mount point (the SDK's baseURL). */
export function createApiRouter(deps: ApiRouterDeps): Router {
  const { store, clock, ledger, billing } = deps;
  const state = () => store.data;
  const router = express.Router();

  // The quota first, as a gateway answers 429 before the service sees the request.
  router.use(deps.rateLimit);
  // Then faults, so an injected 503 or latency applies before auth and parsing, as upstream would.
  router.use(deps.faultsMiddleware);
  router.use((req, _res, next) => {
    // Dodo authenticates with `Authorization: Bearer <key>`; the sandbox accepts any non-empty key.
    if (!hasBearerToken(req)) {
      next(new DodoApiError(401, 'UNAUTHORIZED', 'Missing or invalid API key: send Authorization: Bearer <key>'));
      return;
    }
    next();
  });
  router.use(express.json({ limit: '1mb' }));
  router.use((_req, _res, next) => {
    // Renewals and expiries that fell due since the last request happen before anything reads state.
    billing.processDue(clock.now());
    next();
  });

  const entitlementOr404 = (id: string): StoredEntitlement => {
    const e = state().entitlements[id];
    if (!e || e.deleted_at) throw new DodoApiError(404, 'NOT_FOUND', `Credit entitlement ${id} not found`);
    return e;
  };
  const customerOr404 = (id: string): Customer => {
    const c = state().customers[id];
    if (!c) throw new DodoApiError(404, 'NOT_FOUND', `Customer ${id} not found`);
    return c;
  };
  const productOr404 = (id: string): StoredProduct => {
    const p = state().products[id];
    if (!p) throw new DodoApiError(404, 'NOT_FOUND', `Product ${id} not found`);
    return p;
  };
  const newestFirst = <T extends { created_at: string }>(items: T[]) =>
    items
      .map((item, i) => ({ item, i }))
      .sort((a, b) => (a.item.created_at === b.item.created_at ? b.i - a.i : a.item.created_at < b.item.created_at ? 1 : -1))
      .map((x) => x.item);

  // ---- Checkout sessions ----------------------------------------------------------------------

  router.post('/checkouts', (req, res) => {
    const body = parseBody(createCheckoutBody, req.body);
    let recurring = 0;
    for (const item of body.product_cart) {
      const product = state().products[item.product_id];
      // The spec declares only 422 for a bad session request, so an unknown product is a 422.
      if (!product || product.archived) throw new DodoApiError(422, 'PRODUCT_NOT_FOUND', `Product ${item.product_id} not found`);
      if (product.price.type === 'recurring_price') recurring += 1;
    }
    if (recurring > 0 && body.product_cart.length > 1) {
      throw new DodoApiError(422, 'INVALID_PRODUCT_CART', 'A subscription product must be the only item in the cart');
    }
    if (body.customer && 'customer_id' in body.customer && !state().customers[body.customer.customer_id]) {
      throw new DodoApiError(422, 'CUSTOMER_NOT_FOUND', `Customer ${body.customer.customer_id} not found`);
    }
    const id = newId('cks');
    state().sessions[id] = {
      id,
      created_at: clock.nowIso(),
      product_cart: body.product_cart,
      customer: !body.customer
        ? null
        : 'customer_id' in body.customer
          ? { customer_id: body.customer.customer_id }
          : { email: body.customer.email, name: body.customer.name ?? null, phone_number: body.customer.phone_number ?? null },
      return_url: body.return_url ?? null,
      metadata: body.metadata ?? {},
      billing: body.billing_address
        ? ({ ...body.billing_address } as DodoState['sessions'][string]['billing'])
        : { country: 'US' },
      status: 'open',
      payment_id: null,
      payment_status: null,
      customer_id: null,
      subscription_id: null,
      redirect_url: null,
    };
    store.save();
    const response: CheckoutSessionResponse = {
      session_id: id,
      checkout_url: `${deps.publicUrl}${deps.checkoutPath}/${id}`,
    };
    res.status(200).json(response);
  });

  router.get('/checkouts/:id', (req, res) => {
    const session = state().sessions[req.params.id];
    if (!session) throw new DodoApiError(404, 'NOT_FOUND', `Checkout session ${req.params.id} not found`);
    res.json(sessionStatusView(state(), session));
  });

  // ---- Credit entitlements --------------------------------------------------------------------

  router.post('/credit-entitlements', (req, res) => {
    const body = parseBody(createEntitlementBody, req.body);
    const now = clock.nowIso();
    const e: StoredEntitlement = {
      id: newId('cde'),
      business_id: state().businessId,
      name: body.name,
      unit: body.unit,
      precision: body.precision,
      description: body.description ?? null,
      currency: (body.currency ?? null) as StoredEntitlement['currency'],
      expires_after_days: body.expires_after_days ?? null,
      rollover_enabled: body.rollover_enabled,
      rollover_percentage: body.rollover_percentage ?? null,
      rollover_timeframe_count: body.rollover_timeframe_count ?? null,
      rollover_timeframe_interval: body.rollover_timeframe_interval ?? null,
      max_rollover_count: body.max_rollover_count ?? null,
      overage_enabled: body.overage_enabled,
      overage_behavior: body.overage_behavior ?? 'forgive_at_reset',
      overage_limit: body.overage_limit ?? null,
      price_per_unit: body.price_per_unit ?? null,
      created_at: now,
      updated_at: now,
      deleted_at: null,
    };
    state().entitlements[e.id] = e;
    store.save();
    res.status(201).json(entitlementView(e));
  });

  router.get('/credit-entitlements', (req, res) => {
    const deleted = parseBoolQuery(req.query, 'deleted') ?? false;
    const all = Object.values(state().entitlements).filter((e) => Boolean(e.deleted_at) === deleted);
    res.json(paginate(newestFirst(all).map(entitlementView), parsePage(req.query)));
  });

  router.get('/credit-entitlements/:id', (req, res) => {
    res.json(entitlementView(entitlementOr404(req.params.id)));
  });

  router.patch('/credit-entitlements/:id', (req, res) => {
    const e = entitlementOr404(req.params.id);
    const body = parseBody(patchEntitlementBody, req.body);
    for (const [key, value] of Object.entries(body)) {
      if (value === undefined) continue;
      // Required fields stay as they were when the patch sends null for them.
      if (value === null && ['name', 'unit', 'rollover_enabled', 'overage_enabled', 'overage_behavior'].includes(key)) continue;
      (e as unknown as Record<string, unknown>)[key] = value;
    }
    e.updated_at = clock.nowIso();
    store.save();
    res.status(200).end();
  });

  router.delete('/credit-entitlements/:id', (req, res) => {
    const e = state().entitlements[req.params.id];
    if (!e) throw new DodoApiError(404, 'NOT_FOUND', `Credit entitlement ${req.params.id} not found`);
    if (e.deleted_at) throw new DodoApiError(410, 'GONE', `Credit entitlement ${req.params.id} is already deleted`);
    e.deleted_at = clock.nowIso();
    store.save();
    res.status(200).end();
  });

  // ---- Balances, ledger, grants ---------------------------------------------------------------

  router.get('/credit-entitlements/:entId/balances', (req, res) => {
    const e = entitlementOr404(req.params.entId);
    const customerId = typeof req.query.customer_id === 'string' ? req.query.customer_id : null;
    const rows = Object.values(state().balances).filter(
      (b) => b.credit_entitlement_id === e.id && (!customerId || b.customer_id === customerId),
    );
    const views = newestFirst(rows).map((b) => balanceView(state(), e.id, b.customer_id)!);
    res.json(paginate(views, parsePage(req.query)));
  });

  router.get('/credit-entitlements/:entId/balances/:customerId', (req, res) => {
    const e = entitlementOr404(req.params.entId);
    customerOr404(req.params.customerId);
    const view = balanceView(state(), e.id, req.params.customerId);
    if (!view) throw new DodoApiError(404, 'NOT_FOUND', `Customer ${req.params.customerId} has no balance for credit entitlement ${e.id}`);
    res.json(view);
  });

  router.get('/credit-entitlements/:entId/balances/:customerId/grants', (req, res) => {
    const e = entitlementOr404(req.params.entId);
    const customer = customerOr404(req.params.customerId);
    const status = req.query.status;
    if (status !== undefined && status !== 'active' && status !== 'expired' && status !== 'depleted') {
      throw new DodoApiError(422, 'INVALID_QUERY_PARAMETERS', 'status must be one of active, expired, depleted');
    }
    // Oldest first: the order debits consume them in.
    const grants = state()
      .grants.filter((g) => g.credit_entitlement_id === e.id && g.customer_id === customer.customer_id)
      .filter((g) => !status || grantStatus(g) === status)
      .map((g) => grantView(state(), g));
    res.json(paginate(grants, parsePage(req.query)));
  });

  router.get('/credit-entitlements/:entId/balances/:customerId/ledger', (req, res) => {
    const e = entitlementOr404(req.params.entId);
    const customer = customerOr404(req.params.customerId);
    const type = typeof req.query.transaction_type === 'string' && req.query.transaction_type ? req.query.transaction_type : null;
    const start = parseDateQuery(req.query, 'start_date');
    const end = parseDateQuery(req.query, 'end_date');
    const page = parsePage(req.query);
    const entries = state()
      .ledger.filter((l) => l.credit_entitlement_id === e.id && l.customer_id === customer.customer_id)
      .filter((l) => !type || l.transaction_type === type)
      .filter((l) => (start === null || Date.parse(l.created_at) >= start) && (end === null || Date.parse(l.created_at) <= end));
    // Newest first, like a statement.
    res.json(paginate(entries.slice().reverse().map(ledgerEntryView), page));
  });

  router.post('/credit-entitlements/:entId/balances/:customerId/ledger-entries', (req, res) => {
    const body = parseBody(createLedgerEntryBody, req.body);
    const e = entitlementOr404(req.params.entId);
    const customer = customerOr404(req.params.customerId);
    const amount = parseAmount(body.amount, e.precision);
    if (!amount.ok) throw new DodoApiError(400, 'INVALID_AMOUNT', amount.message);
    if (body.entry_type === 'credit' && body.expires_at && Date.parse(body.expires_at) <= clock.now().getTime()) {
      throw new DodoApiError(400, 'INVALID_EXPIRY', 'expires_at must be in the future');
    }
    const key = body.idempotency_key ?? null;
    if (key) {
      const existing = state().idempotency[`${e.id}:${customer.customer_id}:${key}`];
      if (existing) {
        throw new DodoApiError(409, 'CONFLICT', `Idempotency key "${key}" was already used for ledger entry ${existing}`);
      }
    }
    // From here to the response nothing awaits: the check and the write are one synchronous step.
    const entry =
      body.entry_type === 'credit'
        ? ledger.credit({
            entitlement: e,
            customerId: customer.customer_id,
            units: amount.units,
            sourceType: 'api',
            sourceId: null,
            expiresAt: body.expires_at ? new Date(body.expires_at).toISOString() : null,
            transactionType: 'credit_added',
            description: body.reason ?? null,
            metadata: body.metadata ?? {},
            referenceType: null,
            referenceId: null,
            idempotencyKey: key,
          })
        : (() => {
            const result = ledger.debit({
              entitlement: e,
              customerId: customer.customer_id,
              units: amount.units,
              transactionType: 'credit_deducted',
              description: body.reason ?? null,
              metadata: body.metadata ?? {},
              idempotencyKey: key,
            });
            if (!result.ok) {
              throw new DodoApiError(
                400,
                'INSUFFICIENT_CREDITS',
                `Insufficient credit balance: ${formatAmount(result.availableUnits, e.precision)} available, ${body.amount} requested`,
              );
            }
            return result.entry;
          })();
    const response: BalanceCreateLedgerEntryResponse = {
      id: entry.id,
      customer_id: entry.customer_id,
      credit_entitlement_id: entry.credit_entitlement_id,
      entry_type: entry.entry_type,
      amount: entry.amount,
      is_credit: entry.is_credit,
      balance_before: entry.balance_before,
      balance_after: entry.balance_after,
      overage_before: entry.overage_before,
      overage_after: entry.overage_after,
      grant_id: entry.grant_id ?? null,
      reason: entry.description ?? null,
      metadata: entry.metadata,
      created_at: entry.created_at,
    };
    res.status(201).json(response);
  });

  // ---- Customers ------------------------------------------------------------------------------

  router.post('/customers', (req, res) => {
    const body = parseBody(createCustomerBody, req.body);
    // One customer per email, as checkout's "find or create by email" relies on.
    const existing = Object.values(state().customers).find((c) => c.email.toLowerCase() === body.email.toLowerCase());
    if (existing) {
      res.json(existing);
      return;
    }
    const customer = billing.findOrCreateCustomer(body);
    customer.metadata = body.metadata ?? {};
    store.save();
    res.json(customer);
  });

  router.get('/customers', (req, res) => {
    const page = parsePage(req.query);
    const email = typeof req.query.email === 'string' && req.query.email ? req.query.email.toLowerCase() : null;
    const name = typeof req.query.name === 'string' && req.query.name ? req.query.name.toLowerCase() : null;
    const gte = parseDateQuery(req.query, 'created_at_gte');
    const lte = parseDateQuery(req.query, 'created_at_lte');
    const rows = Object.values(state().customers).filter(
      (c) =>
        (!email || c.email.toLowerCase() === email) &&
        (!name || c.name.toLowerCase().includes(name)) &&
        (gte === null || Date.parse(c.created_at) >= gte) &&
        (lte === null || Date.parse(c.created_at) <= lte),
    );
    res.json(paginate(newestFirst(rows), page));
  });

  router.get('/customers/:id', (req, res) => {
    res.json(customerOr404(req.params.id));
  });

  router.patch('/customers/:id', (req, res) => {
    const customer = customerOr404(req.params.id);
    const body = parseBody(patchCustomerBody, req.body);
    if (body.email) customer.email = body.email;
    if (body.name) customer.name = body.name;
    if (body.phone_number !== undefined) customer.phone_number = body.phone_number;
    if (body.metadata) customer.metadata = body.metadata;
    store.save();
    res.json(customer);
  });

  router.get('/customers/:id/credit-entitlements', (req, res) => {
    const customer = customerOr404(req.params.id);
    const items: CustomerListCreditEntitlementsResponse['items'] = [];
    for (const b of Object.values(state().balances)) {
      const e = state().entitlements[b.credit_entitlement_id];
      if (b.customer_id !== customer.customer_id || !e || e.deleted_at) continue;
      const view = balanceView(state(), e.id, customer.customer_id)!;
      items.push({ credit_entitlement_id: e.id, name: e.name, unit: e.unit, description: e.description ?? null, balance: view.balance, overage: view.overage });
    }
    res.json({ items });
  });

  // ---- Products -------------------------------------------------------------------------------

  const toAttachments = (input: z.infer<typeof createProductBody>['credit_entitlements']): StoredAttachment[] =>
    (input ?? []).map((a) => {
      const e = state().entitlements[a.credit_entitlement_id];
      if (!e || e.deleted_at) throw new DodoApiError(422, 'CREDIT_ENTITLEMENT_NOT_FOUND', `Credit entitlement ${a.credit_entitlement_id} not found`);
      const credits = parseAmount(a.credits_amount, e.precision);
      if (!credits.ok) throw new DodoApiError(422, 'INVALID_CREDITS_AMOUNT', `credits_amount: ${credits.message}`);
      return { ...a, id: randomUUID(), credits_amount: formatAmount(credits.units, e.precision) } as StoredAttachment;
    });

  const normalizePrice = (price: z.infer<typeof createProductBody>['price']): Price =>
    // Currency is checked for shape (three capitals) only; the cast narrows it to the SDK's enum.
    (price.type === 'one_time_price'
      ? { discount: 0, purchasing_power_parity: false, pay_what_you_want: false, ...price }
      : { discount: 0, purchasing_power_parity: false, trial_period_days: 0, ...price }) as Price;

  router.post('/products', (req, res) => {
    const body = parseBody(createProductBody, req.body);
    const now = clock.nowIso();
    const product: StoredProduct = {
      product_id: newId('pdt'),
      name: body.name,
      description: body.description ?? null,
      price: normalizePrice(body.price),
      tax_category: body.tax_category,
      metadata: body.metadata ?? {},
      attachments: toAttachments(body.credit_entitlements),
      archived: false,
      created_at: now,
      updated_at: now,
    };
    state().products[product.product_id] = product;
    store.save();
    res.json(productView(state(), product));
  });

  router.get('/products', (req, res) => {
    const page = parsePage(req.query);
    const archived = parseBoolQuery(req.query, 'archived') ?? false;
    const recurring = parseBoolQuery(req.query, 'recurring');
    const rows = Object.values(state().products).filter(
      (p) => p.archived === archived && (recurring === null || (p.price.type === 'recurring_price') === recurring),
    );
    res.json(paginate(newestFirst(rows).map((p) => productListItem(state(), p)), page));
  });

  router.get('/products/:id', (req, res) => {
    res.json(productView(state(), productOr404(req.params.id)));
  });

  router.patch('/products/:id', (req, res) => {
    const product = productOr404(req.params.id);
    const body = parseBody(patchProductBody, req.body);
    if (body.name) product.name = body.name;
    if (body.description !== undefined) product.description = body.description;
    if (body.tax_category) product.tax_category = body.tax_category;
    if (body.price) product.price = normalizePrice(body.price);
    if (body.metadata) product.metadata = body.metadata;
    if (body.credit_entitlements) product.attachments = toAttachments(body.credit_entitlements);
    product.updated_at = clock.nowIso();
    store.save();
    res.status(200).end();
  });

  router.delete('/products/:id', (req, res) => {
    const product = productOr404(req.params.id);
    if (product.archived) throw new DodoApiError(410, 'GONE', `Product ${product.product_id} is already archived`);
    // Dodo "deletes" a product by archiving it: existing subscriptions keep renewing.
    product.archived = true;
    product.updated_at = clock.nowIso();
    store.save();
    res.status(200).end();
  });

  router.use(notFoundRoute);
  router.use(createErrorHandler(deps.log));
  return router;
}

