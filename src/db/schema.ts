import type { Generated } from 'kysely';
/**
 * MailKit's own tables, as Kysely sees them (camelCase here, snake_case in SQL through
 * CamelCasePlugin). Times are epoch milliseconds in BIGINT columns on both engines, so a
 * comparison is the same integer comparison everywhere.
 */
export interface Tables {
  sends: SendsTable;
  sendPayloads: SendPayloadsTable;
  flights: FlightsTable;
  leases: LeasesTable;
  webhookEvents: WebhookEventsTable;
  apiKeyEpochs: ApiKeyEpochsTable;
  secrets: SecretsTable;
  rateLimits: RateLimitsTable;
  journalImports: JournalImportsTable;
  emails: EmailsTable;
  emailEvents: EmailEventsTable;
  suppressions: SuppressionsTable;
  batchRefusals: BatchRefusalsTable;
  creditBalances: CreditBalancesTable;
  settlements: SettlementsTable;
  creditDays: CreditDaysTable;
  dodoEntries: DodoEntriesTable;
}

/** A send: one client request (one email or one batch) and its way through the state machine (sending/README.md). */
export interface SendsTable {
  /** `snd_` + sha256(customer, client key): one row per customer and key while the key is honoured. */
  id: string;
  customerId: string;
  /** The key the client sent, or the one generated for it. */
  clientKey: string;
  fingerprint: string;
  credits: number;
  /** new | reserving | delivering | refunding | failed | done */
  state: string;
  attempt: number;
  /** Random per row: upstream idempotency keys derive from it, so a key reused after pruning never lands on an old debit. */
  nonce: string;
  /** 1 once an upstream call of the current step went unanswered: only a definite answer for the same key may settle it. */
  inDoubt: number;
  refundCredits: number | null;
  refundReason: string | null;
  /** After the refund: 1 → failed (a retry starts afresh), 0 → done (the result stands). */
  refundRetryable: number | null;
  resultStatus: number | null;
  resultBody: string | null;
  /** The instance running this send, and until when its claim holds (renewed while it runs). */
  owner: string | null;
  claimedUntil: number | null;
  createdAt: number;
  updatedAt: number;
  /** When the current attempt's Resend key was first used: Resend forgets keys 24 h later. */
  deliveringSince: number | null;
  /** The flight (Resend batch call) that carried this attempt's emails, and where they sit in it. */
  flightId: string | null;
  flightOffset: number | null;
  /** How the current attempt is paid: 'lease' (credits allocated from `leaseId`) or 'debit' (one Dodo debit under the send's own key). */
  funding: Generated<string>;
  /** The lease that paid this attempt's credits (funding 'lease', once allocated). */
  leaseId: Generated<string | null>;
}

/**
 * A credit lease (sending/README.md, "Leases"): `credits` debited from Dodo under the lease's
 * own key, `spent` of them allocated to sends; the rest goes back when it is returned.
 */
export interface LeasesTable {
  /** `lse_…`; its Dodo keys derive from it and `nonce`. */
  id: string;
  customerId: string;
  nonce: string;
  /** reserving | active | returning | closed */
  state: string;
  credits: number;
  spent: number;
  /** Set when it starts returning: credits − spent at that moment, what the return credits back. */
  returnCredits: number | null;
  /**
   * When the returned credits expire (ISO 8601; 'never'): the soonest expiry of the grants the
   * lease drew from, fixed once before the return is first asked for. Null until then.
   */
  returnExpiresAt: string | null;
  /** The credits asked beyond the emails waiting when it was taken (0: it covers exactly those emails). */
  emailsAhead: number;
  /** 1 once its debit (reserving) or its return (returning) went unanswered. */
  inDoubt: number;
  /** The instance making its Dodo call (reserving, returning), or that took it (active). */
  owner: string | null;
  claimedUntil: number | null;
  createdAt: number;
  updatedAt: number;
  /** The last allocation (or the debit's answer): idle leases are returned. */
  lastUsedAt: number;
}

/** One Resend batch call for the emails of several sends: its exact body, kept until its outcome is known. */
export interface FlightsTable {
  /** Also the call's Idempotency-Key. */
  id: string;
  /** JSON `[{ from, email }]`, in the order sent. */
  body: string;
  createdAt: number;
}

/** What a send delivers (the exact Resend request bodies, sender included), kept until the send settles. */
export interface SendPayloadsTable {
  sendId: string;
  body: string;
}

/** Processed webhook ids (Dodo's `webhook-id`), kept 7 days: a redelivery is acknowledged, not re-run. */
export interface WebhookEventsTable {
  id: string;
  receivedAt: number;
}

/** Per-customer API key epoch: rotating bumps it, and keys of older epochs stop working. */
export interface ApiKeyEpochsTable {
  customerId: string;
  epoch: number;
}

/** Secrets MailKit generated for itself when the environment gives none (sandbox mode). */
export interface SecretsTable {
  name: string;
  value: string;
}

/**
 * rate-limiter-flexible's counters (its column names): one row per limiter key and window,
 * shared by every instance on this database.
 */
export interface RateLimitsTable {
  key: string;
  points: number;
  /** Epoch ms after which the row is dead (the library's `expire`). */
  expire: number | null;
}

/** A one-time import of an old `.data/` by versions up to 9c39ed5 (src/db/old-store.ts): present once it committed. Kept, unused since. */
export interface JournalImportsTable {
  /** What was imported: `mailkit.json` (the old store, with its journals). */
  name: string;
  /** sha256 of the imported files, so a later boot can tell them from newer ones. */
  digest: string;
  importedAt: number;
  /** JSON: how many rows of each kind were imported. */
  summary: string;
}

/** One email Resend accepted for a customer (a send may hold several): its history row. */
export interface EmailsTable {
  /** The id POST /send answered: Resend's, or MailKit's own for a send answered once queued (`Prefer: respond-async`). */
  id: string;
  /** Resend's id, once Resend accepted the email (null while it is queued, or if Resend refused it); Resend's events name it. */
  providerId: string | null;
  customerId: string;
  sendId: string;
  /** JSON `{ to, cc, bcc }`. */
  recipients: string;
  subject: string;
  /** Credits it cost: one per recipient. */
  credits: number;
  /** queued | sent | delivery_delayed | delivered | bounced | failed | suppressed | complained */
  status: string;
  /** The status's place in an email's life: an update only ever raises it (emails.ts). */
  statusRank: number;
  createdAt: number;
  updatedAt: number;
}

/** A Resend email event as received (Svix `svix-id` as the key: a redelivery is not a second event). */
export interface EmailEventsTable {
  id: string;
  emailId: string;
  /** email.sent, email.delivered, … */
  type: string;
  occurredAt: number;
  receivedAt: number;
  /** A short reason (bounce message, failure reason); never the email's content. */
  detail: string | null;
  /** JSON array of the addresses this event puts on the customer's suppression list, or null. */
  suppress: string | null;
}

/** An address a customer may not send to any more (a permanent bounce or a complaint). */
export interface SuppressionsTable {
  customerId: string;
  /** Lower-cased bare address. */
  address: string;
  /** bounced | complained | suppressed */
  reason: string;
  /** The email whose event put it there. */
  emailId: string | null;
  createdAt: number;
}

/** The items of a keyed batch refused as suppressed on its first run (kept as long as its key). */
export interface BatchRefusalsTable {
  sendId: string;
  /** JSON array of item indexes. */
  refused: string;
  createdAt: number;
}

/**
 * The balance MailKit keeps per customer (src/billing/README.md): what sends are paid from, in
 * their own transaction, and how it stands against Dodo's grants.
 */
export interface CreditBalancesTable {
  customerId: string;
  /** What the customer can spend now: the spendable grants less what is owed to Dodo. */
  available: number;
  /** Paid by sends still in flight (delivering): settled once they end, given back if refused. */
  held: number;
  /** Spent by sends that ended, not yet in a settlement. */
  unsettled: number;
  /** In the settlement being asked of Dodo. */
  settling: number;
  /** Of `held`, what Dodo already has: a grant lapsed with them in it. */
  prepaid: number;
  /** JSON `[{ id, expiresAt, remaining }]`: Dodo's unexpired grants, in the order it draws from them. */
  grants: string;
  /** When a grant next enters its expiry margin or expires (epoch ms): the balance is looked at again then. */
  nextCheck: number | null;
  /** When the grants were last read from Dodo (null: never, the row is not seeded). */
  syncedAt: number | null;
  /** 1 when Dodo's grants changed in a way MailKit did not make (a webhook said so). */
  needsSync: number;
  /** The instance settling or syncing this customer, and until when. */
  owner: string | null;
  ownerUntil: number | null;
  lastSettledAt: number;
  lastSpentAt: number;
  updatedAt: number;
}

/** One debit to Dodo for what a customer spent, recorded before it is asked (its id is its key). */
export interface SettlementsTable {
  id: string;
  customerId: string;
  credits: number;
  /** asking | done */
  state: string;
  /** 1 once an ask went unanswered. */
  inDoubt: number;
  /** Set when Dodo refused the whole for want of credits: what it held then, debited under `<id>.part`. */
  partial: number | null;
  /** What Dodo took: `credits`, or less (the rest is unpaid, logged for the operator). */
  paid: number | null;
  balanceAfter: string | null;
  createdAt: number;
  updatedAt: number;
}

/** A customer's credit movements per UTC day: what the usage chart draws. */
export interface CreditDaysTable {
  customerId: string;
  /** YYYY-MM-DD (UTC). */
  day: string;
  emails: number;
  adjusted: number;
  expired: number;
  credits: number;
}

/** A Dodo ledger entry (not MailKit's own) counted in credit_days: counted once, however often its webhook comes. */
export interface DodoEntriesTable {
  id: string;
  recordedAt: number;
}
