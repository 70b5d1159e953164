import type { Request, Response, Router } from 'express';
import type { BalanceCreateLedgerEntryResponse } from 'dodopayments/resources/credit-entitlements/balances';
import type { z } from 'zod';
import { formatAmount, parseAmount } from '../amounts';
import { DodoApiError } from '../errors';
import { balanceView, grantStatus, grantView, ledgerEntryView } from '../serialize';
import type { StoredEntitlement, StoredLedgerEntry } from '../state';
import { createLedgerEntryBody, paginate, parseBody, parseDateQuery, parsePage } from '../validation';
import { customerOr404, entitlementOr404, newestFirst, type ApiContext } from './context';

type BalanceParams = { entId: string; customerId: string };

/** A customer's balance of one entitlement: the balances, their grants, the ledger, and ledger entries. */
export function addBalanceRoutes(router: Router, ctx: ApiContext): void {
  router.get('/credit-entitlements/:entId/balances', (req, res) => listBalances(ctx, req, res));
  router.get('/credit-entitlements/:entId/balances/:customerId', (req, res) => getBalance(ctx, req, res));
  router.get('/credit-entitlements/:entId/balances/:customerId/grants', (req, res) => listGrants(ctx, req, res));
  router.get('/credit-entitlements/:entId/balances/:customerId/ledger', (req, res) => listLedger(ctx, req, res));
  router.post('/credit-entitlements/:entId/balances/:customerId/ledger-entries', (req, res) => createLedgerEntry(ctx, req, res));
}

function listBalances(ctx: ApiContext, req: Request<{ entId: string }>, res: Response): void {
  const state = ctx.store.data;
  const e = entitlementOr404(state, req.params.entId);
  const customerId = typeof req.query.customer_id === 'string' ? req.query.customer_id : null;
  const rows = Object.values(state.balances).filter((b) => b.credit_entitlement_id === e.id && (!customerId || b.customer_id === customerId));
  const views = newestFirst(rows).map((b) => balanceView(state, e.id, b.customer_id)!);
  res.json(paginate(views, parsePage(req.query)));
}

function getBalance(ctx: ApiContext, req: Request<BalanceParams>, res: Response): void {
  const state = ctx.store.data;
  const e = entitlementOr404(state, req.params.entId);
  customerOr404(state, req.params.customerId);
  const view = balanceView(state, e.id, req.params.customerId);
  if (!view) throw new DodoApiError(404, 'NOT_FOUND', `Customer ${req.params.customerId} has no balance for credit entitlement ${e.id}`);
  res.json(view);
}

function listGrants(ctx: ApiContext, req: Request<BalanceParams>, res: Response): void {
  const state = ctx.store.data;
  const e = entitlementOr404(state, req.params.entId);
  const customer = customerOr404(state, req.params.customerId);
  const status = req.query.status;
  if (status !== undefined && status !== 'active' && status !== 'expired' && status !== 'depleted') {
    throw new DodoApiError(422, 'INVALID_QUERY_PARAMETERS', 'status must be one of active, expired, depleted');
  }
  // Oldest first: the order debits consume them in.
  const grants = state.grants
    .filter((g) => g.credit_entitlement_id === e.id && g.customer_id === customer.customer_id)
    .filter((g) => !status || grantStatus(g) === status)
    .map((g) => grantView(state, g));
  res.json(paginate(grants, parsePage(req.query)));
}

function listLedger(ctx: ApiContext, req: Request<BalanceParams>, res: Response): void {
  const state = ctx.store.data;
  const e = entitlementOr404(state, req.params.entId);
  const customer = customerOr404(state, req.params.customerId);
  const type = typeof req.query.transaction_type === 'string' && req.query.transaction_type ? req.query.transaction_type : null;
  const start = parseDateQuery(req.query, 'start_date');
  const end = parseDateQuery(req.query, 'end_date');
  const page = parsePage(req.query);
  const entries = state.ledger
    .filter((l) => l.credit_entitlement_id === e.id && l.customer_id === customer.customer_id)
    .filter((l) => !type || l.transaction_type === type)
    .filter((l) => (start === null || Date.parse(l.created_at) >= start) && (end === null || Date.parse(l.created_at) <= end));
  // Newest first, like a statement.
  res.json(paginate(entries.slice().reverse().map(ledgerEntryView), page));
}

function createLedgerEntry(ctx: ApiContext, req: Request<BalanceParams>, res: Response): void {
  const state = ctx.store.data;
  const body = parseBody(createLedgerEntryBody, req.body);
  const e = entitlementOr404(state, req.params.entId);
  const customer = customerOr404(state, req.params.customerId);
  const amount = parseAmount(body.amount, e.precision);
  if (!amount.ok) throw new DodoApiError(400, 'INVALID_AMOUNT', amount.message);
  if (body.entry_type === 'credit' && body.expires_at && Date.parse(body.expires_at) <= ctx.clock.now().getTime()) {
    throw new DodoApiError(400, 'INVALID_EXPIRY', 'expires_at must be in the future');
  }
  const key = body.idempotency_key ?? null;
  if (key) {
    const existing = state.idempotency[`${e.id}:${customer.customer_id}:${key}`];
    if (existing) {
      throw new DodoApiError(409, 'CONFLICT', `Idempotency key "${key}" was already used for ledger entry ${existing}`);
    }
  }
  // From here to the response nothing awaits: the check and the write are one synchronous step.
  const entry =
    body.entry_type === 'credit'
      ? creditFromApi(ctx, e, customer.customer_id, amount.units, body, key)
      : debitFromApi(ctx, e, customer.customer_id, amount.units, body, key);
  res.status(201).json(ledgerEntryResponse(entry));
}

type LedgerEntryBody = z.infer<typeof createLedgerEntryBody>;

/** An API credit: a new grant of source `api`, announced as credit.added. */
function creditFromApi(
  ctx: ApiContext,
  e: StoredEntitlement,
  customerId: string,
  units: number,
  body: LedgerEntryBody,
  key: string | null,
): StoredLedgerEntry {
  return ctx.ledger.credit({
    entitlement: e,
    customerId,
    units,
    sourceType: 'api',
    sourceId: null,
    expiresAt: body.expires_at ? new Date(body.expires_at).toISOString() : null,
    transactionType: 'credit_added',
    description: body.reason ?? null,
    metadata: body.metadata ?? {},
    referenceType: null,
    referenceId: null,
    idempotencyKey: key,
  });
}

/** An API debit, FIFO over the grants; a short balance is 400 INSUFFICIENT_CREDITS and changes nothing. */
function debitFromApi(
  ctx: ApiContext,
  e: StoredEntitlement,
  customerId: string,
  units: number,
  body: LedgerEntryBody,
  key: string | null,
): StoredLedgerEntry {
  const result = ctx.ledger.debit({
    entitlement: e,
    customerId,
    units,
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
}

function ledgerEntryResponse(entry: StoredLedgerEntry): BalanceCreateLedgerEntryResponse {
  return {
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
}
