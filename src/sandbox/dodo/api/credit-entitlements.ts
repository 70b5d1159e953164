import type { Request, Response, Router } from 'express';
import { DodoApiError } from '../errors';
import { newId } from '../ids';
import { entitlementView } from '../serialize';
import type { StoredEntitlement } from '../state';
import { createEntitlementBody, paginate, parseBody, parseBoolQuery, parsePage, patchEntitlementBody } from '../validation';
import { entitlementOr404, newestFirst, type ApiContext } from './context';

/** Credit entitlements: create, list (`?deleted=`), read, update, delete (a second delete is 410). */
export function addCreditEntitlementRoutes(router: Router, ctx: ApiContext): void {
  router.post('/credit-entitlements', (req, res) => createEntitlement(ctx, req, res));
  router.get('/credit-entitlements', (req, res) => listEntitlements(ctx, req, res));
  router.get('/credit-entitlements/:id', (req, res) => {
    res.json(entitlementView(entitlementOr404(ctx.store.data, req.params.id)));
  });
  router.patch('/credit-entitlements/:id', (req, res) => updateEntitlement(ctx, req, res));
  router.delete('/credit-entitlements/:id', (req, res) => deleteEntitlement(ctx, req, res));
}

function createEntitlement(ctx: ApiContext, req: Request, res: Response): void {
  const state = ctx.store.data;
  const body = parseBody(createEntitlementBody, req.body);
  const now = ctx.clock.nowIso();
  const e: StoredEntitlement = {
    id: newId('cde'),
    business_id: state.businessId,
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
  state.entitlements[e.id] = e;
  ctx.store.save();
  res.status(201).json(entitlementView(e));
}

function listEntitlements(ctx: ApiContext, req: Request, res: Response): void {
  const deleted = parseBoolQuery(req.query, 'deleted') ?? false;
  const all = Object.values(ctx.store.data.entitlements).filter((e) => Boolean(e.deleted_at) === deleted);
  res.json(paginate(newestFirst(all).map(entitlementView), parsePage(req.query)));
}

function updateEntitlement(ctx: ApiContext, req: Request<{ id: string }>, res: Response): void {
  const e = entitlementOr404(ctx.store.data, req.params.id);
  const body = parseBody(patchEntitlementBody, req.body);
  for (const [key, value] of Object.entries(body)) {
    if (value === undefined) continue;
    // Required fields stay as they were when the patch sends null for them.
    if (value === null && ['name', 'unit', 'rollover_enabled', 'overage_enabled', 'overage_behavior'].includes(key)) continue;
    (e as unknown as Record<string, unknown>)[key] = value;
  }
  e.updated_at = ctx.clock.nowIso();
  ctx.store.save();
  res.status(200).end();
}

function deleteEntitlement(ctx: ApiContext, req: Request<{ id: string }>, res: Response): void {
  const e = ctx.store.data.entitlements[req.params.id];
  if (!e) throw new DodoApiError(404, 'NOT_FOUND', `Credit entitlement ${req.params.id} not found`);
  if (e.deleted_at) throw new DodoApiError(410, 'GONE', `Credit entitlement ${req.params.id} is already deleted`);
  e.deleted_at = ctx.clock.nowIso();
  ctx.store.save();
  res.status(200).end();
}
