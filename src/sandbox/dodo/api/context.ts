import type { Customer } from 'dodopayments/resources/customers/customers';
import type { JsonStore } from '../../../lib/json-store';
import type { SandboxBilling } from '../billing';
import type { SandboxClock } from '../clock';
import type { CreditLedger } from '../credit-ledger';
import { DodoApiError } from '../errors';
import type { DodoState, StoredEntitlement, StoredProduct } from '../state';

/** What every resource's routes work with: the durable state, the clock, the ledger and billing. */
export interface ApiContext {
  store: JsonStore<DodoState>;
  clock: SandboxClock;
  ledger: CreditLedger;
  billing: SandboxBilling;
  /** The server's public origin, for the checkout URL a new session answers with. */
  publicUrl: string;
  checkoutPath: string;
}

/** A live credit entitlement, or 404 (a deleted one is not found either). */
export function entitlementOr404(state: DodoState, id: string): StoredEntitlement {
  const e = state.entitlements[id];
  if (!e || e.deleted_at) throw new DodoApiError(404, 'NOT_FOUND', `Credit entitlement ${id} not found`);
  return e;
}

/** A customer, or 404. */
export function customerOr404(state: DodoState, id: string): Customer {
  const c = state.customers[id];
  if (!c) throw new DodoApiError(404, 'NOT_FOUND', `Customer ${id} not found`);
  return c;
}

/** A product, archived or not, or 404. */
export function productOr404(state: DodoState, id: string): StoredProduct {
  const p = state.products[id];
  if (!p) throw new DodoApiError(404, 'NOT_FOUND', `Product ${id} not found`);
  return p;
}

/** Newest first by `created_at`; of two created at the same instant, the later-stored one first. */
export function newestFirst<T extends { created_at: string }>(items: T[]): T[] {
  return items
    .map((item, i) => ({ item, i }))
    .sort((a, b) => (a.item.created_at === b.item.created_at ? b.i - a.i : a.item.created_at < b.item.created_at ? 1 : -1))
    .map((x) => x.item);
}
