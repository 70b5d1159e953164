import { createJsonStore, type JsonStore } from '../../lib/json-store';
import type { OutboxMessage } from '../contracts';
import type { StoredDelivery } from '../webhook-delivery';

/** A remembered answer to an idempotent request. */
export interface IdempotencyRecord {
  /** Hash of what was asked (body, and batch mode), to tell a retry from a reuse. */
  fingerprint: string;
  status: number;
  body: unknown;
  /** Epoch ms when it was first answered; the record expires 24 h later. */
  createdAt: number;
}

/** Everything the Resend half keeps across restarts. */
export interface ResendState {
  /** Newest first, as the outbox shows them. */
  messages: OutboxMessage[];
  /** By scope: `sha256(api key) METHOD path idempotency-key`. */
  idempotency: Record<string, IdempotencyRecord>;
  /** The webhook delivery log, oldest first (pending deliveries resume after a restart). */
  deliveries: StoredDelivery[];
}

/** Opens the Resend half's durable document (in memory when `file` is null). */
export function openResendStore(file: string | null): JsonStore<ResendState> {
  return createJsonStore<ResendState>({ file, initial: () => ({ messages: [], idempotency: {}, deliveries: [] }) });
}
