import type { Router } from 'express';

/**
 * The seams between the sandbox's halves and the app. The Dodo half lives in
 * `./dodo/`, the Resend half in `./resend/`; `./index.ts` composes them.
 */

/** A fault to inject into the next matching upstream calls (tests and the benchmark). */
export interface FaultSpec {
  /** Answer with this HTTP status instead of handling the request (e.g. 500, 503, 429). */
  status?: number;
  /** Wait this long before answering (applied to faulted and normal answers alike). */
  latencyMs?: number;
  /**
   * Accept and process the request, then destroy the socket without answering:
   * the client cannot know whether it happened (an "ambiguous" outcome).
   */
  dropAfterProcessing?: boolean;
  /**
   * Accept and process the request, then hold the answer this long before sending it: the
   * client may time out (its outcome in doubt) while the change is already made.
   */
  holdAnswerMs?: number;
  /**
   * Accept and process the request, then answer this status instead of its answer (with the
   * vendor's error envelope, or `html`): a gateway failing after the vendor acted.
   */
  statusAfterProcessing?: number;
  /** The faulted status comes as a gateway's HTML page, not the vendor's JSON envelope. */
  html?: boolean;
  /** How many requests this fault applies to; omitted means until cleared. */
  count?: number;
  /** Only requests whose `METHOD path` (path relative to the API root) matches this. */
  match?: RegExp;
}

/** Fault and latency injection for one API half. */
export interface FaultControl {
  inject(fault: FaultSpec): void;
  /** A latency added to every request (0 to switch off). */
  setLatency(ms: number): void;
  clear(): void;
  /** Requests the API half has answered (or dropped) since start, by `METHOD path`. */
  requestCount(match?: RegExp): number;
}

/** One webhook delivery attempt series, as the sandbox console shows it. */
export interface WebhookDelivery {
  id: string; // the webhook-id header (msg_…)
  type: string;
  url: string;
  payload: unknown;
  createdAt: string;
  /** `response`: the first 500 characters of the receiver's answer, when it sent one. */
  attempts: Array<{ at: string; status: number | null; error?: string; response?: string; durationMs: number }>;
  state: 'pending' | 'delivered' | 'failed';
}

/** The events `trigger` can make the sandbox emit. */
export const TRIGGER_EVENTS = ['credit.balance_low', 'credit.added', 'credit.expired', 'credit.rolled_over', 'subscription.renewed'] as const;
export type TriggerEvent = (typeof TRIGGER_EVENTS)[number];

/** What a trigger changed: every event it caused, in the order they will be delivered. */
export interface TriggerResult {
  event: TriggerEvent;
  customer_id: string;
  webhook_ids: string[];
  events: Array<{ id: string; type: string }>;
}

/** A refused console or trigger action; `status` and `code` are what the control API answers. */
export class SandboxControlError extends Error {
  override name = 'SandboxControlError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** One row of the console's customer list. Amounts are decimal strings, as Dodo prints them. */
export interface SandboxCustomerSummary {
  customer_id: string;
  email: string;
  name: string;
  /** Balance in the primary entitlement ("0" before any credits). */
  balance: string;
  created_at: string;
}

/** Everything the console shows about one customer. Lists are as the console orders them. */
export interface SandboxCustomerDetail {
  customer: { customer_id: string; email: string; name: string; created_at: string };
  balances: Array<{ credit_entitlement_id: string; credit_entitlement_name: string; unit: string; balance: string; primary: boolean }>;
  subscriptions: Array<{
    subscription_id: string;
    product_id: string;
    product_name: string;
    status: string;
    previous_billing_date: string;
    next_billing_date: string;
  }>;
  /** Oldest first (the order debits consume them). */
  grants: Array<{
    id: string;
    credit_entitlement_id: string;
    source: string;
    source_id: string | null;
    initial: string;
    remaining: string;
    expires_at: string | null;
    is_expired: boolean;
    is_rolled_over: boolean;
    rollover_count: number;
    parent_grant_id: string | null;
    created_at: string;
  }>;
  /** Newest first. */
  ledger: Array<{
    id: string;
    credit_entitlement_id: string;
    transaction_type: string;
    is_credit: boolean;
    amount: string;
    balance_before: string;
    balance_after: string;
    description: string | null;
    grant_id: string | null;
    created_at: string;
  }>;
}

/**
 * The Dodo sandbox's quota, shaped like Dodo's rate-limit tiers: `perMinute` requests a minute
 * sustained, at most `burst` at once (Dodo's tier 0 is 240 and 40). `perMinute` 0 switches it off.
 */
export interface DodoRateLimit {
  perMinute: number;
  /** Default 40 (tier 0's burst). */
  burst?: number;
}

/** Where the Dodo quota stands now; `limited` counts the 429s it answered since it was set. */
export interface DodoRateLimitState {
  perMinute: number;
  burst: number;
  /** Requests that would be let through right now. */
  remaining: number;
  /** Unix time in seconds when `remaining` is back to `burst` (the X-RateLimit-Reset header). */
  resetAt: number;
  limited: number;
}

/** Where the Resend limit stands now; `limited` counts the 429s it answered since it was set. */
export interface ResendRateLimitState {
  limit: number;
  remaining: number;
  /** Whole seconds until the window resets (the ratelimit-reset header). */
  resetSeconds: number;
  limited: number;
}

export interface DodoSandboxOptions {
  /** JSON file for durable state, or null for a fresh in-memory instance (tests). */
  dataFile: string | null;
  /** Standard Webhooks secret (`whsec_…`) used to sign every delivery. */
  webhookSecret: string;
  /** Where events are POSTed (the app's /webhooks/dodo by default). */
  webhookUrl: string;
  /** Absolute origin the browser uses, e.g. http://localhost:3000; checkout_url is built from it. */
  publicUrl: string;
  /** Path the Dodo API router is mounted at, e.g. /sandbox/dodo. */
  apiPath: string;
  /** Path the hosted checkout router is mounted at, e.g. /sandbox/checkout. */
  checkoutPath: string;
  /** Retry schedule for failed webhook deliveries, in ms (default: 1s, 5s, 30s, 2m, 10m). */
  webhookRetryDelaysMs?: number[];
  /** Name of the entitlement the console and triggers act on (default "Email Credits"). */
  primaryEntitlementName?: string;
  /** A quota on the API (every authenticated call counts); omitted or `perMinute` 0: none. */
  rateLimit?: DodoRateLimit;
  /** Structured log sink. */
  log?: (entry: Record<string, unknown>) => void;
}

export interface DodoSandbox {
  /** Dodo REST API subset; mount at `apiPath`. */
  api: Router;
  /** Hosted checkout pages; mount at `checkoutPath`. */
  checkout: Router;
  faults: FaultControl;
  /** Sets the API's quota now, with a full bucket (`perMinute` 0: none). */
  setRateLimit(limit: DodoRateLimit): void;
  /** The quota's state, or null while there is none. */
  rateLimit(): DodoRateLimitState | null;
  /** Pays a checkout session as the "Pay with test card" button does; returns the redirect URL. */
  payCheckout(sessionId: string): Promise<string>;
  /** A manual balance adjustment, as the Dodo dashboard's "Adjust balance" does (signed amount). */
  adjustBalance(customerId: string, creditEntitlementId: string, amount: number, reason?: string): Promise<void>;
  /** Moves the sandbox clock forward; renews subscriptions and expires grants that fall due. */
  advanceClock(ms: number): Promise<void>;
  /** Current sandbox time. */
  now(): Date;
  webhooks: {
    /** Resolves when no delivery is pending or in flight (retries not yet due count as pending). */
    idle(): Promise<void>;
    list(): WebhookDelivery[];
    redeliver(id: string): Promise<void>;
  };
  /** Every customer, newest first, with their balance in the primary entitlement (the console's list). */
  customers(): SandboxCustomerSummary[];
  /** One customer's balances, subscriptions, grants and ledger, or null when unknown. */
  customer(customerId: string): SandboxCustomerDetail | null;
  /**
   * The entitlement the console and triggers act on: the one named `primaryEntitlementName`
   * ("Email Credits" by default), else the oldest one; null while there is none.
   */
  primaryEntitlementId(): string | null;
  /**
   * Makes the sandbox emit `event` for a customer by changing real state (see README, "Triggers");
   * the events go out through the normal signed delivery. Throws SandboxControlError.
   */
  trigger(event: TriggerEvent, customerId: string, options?: { amount?: number }): Promise<TriggerResult>;
  /** Raw state for the console and tests (read-only by convention). */
  state(): unknown;
  close(): Promise<void>;
}

/** One email as it landed in the sandbox outbox. */
export interface OutboxMessage {
  id: string;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  replyTo: string[];
  subject: string;
  html: string | null;
  text: string | null;
  headers: Record<string, string>;
  tags: Array<{ name: string; value: string }>;
  /** delivered | bounced | complained, from the resend.dev test addresses; delivered otherwise. */
  lastEvent: 'delivered' | 'bounced' | 'complained';
  createdAt: string;
}

export interface ResendSandboxOptions {
  dataFile: string | null;
  /** Path the Resend API router is mounted at, e.g. /sandbox/resend. */
  apiPath: string;
  /** Path the outbox router is mounted at, e.g. /sandbox/outbox. */
  outboxPath: string;
  /** Requests per second before 429, shared by every API key as Resend's per-team limit is (0 or undefined: no limit). */
  rateLimitPerSecond?: number;
  /** Email events (`email.sent`, `email.delivered`…), signed as Resend signs them; absent: none are emitted. */
  webhooks?: ResendWebhookOptions;
  log?: (entry: Record<string, unknown>) => void;
}

/** Where the Resend half sends its email events, and how. */
export interface ResendWebhookOptions {
  /** Svix / Standard Webhooks secret (`whsec_…`) every delivery is signed with. */
  secret: string;
  /** Where events are POSTed (the app's /webhooks/resend by default). */
  url: string;
  /** Retry schedule in ms (default Resend's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). */
  retryDelaysMs?: number[];
  /** false: accept emails but emit no events (default true); can be changed at run time. */
  enabled?: boolean;
}

export interface ResendSandbox {
  /** Resend REST API subset; mount at `apiPath`. */
  api: Router;
  /** Outbox page and its JSON API; mount at `outboxPath`. */
  outbox: Router;
  faults: FaultControl;
  /** Sets the per-second limit now, with a fresh window (0: none). */
  setRateLimit(perSecond: number): void;
  /** The limit's state, or null while there is none. */
  rateLimit(): ResendRateLimitState | null;
  webhooks: {
    /** Resolves when no delivery is pending or in flight (retries not yet due count as pending). */
    idle(): Promise<void>;
    /** The delivery log, newest first. */
    list(): WebhookDelivery[];
    /** Resends a delivery: same svix-id and body, fresh timestamp and signature. */
    redeliver(id: string): Promise<void>;
    /** Whether accepted emails emit events now. */
    enabled(): boolean;
    /** Turns emission on or off (no effect without `webhooks` options). */
    setEnabled(on: boolean): void;
  };
  /** Every accepted email, newest first. */
  messages(): OutboxMessage[];
  clearOutbox(): void;
  close(): Promise<void>;
}
