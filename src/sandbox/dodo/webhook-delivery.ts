import type { JsonStore } from '../../lib/json-store';
import { createSignedDeliverer, type SignedDeliverer } from '../webhook-delivery';
import type { SandboxClock } from './clock';
import { newId } from './ids';
import type { DodoState, StoredDelivery } from './state';

/** The shared signed deliverer, taking Dodo events (type and data; the envelope is added here). */
export interface WebhookDeliverer extends Omit<SignedDeliverer, 'enqueue'> {
  /** Records an event and schedules its delivery (never synchronously: after the current tick). */
  enqueue(type: string, data: Record<string, unknown>, queueKey: string): StoredDelivery;
}

export interface WebhookDelivererOptions {
  store: JsonStore<DodoState>;
  clock: SandboxClock;
  secret: string;
  url: string;
  retryDelaysMs: number[];
  log?: (entry: Record<string, unknown>) => void;
  /** Settled deliveries kept in the log (pending ones are always kept). */
  historyLimit?: number;
  timeoutMs?: number;
}

/**
 * Dodo's envelope (`business_id`, `type`, `timestamp` in sandbox time, `data`) over the shared
 * signed deliverer; deliveries live in `store.data.deliveries` so pending ones survive a restart.
 */
export function createWebhookDeliverer(options: WebhookDelivererOptions): WebhookDeliverer {
  const { store, clock } = options;
  const deliverer = createSignedDeliverer({
    deliveries: () => store.data.deliveries,
    save: () => store.save(),
    secret: options.secret,
    url: options.url,
    retryDelaysMs: options.retryDelaysMs,
    headerNames: { id: 'webhook-id', timestamp: 'webhook-timestamp', signature: 'webhook-signature' },
    userAgent: 'MailKit-Dodo-Sandbox/1.0',
    newId: () => newId('msg'),
    logName: 'dodo webhook',
    log: options.log,
    historyLimit: options.historyLimit,
    timeoutMs: options.timeoutMs,
  });
  return {
    ...deliverer,
    enqueue(type, data, queueKey) {
      const createdAt = clock.nowIso();
      return deliverer.enqueue({ type, payload: { business_id: store.data.businessId, type, timestamp: createdAt, data }, queueKey, createdAt });
    },
  };
}
