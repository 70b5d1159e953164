import type { Request, Response, Router } from 'express';
import type { CustomerListCreditEntitlementsResponse } from 'dodopayments/resources/customers/customers';
import { balanceView } from '../serialize';
import { createCustomerBody, paginate, parseBody, parseDateQuery, parsePage, patchCustomerBody } from '../validation';
import { customerOr404, newestFirst, type ApiContext } from './context';

/** Customers: create (one per email), list with filters, read, update, and a customer's entitlements. */
export function addCustomerRoutes(router: Router, ctx: ApiContext): void {
  router.post('/customers', (req, res) => createCustomer(ctx, req, res));
  router.get('/customers', (req, res) => listCustomers(ctx, req, res));
  router.get('/customers/:id', (req, res) => {
    res.json(customerOr404(ctx.store.data, req.params.id));
  });
  router.patch('/customers/:id', (req, res) => updateCustomer(ctx, req, res));
  router.get('/customers/:id/credit-entitlements', (req, res) => listCustomerEntitlements(ctx, req, res));
}

function createCustomer(ctx: ApiContext, req: Request, res: Response): void {
  const body = parseBody(createCustomerBody, req.body);
  // One customer per email, as checkout's "find or create by email" relies on.
  const existing = Object.values(ctx.store.data.customers).find((c) => c.email.toLowerCase() === body.email.toLowerCase());
  if (existing) {
    res.json(existing);
    return;
  }
  const customer = ctx.billing.findOrCreateCustomer(body);
  customer.metadata = body.metadata ?? {};
  ctx.store.save();
  res.json(customer);
}

function listCustomers(ctx: ApiContext, req: Request, res: Response): void {
  const page = parsePage(req.query);
  const email = typeof req.query.email === 'string' && req.query.email ? req.query.email.toLowerCase() : null;
  const name = typeof req.query.name === 'string' && req.query.name ? req.query.name.toLowerCase() : null;
  const gte = parseDateQuery(req.query, 'created_at_gte');
  const lte = parseDateQuery(req.query, 'created_at_lte');
  const rows = Object.values(ctx.store.data.customers).filter(
    (c) =>
      (!email || c.email.toLowerCase() === email) &&
      (!name || c.name.toLowerCase().includes(name)) &&
      (gte === null || Date.parse(c.created_at) >= gte) &&
      (lte === null || Date.parse(c.created_at) <= lte),
  );
  res.json(paginate(newestFirst(rows), page));
}

function updateCustomer(ctx: ApiContext, req: Request<{ id: string }>, res: Response): void {
  const customer = customerOr404(ctx.store.data, req.params.id);
  const body = parseBody(patchCustomerBody, req.body);
  if (body.email) customer.email = body.email;
  if (body.name) customer.name = body.name;
  if (body.phone_number !== undefined) customer.phone_number = body.phone_number;
  if (body.metadata) customer.metadata = body.metadata;
  ctx.store.save();
  res.json(customer);
}

function listCustomerEntitlements(ctx: ApiContext, req: Request<{ id: string }>, res: Response): void {
  const state = ctx.store.data;
  const customer = customerOr404(state, req.params.id);
  const items: CustomerListCreditEntitlementsResponse['items'] = [];
  for (const b of Object.values(state.balances)) {
    const e = state.entitlements[b.credit_entitlement_id];
    if (b.customer_id !== customer.customer_id || !e || e.deleted_at) continue;
    const view = balanceView(state, e.id, customer.customer_id)!;
    items.push({
      credit_entitlement_id: e.id,
      name: e.name,
      unit: e.unit,
      description: e.description ?? null,
      balance: view.balance,
      overage: view.overage,
    });
  }
  res.json({ items });
}
