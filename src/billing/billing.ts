import DodoPayments from 'dodopayments';
import { HttpError } from '../errors';
import { transportCause } from '../lib/vendor-cause';
import { budgetTurns, DODO_WAIT_MS } from '../quotas';

/** The Dodo ids MailKit sells: the Email Credits entitlement, the plan and the top-up pack. */
export interface Catalog {
  creditEntitlementId: string;
  planProductId: string;
  topupProductId: string;
}

/** The tutorial's 402 message, word for word, and what a send costs (one credit per recipient). */
export const NO_CREDITS_MESSAGE =
  'No email credits remaining. Buy a top-up pack or upgrade your plan. Each email costs one credit per recipient (to, cc and bcc).';

/** Thrown by reserve when Dodo refuses the debit: the balance is short (overage is disabled). */
export class InsufficientCredits extends HttpError {
  constructor() {
    super(402, 'insufficient_credits', NO_CREDITS_MESSAGE);
  }
}

/**
 * Dodo could not be reached or did not answer, so whether a write happened is unknown.
 * Callers decide: a debit that may have happened is resolved by retrying with its key.
 */
export class DodoUnavailable extends HttpError {
  override name = 'DodoUnavailable';
  constructor(
    message = 'Our billing provider is not answering right now. Retry in a few seconds.',
    retryAfter = 5,
    /** What happened, for the log line (never for the customer): where MailKit called, and why it failed. */
    readonly upstream?: UpstreamFailure,
  ) {
    super(503, 'billing_unavailable', message, { 'Retry-After': String(retryAfter) });
  }
}

/** A vendor call that failed, as the log shows it: the vendor, the host called and the cause. */
export interface UpstreamFailure {
  vendor: 'Dodo' | 'Resend';
  host: string;
  /** "did not answer: ECONNREFUSED 127.0.0.1:9", "answered 502"… */
  cause: string;
}

/** A Dodo SDK error as an UpstreamFailure: its status when Dodo answered, else the transport cause. */
function dodoFailure(err: unknown, host: string): UpstreamFailure {
  const status = err instanceof DodoPayments.APIError ? err.status : undefined;
  return { vendor: 'Dodo', host, cause: status ? `answered ${status}` : `did not answer: ${transportCause(err) ?? 'no answer'}` };
}

/** The Dodo side of MailKit: checkout links, balance, debits and refunds, customer lookup. */
export interface Billing {
  readonly catalog: Catalog;
  subscribeCheckout(customer: { email: string; name: string }): Promise<string>;
  topupCheckout(customerId: string): Promise<string>;
  /** Dodo's live balance (a decimal string); "0" for a customer who never had credits. */
  balance(customerId: string): Promise<string>;
  /** The same read, with Dodo's time of its newest ledger entry (null: none). */
  balanceRead(customerId: string): Promise<{ balance: string; lastTransactionAt: string | null }>;
  /**
   * Debits `amount` credits under `key` (a settlement): Dodo's balance right after it, or
   * 'exists' when Dodo has an entry with that key already (a retry of an answer lost).
   */
  debit(
    customerId: string,
    amount: number,
    key: string,
    reason: string,
    metadata: Record<string, string>,
  ): Promise<{ balanceAfter: string; createdAt: string } | 'exists'>;
  /** Debits `amount` credits under `key`. 'already' when Dodo has an entry with that key (a retry). */
  reserve(customerId: string, amount: number, key: string, reason: string, extra?: LedgerExtra): Promise<'reserved' | 'already'>;
  /** Credits `amount` back under `key`; a repeat with the same key is a no-op. */
  refund(customerId: string, amount: number, key: string, reason: string, extra?: LedgerExtra): Promise<void>;
  /** The customer's credit grants (what Dodo spends first to last, each with its expiry). */
  grants(customerId: string): Promise<CreditGrant[]>;
  customer(customerId: string): Promise<{ email: string; name: string }>;
}

/** What a ledger write may carry besides its amount and reason. */
export interface LedgerExtra {
  /** Echoed on the ledger entry (MailKit finds its own settlements by it in Dodo's webhooks). */
  metadata?: Record<string, string>;
  /** A credit only: when the credits it adds expire (ISO 8601). */
  expiresAt?: string | null;
}

/** One of a customer's credit grants, as far as MailKit reads them. */
export interface CreditGrant {
  id: string;
  createdAt: string;
  expiresAt: string | null;
  isExpired: boolean;
  initialAmount: number;
  remainingAmount: number;
}

export function createBilling(opts: {
  dodo: DodoPayments;
  catalog: Catalog;
  baseUrl: string;
  /** Retries of a ledger write that was refused (429) or unanswered (default 2, as the SDK's own). */
  writeRetries?: number;
  sleep?: (ms: number) => Promise<void>;
}): Billing {
  const { dodo, catalog, baseUrl } = opts;
  const writeRetries = opts.writeRetries ?? 2;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const ledgerEntries = dodo.creditEntitlements.balances;
  const host = new URL(dodo.baseURL).host;

  /**
   * One ledger entry under an idempotency key: debits reserve credits, credits give them back.
   * The SDK's own retries are off here and done below instead, because a refusal only means
   * "nothing was done" when no earlier try under the same key went unanswered: after a
   * timeout, a 429 or a 5xx proves nothing, and only a definite answer (201, 409 for the key,
   * 400) settles it. Such a write ends in DodoUnavailable (in doubt), never in a refusal.
   */
  const ledgerEntry = async (
    customerId: string,
    entryType: 'debit' | 'credit',
    amount: number,
    key: string,
    reason: string,
    extra: LedgerExtra = {},
  ) => {
    let inDoubt = false;
    for (let attempt = 0; ; attempt++) {
      try {
        return await ledgerEntries.createLedgerEntry(
          customerId,
          {
            credit_entitlement_id: catalog.creditEntitlementId,
            amount: String(amount),
            entry_type: entryType,
            reason,
            idempotency_key: key,
            ...(extra.metadata ? { metadata: extra.metadata } : {}),
            ...(extra.expiresAt ? { expires_at: extra.expiresAt } : {}),
          },
          // The SDK's timeout counts the wait for a turn of MailKit's Dodo budget too: the call
          // itself keeps its 10 s.
          { maxRetries: 0, timeout: 10_000 + (budgetTurns.getStore()?.maxWaitMs ?? DODO_WAIT_MS) },
        );
      } catch (err) {
        const limited = err instanceof DodoPayments.RateLimitError;
        const unanswered = err instanceof DodoPayments.APIConnectionError || (err instanceof DodoPayments.APIError && (err.status ?? 0) >= 500);
        if (!limited && !unanswered) throw err; // a definite 4xx: the caller reads it
        inDoubt ||= unanswered;
        // MailKit's own budget refused the call (nothing was sent) after its caller waited its
        // longest in the budget's line: trying again would only wait that long once more, at the
        // back of the line, and answer the send later for nothing.
        const ownBudget = limited && err.headers?.get('x-mailkit-budget') != null;
        if (attempt < writeRetries && !ownBudget) {
          await sleep(retryDelayMs(err, attempt));
          continue;
        }
        if (inDoubt) throw new DodoUnavailable(undefined, undefined, dodoFailure(err, host));
        return guard(host, () => Promise.reject(err)); // 429 to every try: nothing was done
      }
    }
  };
  const checkout = async (productId: string, customer: DodoPayments.CheckoutSessionCreateParams['customer'], returnUrl: string) => {
    const session = await guard(host, () =>
      dodo.checkoutSessions.create({ product_cart: [{ product_id: productId, quantity: 1 }], customer, return_url: returnUrl }),
    );
    if (!session.checkout_url) throw new DodoUnavailable('Dodo created the checkout session without a checkout URL.');
    return session.checkout_url;
  };

  // No SDK retries: a read Dodo refuses (429) is answered from the balance cache, or the
  // client is told when to retry; retrying here would spend more of the budget Dodo just refused.
  const balanceRead = async (customerId: string) => {
    try {
      const b = await guard(host, () =>
        ledgerEntries.retrieve(customerId, { credit_entitlement_id: catalog.creditEntitlementId }, { maxRetries: 0 }),
      );
      return { balance: b.balance, lastTransactionAt: b.last_transaction_at ?? null };
    } catch (err) {
      if (err instanceof DodoPayments.NotFoundError) return { balance: '0', lastTransactionAt: null };
      throw err;
    }
  };

  return {
    catalog,
    subscribeCheckout: ({ email, name }) => checkout(catalog.planProductId, { email, name }, `${baseUrl}/?subscribed=1`),
    topupCheckout: (customerId) => checkout(catalog.topupProductId, { customer_id: customerId }, `${baseUrl}/?topped_up=1`),

    balance: async (customerId) => (await balanceRead(customerId)).balance,
    balanceRead,

    async debit(customerId, amount, key, reason, metadata) {
      try {
        const entry = await ledgerEntry(customerId, 'debit', amount, key, reason, { metadata });
        return { balanceAfter: entry.balance_after, createdAt: entry.created_at };
      } catch (err) {
        // 409 on our own key: this debit exists (its first answer was lost).
        if (err instanceof DodoPayments.ConflictError) return 'exists';
        // 400: more than the balance (overage is disabled); 404: no credits ever. Nothing changed.
        if (err instanceof DodoPayments.BadRequestError || err instanceof DodoPayments.NotFoundError) throw new InsufficientCredits();
        throw err;
      }
    },

    async reserve(customerId, amount, key, reason, extra) {
      try {
        await ledgerEntry(customerId, 'debit', amount, key, reason, extra);
        return 'reserved';
      } catch (err) {
        // 409 on our own key: this debit already exists, so the send it pays for may go on.
        if (err instanceof DodoPayments.ConflictError) return 'already';
        // Dodo answers 400 when a debit exceeds the balance (overage disabled) and 404 when
        // the customer never had credits: both mean "no credits", with nothing changed.
        if (err instanceof DodoPayments.BadRequestError || err instanceof DodoPayments.NotFoundError) throw new InsufficientCredits();
        throw err;
      }
    },

    async refund(customerId, amount, key, reason, extra) {
      try {
        await ledgerEntry(customerId, 'credit', amount, key, reason, extra);
      } catch (err) {
        if (err instanceof DodoPayments.ConflictError) return; // already refunded under this key
        throw err;
      }
    },

    async grants(customerId) {
      const out: CreditGrant[] = [];
      try {
        await grantPages(customerId, out);
      } catch (err) {
        // A customer Dodo holds no credits for (or does not know): no grants.
        if (err instanceof DodoPayments.NotFoundError) return [];
        throw err;
      }
      return out;
    },

    async customer(customerId) {
      const c = await guard(host, () => dodo.customers.retrieve(customerId));
      return { email: c.email, name: c.name };
    },
  };

  /** The customer's grants, into `out`, up to 1,000. */
  function grantPages(customerId: string, out: CreditGrant[]): Promise<void> {
    return guard(host, async () => {
      // Page by page, stopping at a page that is not full: the SDK's iterator asks for one more
      // (empty) page, a Dodo call of the budget for nothing.
      let page = await ledgerEntries.listGrants(
        customerId,
        { credit_entitlement_id: catalog.creditEntitlementId, page_size: 100 },
        { maxRetries: 0 },
      );
      for (;;) {
        const items = page.getPaginatedItems();
        for (const g of items) {
          out.push({
            id: g.id,
            createdAt: g.created_at,
            expiresAt: g.expires_at ?? null,
            isExpired: g.is_expired,
            initialAmount: Number(g.initial_amount),
            remainingAmount: Number(g.remaining_amount),
          });
        }
        if (items.length < 100 || out.length >= 1000 || !page.hasNextPage()) break;
        page = await page.getNextPage();
      }
    });
  }
}

/** How long to wait before retrying a ledger write: Dodo's Retry-After when it gave one (capped at 2 s), else 0.25 s, 0.5 s, … */
function retryDelayMs(err: unknown, attempt: number): number {
  const header = err instanceof DodoPayments.APIError ? Number(err.headers?.get('retry-after')) : NaN;
  if (Number.isFinite(header) && header >= 0) return Math.min(2_000, header * 1000);
  return Math.min(2_000, 250 * 2 ** attempt);
}

/**
 * Maps Dodo's transport-level and 5xx/429 failures to MailKit's 503/429 (never leaking
 * Dodo's text); 4xx API errors pass through for the caller to interpret.
 */
async function guard<T>(host: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof DodoPayments.RateLimitError) {
      const retryAfter = Number(err.headers?.get('retry-after')) || 5;
      throw new HttpError(429, 'billing_rate_limited', 'Our billing provider is rate limiting us. Retry shortly.', {
        'Retry-After': String(retryAfter),
      });
    }
    const unanswered = err instanceof DodoPayments.APIConnectionError || (err instanceof DodoPayments.APIError && (err.status ?? 0) >= 500);
    if (unanswered) throw new DodoUnavailable(undefined, undefined, dodoFailure(err, host));
    throw err;
  }
}
