import type { CreditEntitlement } from 'dodopayments/resources/credit-entitlements/credit-entitlements';
import type { CreditLedgerEntry } from 'dodopayments/resources/credit-entitlements/balances';
import type { Customer } from 'dodopayments/resources/customers/customers';
import type { AttachCreditEntitlement, Price } from 'dodopayments/resources/products/products';
import type { Payment } from 'dodopayments/resources/payments';
import type { Metadata, TaxCategory } from 'dodopayments/resources/misc';
import type { BillingAddress } from 'dodopayments/resources/payments';
import type { StoredDelivery } from '../webhook-delivery';
import { newId } from './ids';

/**
 * The Dodo sandbox's whole durable state: one JSON document (see createJsonStore). Wire-format
 * objects are stored as Dodo returns them where they never change (ledger entries, payments);
 * everything whose view depends on other records (products, grants, subscriptions) is stored as
 * a record and serialized on the way out.
 */
export interface DodoState {
  version: 1;
  /** Sandbox clock = wall clock + this offset (advanceClock moves it). */
  clockOffsetMs: number;
  businessId: string;
  brandId: string;
  /** Insertion counter so "oldest first" never depends on equal timestamps. */
  seq: number;
  entitlements: Record<string, StoredEntitlement>;
  products: Record<string, StoredProduct>;
  customers: Record<string, Customer>;
  sessions: Record<string, StoredSession>;
  payments: Record<string, Payment>;
  subscriptions: Record<string, StoredSubscription>;
  /** Keyed by `${credit_entitlement_id}:${customer_id}`; exists once the customer first got credits. */
  balances: Record<string, StoredBalance>;
  grants: StoredGrant[];
  ledger: StoredLedgerEntry[];
  /** `${credit_entitlement_id}:${customer_id}:${idempotency_key}` → ledger entry id. */
  idempotency: Record<string, string>;
  deliveries: StoredDelivery[];
}

export interface StoredEntitlement extends CreditEntitlement {
  deleted_at: string | null;
}

export interface StoredAttachment extends AttachCreditEntitlement {
  /** The mapping id (a UUID, as the spec's CreditEntitlementMappingResponse.id). */
  id: string;
}

export interface StoredProduct {
  product_id: string;
  name: string;
  description: string | null;
  price: Price;
  tax_category: TaxCategory;
  metadata: Metadata;
  attachments: StoredAttachment[];
  archived: boolean;
  created_at: string;
  updated_at: string;
}

export interface StoredSession {
  id: string;
  created_at: string;
  product_cart: Array<{ product_id: string; quantity: number }>;
  /** Either an existing customer id, or the details of a new one (created or found by email at payment). */
  customer: { customer_id: string } | { email: string; name: string | null; phone_number: string | null } | null;
  return_url: string | null;
  metadata: Metadata;
  billing: BillingAddress;
  status: 'open' | 'paid';
  payment_id: string | null;
  payment_status: 'succeeded' | 'failed' | null;
  customer_id: string | null;
  subscription_id: string | null;
  redirect_url: string | null;
}

export interface StoredSubscription {
  subscription_id: string;
  customer_id: string;
  product_id: string;
  quantity: number;
  status: 'active' | 'cancelled';
  created_at: string;
  previous_billing_date: string;
  next_billing_date: string;
  metadata: Metadata;
  billing: BillingAddress;
  checkout_session_id: string | null;
}

export interface StoredBalance {
  id: string;
  customer_id: string;
  credit_entitlement_id: string;
  created_at: string;
  updated_at: string;
  last_transaction_at: string | null;
  /** True once credit.balance_low fired; cleared when the balance climbs back to the threshold. */
  low_balance_notified: boolean;
}

export interface StoredGrant {
  id: string;
  seq: number;
  customer_id: string;
  credit_entitlement_id: string;
  source_type: 'subscription' | 'one_time' | 'addon' | 'api' | 'rollover';
  source_id: string | null;
  /** Amounts in units of 10^-precision (see amounts.ts). */
  initial_units: number;
  remaining_units: number;
  expires_at: string | null;
  is_expired: boolean;
  metadata: Metadata | null;
  created_at: string;
  updated_at: string;
  /** How often this grant's credits have been rolled over already (0 for a fresh grant; absent in older documents). */
  rollover_count?: number;
  /** The grant this one was rolled over from. */
  parent_grant_id?: string | null;
  /** True once this grant's leftover was carried into a new grant. */
  is_rolled_over?: boolean;
  /** The rollover rule in force when the grant was made (later PATCHes do not change it); null: it simply expires. */
  rollover?: RolloverPolicy | null;
}

/** What happens to a grant's leftover at its expiry when rollover is enabled. */
export interface RolloverPolicy {
  /** Share of the leftover carried over (0-100); the rest expires. */
  percentage: number;
  /** How many times credits may be carried over; at the limit the leftover is forfeited. Null: no limit. */
  max_count: number | null;
  /** How long a rolled-over grant lives; null: `lifetime_days`. */
  timeframe: { count: number; interval: 'Day' | 'Week' | 'Month' | 'Year' } | null;
  /** Lifetime of the grant the policy came with (attachment's or entitlement's expires_after_days); null: never expires. */
  lifetime_days: number | null;
}

export interface StoredLedgerEntry extends CreditLedgerEntry {
  seq: number;
  entry_type: 'credit' | 'debit';
  idempotency_key: string | null;
  /** How a debit (or an expiry) was drawn from grants, oldest first: the FIFO audit trail. */
  allocations: Array<{ grant_id: string; units: number }>;
}

/** A Dodo webhook in the delivery log (the shared deliverer's record). */
export type { StoredDelivery };

/** A fresh, empty sandbox. */
export function initialState(): DodoState {
  return {
    version: 1,
    clockOffsetMs: 0,
    businessId: newId('bus'),
    brandId: newId('brnd'),
    seq: 0,
    entitlements: {},
    products: {},
    customers: {},
    sessions: {},
    payments: {},
    subscriptions: {},
    balances: {},
    grants: [],
    ledger: [],
    idempotency: {},
    deliveries: [],
  };
}

/** Balance record key for one customer in one entitlement. */
export function balanceKey(creditEntitlementId: string, customerId: string): string {
  return `${creditEntitlementId}:${customerId}`;
}
