import { randomUUID } from 'node:crypto';
import type { Request, Response, Router } from 'express';
import type { Price } from 'dodopayments/resources/products/products';
import type { z } from 'zod';
import { formatAmount, parseAmount } from '../amounts';
import { DodoApiError } from '../errors';
import { newId } from '../ids';
import { productListItem, productView } from '../serialize';
import type { DodoState, StoredAttachment, StoredProduct } from '../state';
import { createProductBody, paginate, parseBody, parseBoolQuery, parsePage, patchProductBody } from '../validation';
import { newestFirst, productOr404, type ApiContext } from './context';

/** Products: create, list (`?recurring=`, `?archived=`), read, update, delete (archives; a second one is 410). */
export function addProductRoutes(router: Router, ctx: ApiContext): void {
  router.post('/products', (req, res) => createProduct(ctx, req, res));
  router.get('/products', (req, res) => listProducts(ctx, req, res));
  router.get('/products/:id', (req, res) => {
    res.json(productView(ctx.store.data, productOr404(ctx.store.data, req.params.id)));
  });
  router.patch('/products/:id', (req, res) => updateProduct(ctx, req, res));
  router.delete('/products/:id', (req, res) => archiveProduct(ctx, req, res));
}

function createProduct(ctx: ApiContext, req: Request, res: Response): void {
  const state = ctx.store.data;
  const body = parseBody(createProductBody, req.body);
  const now = ctx.clock.nowIso();
  const product: StoredProduct = {
    product_id: newId('pdt'),
    name: body.name,
    description: body.description ?? null,
    price: normalizePrice(body.price),
    tax_category: body.tax_category,
    metadata: body.metadata ?? {},
    attachments: toAttachments(state, body.credit_entitlements),
    archived: false,
    created_at: now,
    updated_at: now,
  };
  state.products[product.product_id] = product;
  ctx.store.save();
  res.json(productView(state, product));
}

function listProducts(ctx: ApiContext, req: Request, res: Response): void {
  const state = ctx.store.data;
  const page = parsePage(req.query);
  const archived = parseBoolQuery(req.query, 'archived') ?? false;
  const recurring = parseBoolQuery(req.query, 'recurring');
  const rows = Object.values(state.products).filter(
    (p) => p.archived === archived && (recurring === null || (p.price.type === 'recurring_price') === recurring),
  );
  res.json(
    paginate(
      newestFirst(rows).map((p) => productListItem(state, p)),
      page,
    ),
  );
}

function updateProduct(ctx: ApiContext, req: Request<{ id: string }>, res: Response): void {
  const state = ctx.store.data;
  const product = productOr404(state, req.params.id);
  const body = parseBody(patchProductBody, req.body);
  if (body.name) product.name = body.name;
  if (body.description !== undefined) product.description = body.description;
  if (body.tax_category) product.tax_category = body.tax_category;
  if (body.price) product.price = normalizePrice(body.price);
  if (body.metadata) product.metadata = body.metadata;
  if (body.credit_entitlements) product.attachments = toAttachments(state, body.credit_entitlements);
  product.updated_at = ctx.clock.nowIso();
  ctx.store.save();
  res.status(200).end();
}

function archiveProduct(ctx: ApiContext, req: Request<{ id: string }>, res: Response): void {
  const product = productOr404(ctx.store.data, req.params.id);
  if (product.archived) throw new DodoApiError(410, 'GONE', `Product ${product.product_id} is already archived`);
  // Dodo "deletes" a product by archiving it: existing subscriptions keep renewing.
  product.archived = true;
  product.updated_at = ctx.clock.nowIso();
  ctx.store.save();
  res.status(200).end();
}

type ProductBody = z.infer<typeof createProductBody>;

/** Credit entitlement attachments as stored: each entitlement live, `credits_amount` at its precision. */
function toAttachments(state: DodoState, input: ProductBody['credit_entitlements']): StoredAttachment[] {
  return (input ?? []).map((a) => {
    const e = state.entitlements[a.credit_entitlement_id];
    if (!e || e.deleted_at) throw new DodoApiError(422, 'CREDIT_ENTITLEMENT_NOT_FOUND', `Credit entitlement ${a.credit_entitlement_id} not found`);
    const credits = parseAmount(a.credits_amount, e.precision);
    if (!credits.ok) throw new DodoApiError(422, 'INVALID_CREDITS_AMOUNT', `credits_amount: ${credits.message}`);
    return { ...a, id: randomUUID(), credits_amount: formatAmount(credits.units, e.precision) } as StoredAttachment;
  });
}

function normalizePrice(price: ProductBody['price']): Price {
  // Currency is checked for shape (three capitals) only; the cast narrows it to the SDK's enum.
  return (
    price.type === 'one_time_price'
      ? { discount: 0, purchasing_power_parity: false, pay_what_you_want: false, ...price }
      : { discount: 0, purchasing_power_parity: false, trial_period_days: 0, ...price }
  ) as Price;
}
