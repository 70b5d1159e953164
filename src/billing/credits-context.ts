import type { BalanceRow } from '../db/credits';
import type { Database } from '../db/index';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { Billing } from './billing';

/** What the credit layer's pieces share (credits.ts builds it): the database, Dodo, this instance. */
export interface CreditsContext {
  database: Database;
  billing: Billing;
  /** This instance's name in claims on a customer's balance. */
  owner: string;
  now: () => number;
  log?: Logger;
  metrics?: Metrics;
  /** Customers this instance is settling or syncing now: its claim on them is its own, so it keeps them apart itself. */
  busy: Set<string>;
  /** Seeds under way, per customer: concurrent first sends read Dodo once. */
  /** Seeds under way in this process, by customer: the row, and whether this seed's own read of the grants made it. */
  seeding: Map<string, Promise<{ row: BalanceRow; inserted: boolean }>>;
}

/** How long an instance's claim on a customer's settlement holds: longer than a Dodo call with its wait for a turn and its retries. */
export const CLAIM_MS = 30_000;
