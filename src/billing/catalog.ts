import type DodoPayments from 'dodopayments';
import type { Catalog } from './billing';

/** The tutorial's catalog, exactly: names, units, prices (in cents) and credit attachments. */
export const CATALOG = {
  entitlement: { name: 'Email Credits', unit: 'email', precision: 0, expiresAfterDays: 30 },
  plan: {
    name: 'MailKit Plan',
    description: '5,000 transactional emails per month.',
    priceCents: 1900,
    credits: 5000,
    lowBalanceThresholdPercent: 20,
  },
  topup: {
    name: 'Email Top-Up Pack',
    description: 'Add 5,000 emails to your MailKit balance instantly.',
    priceCents: 900,
    credits: 5000,
  },
} as const;

/** How many entitlements or products the name search reads at most (a bound, not a page size). */
const MAX_SCAN = 1000;

export interface ProvisionResult extends Catalog {
  /** Which of the three were created now (the rest were found by name). */
  created: Array<'entitlement' | 'plan' | 'topup'>;
}

/** Whichever of the three exist already, found by name (undefined: not there yet). */
export type FoundCatalog = { [K in keyof Catalog]: string | undefined };

/** Looks the tutorial's entitlement and products up by name, creating nothing (`npm run setup -- --dry-run`). */
export async function findCatalog(dodo: DodoPayments): Promise<FoundCatalog> {
  const { entitlement, plan, topup } = CATALOG;
  let entitlementId: string | undefined;
  let scanned = 0;
  for await (const e of dodo.creditEntitlements.list({ page_number: 0, page_size: 100 })) {
    if (e.name === entitlement.name) {
      entitlementId = e.id;
      break;
    }
    if (++scanned >= MAX_SCAN) break;
  }

  const byName = new Map<string, string>();
  scanned = 0;
  for await (const p of dodo.products.list({ page_number: 0, page_size: 100 })) {
    if (!byName.has(p.name ?? '')) byName.set(p.name ?? '', p.product_id);
    if (byName.has(plan.name) && byName.has(topup.name)) break;
    if (++scanned >= MAX_SCAN) break;
  }
  return { creditEntitlementId: entitlementId, planProductId: byName.get(plan.name), topupProductId: byName.get(topup.name) };
}

/**
 * Finds the Email Credits entitlement, the plan and the top-up pack by name, creating the
 * ones that do not exist, through the Dodo API. Running it twice creates nothing new.
 */
export async function ensureCatalog(dodo: DodoPayments): Promise<ProvisionResult> {
  const created: ProvisionResult['created'] = [];
  const { entitlement, plan, topup } = CATALOG;
  const found = await findCatalog(dodo);

  let entitlementId = found.creditEntitlementId;
  if (!entitlementId) {
    const e = await dodo.creditEntitlements.create({
      name: entitlement.name,
      unit: entitlement.unit,
      precision: entitlement.precision,
      expires_after_days: entitlement.expiresAfterDays,
      // The tutorial keeps the simplest CBB flow: no rollover, no overage.
      rollover_enabled: false,
      overage_enabled: false,
    });
    entitlementId = e.id;
    created.push('entitlement');
  }

  let planProductId = found.planProductId;
  if (!planProductId) {
    const p = await dodo.products.create({
      name: plan.name,
      description: plan.description,
      tax_category: 'saas',
      price: {
        type: 'recurring_price',
        price: plan.priceCents,
        currency: 'USD',
        discount: 0,
        purchasing_power_parity: false,
        payment_frequency_count: 1,
        payment_frequency_interval: 'Month',
        subscription_period_count: 1,
        subscription_period_interval: 'Year',
      },
      credit_entitlements: [
        {
          credit_entitlement_id: entitlementId,
          credits_amount: String(plan.credits),
          low_balance_threshold_percent: plan.lowBalanceThresholdPercent,
          expires_after_days: entitlement.expiresAfterDays,
        },
      ],
    });
    planProductId = p.product_id;
    created.push('plan');
  }

  let topupProductId = found.topupProductId;
  if (!topupProductId) {
    const p = await dodo.products.create({
      name: topup.name,
      description: topup.description,
      tax_category: 'saas',
      price: { type: 'one_time_price', price: topup.priceCents, currency: 'USD', discount: 0, purchasing_power_parity: false },
      credit_entitlements: [
        {
          credit_entitlement_id: entitlementId,
          credits_amount: String(topup.credits),
          expires_after_days: entitlement.expiresAfterDays,
        },
      ],
    });
    topupProductId = p.product_id;
    created.push('topup');
  }

  return { creditEntitlementId: entitlementId, planProductId, topupProductId, created };
}
