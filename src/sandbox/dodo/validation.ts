import { z } from 'zod';
import { DodoApiError } from './errors';

/**
 * Request shapes, checked like Dodo's JSON extractor does: a missing field or a wrong type is a
 * 422 before any handler runs. Unknown fields are ignored (the SDK sends many optional ones).
 */

const metadata = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
const interval = z.enum(['Day', 'Week', 'Month', 'Year']);
const overageBehavior = z.enum(['forgive_at_reset', 'invoice_at_billing', 'carry_deficit', 'carry_deficit_auto_repay']);
const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD');
const int32 = z.number().int().min(-2147483648).max(2147483647);
const dateTime = z.iso.datetime({ offset: true });

export const createEntitlementBody = z.object({
  name: z.string().min(1),
  unit: z.string().min(1),
  precision: int32.min(0).max(10),
  rollover_enabled: z.boolean(),
  overage_enabled: z.boolean(),
  currency: currency.nullish(),
  description: z.string().nullish(),
  expires_after_days: int32.min(1).nullish(),
  max_rollover_count: int32.nullish(),
  overage_behavior: overageBehavior.nullish(),
  overage_limit: z.number().int().nullish(),
  price_per_unit: z.string().nullish(),
  rollover_percentage: int32.min(0).max(100).nullish(),
  rollover_timeframe_count: int32.nullish(),
  rollover_timeframe_interval: interval.nullish(),
});

export const patchEntitlementBody = createEntitlementBody
  .omit({ precision: true })
  .partial()
  .extend({
    name: z.string().min(1).nullish(),
    unit: z.string().min(1).nullish(),
    rollover_enabled: z.boolean().nullish(),
    overage_enabled: z.boolean().nullish(),
  });

const oneTimePrice = z.object({
  type: z.literal('one_time_price'),
  price: int32.min(0),
  currency,
  discount: z.number().int().min(0).max(100).optional(),
  purchasing_power_parity: z.boolean().optional(),
  pay_what_you_want: z.boolean().optional(),
  suggested_price: int32.nullish(),
  tax_inclusive: z.boolean().nullish(),
});

const recurringPrice = z.object({
  type: z.literal('recurring_price'),
  price: int32.min(0),
  currency,
  discount: z.number().int().min(0).max(100).optional(),
  purchasing_power_parity: z.boolean().optional(),
  payment_frequency_count: int32.min(1),
  payment_frequency_interval: interval,
  subscription_period_count: int32.min(1),
  subscription_period_interval: interval,
  tax_inclusive: z.boolean().nullish(),
  trial_period_days: int32.min(0).optional(),
});

export const attachCreditEntitlement = z.object({
  credit_entitlement_id: z.string().min(1),
  credits_amount: z.string().min(1),
  currency: currency.nullish(),
  expires_after_days: int32.min(1).nullish(),
  low_balance_threshold_percent: int32.min(0).max(100).nullish(),
  max_rollover_count: int32.nullish(),
  overage_behavior: overageBehavior.nullish(),
  overage_enabled: z.boolean().nullish(),
  overage_limit: z.string().nullish(),
  price_per_unit: z.string().nullish(),
  proration_behavior: z.enum(['prorate', 'no_prorate']).nullish(),
  rollover_enabled: z.boolean().nullish(),
  rollover_percentage: int32.min(0).max(100).nullish(),
  rollover_timeframe_count: int32.nullish(),
  rollover_timeframe_interval: interval.nullish(),
  trial_credits: z.string().nullish(),
  trial_credits_expire_after_trial: z.boolean().nullish(),
});

export const createProductBody = z.object({
  name: z.string().min(1),
  tax_category: z.enum(['digital_products', 'saas', 'e_book', 'edtech', 'live_tutoring']),
  // Usage-based prices are not supported by the sandbox; they fail here as an unknown variant.
  price: z.discriminatedUnion('type', [oneTimePrice, recurringPrice]),
  description: z.string().nullish(),
  metadata: metadata.optional(),
  credit_entitlements: z.array(attachCreditEntitlement).max(5).nullish(),
});

export const patchProductBody = z.object({
  name: z.string().min(1).nullish(),
  description: z.string().nullish(),
  tax_category: createProductBody.shape.tax_category.nullish(),
  price: createProductBody.shape.price.nullish(),
  metadata: metadata.nullish(),
  credit_entitlements: z.array(attachCreditEntitlement).max(5).nullish(),
});

export const createCustomerBody = z.object({
  email: z.string().email(),
  name: z.string().min(1),
  phone_number: z.string().nullish(),
  metadata: metadata.optional(),
});

export const patchCustomerBody = z.object({
  email: z.string().email().nullish(),
  name: z.string().min(1).nullish(),
  phone_number: z.string().nullish(),
  metadata: metadata.nullish(),
});

export const createCheckoutBody = z.object({
  product_cart: z
    .array(
      z.object({
        product_id: z.string().min(1),
        quantity: int32.min(1),
      }),
    )
    .min(1),
  customer: z
    .union([
      z.object({ customer_id: z.string().min(1) }),
      z.object({ email: z.string().email(), name: z.string().nullish(), phone_number: z.string().nullish() }),
    ])
    .nullish(),
  // The page redirects there after paying: only a web address, never javascript: or data:.
  return_url: z.url({ protocol: /^https?$/, error: 'return_url must be an http or https URL' }).nullish(),
  metadata: metadata.nullish(),
  billing_address: z
    .object({
      country: z.string().regex(/^[A-Z]{2}$/),
      city: z.string().nullish(),
      state: z.string().nullish(),
      street: z.string().nullish(),
      zipcode: z.string().nullish(),
    })
    .nullish(),
});

export const createLedgerEntryBody = z.object({
  entry_type: z.enum(['credit', 'debit']),
  amount: z.string(),
  expires_at: dateTime.nullish(),
  idempotency_key: z.string().min(1).max(255).nullish(),
  metadata: metadata.nullish(),
  reason: z.string().nullish(),
});

/** Parses a body or throws Dodo's 422. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const detail = result.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`)
    .join('; ');
  throw new DodoApiError(422, 'INVALID_REQUEST_BODY', `Failed to deserialize the JSON body into the target type: ${detail}`);
}

/** Dodo's zero-based page_number / page_size (default 10, capped at 100); bad values are a 422. */
export function parsePage(query: Record<string, unknown>): { pageNumber: number; pageSize: number } {
  const read = (name: string, fallback: number) => {
    const raw = query[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (typeof raw !== 'string' || !Number.isInteger(n) || n < 0) {
      throw new DodoApiError(422, 'INVALID_QUERY_PARAMETERS', `${name} must be a non-negative integer`);
    }
    return n;
  };
  return { pageNumber: read('page_number', 0), pageSize: Math.min(read('page_size', 10), 100) };
}

/** One page of `items` (the SDK stops auto-paginating at the first empty page). */
export function paginate<T>(items: T[], page: { pageNumber: number; pageSize: number }): { items: T[] } {
  const start = page.pageNumber * page.pageSize;
  return { items: items.slice(start, start + page.pageSize) };
}

/** Reads an optional ISO date-time query parameter, or throws 422. */
export function parseDateQuery(query: Record<string, unknown>, name: string): number | null {
  const raw = query[name];
  if (raw === undefined || raw === '') return null;
  const t = typeof raw === 'string' ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(t)) throw new DodoApiError(422, 'INVALID_QUERY_PARAMETERS', `${name} must be an ISO 8601 date-time`);
  return t;
}

/** Reads an optional boolean query parameter ("true"/"false"), or throws 422. */
export function parseBoolQuery(query: Record<string, unknown>, name: string): boolean | null {
  const raw = query[name];
  if (raw === undefined || raw === '') return null;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new DodoApiError(422, 'INVALID_QUERY_PARAMETERS', `${name} must be true or false`);
}
