import type { OutboxMessage, ResendSandbox, ResendSandboxOptions } from '../contracts';
import { createFaults } from '../faults';
import { createApiRouter } from './api-router';
import { errorForStatus } from './errors';
import { createIdempotency } from './idempotency';
import { createOutboxRouter } from './outbox-router';
import { createRateLimiter } from './rate-limit';
import { openResendStore } from './store';
import { createResendWebhooks } from './webhooks';

/** Options beyond the shared contract, for tests and unusual mounts. */
export interface ResendSandboxExtras {
  /** Clock in epoch ms (idempotency expiry, rate-limit windows, timestamps); defaults to Date.now. */
  now?: () => number;
  /** Where the outbox page loads outbox.css/outbox.js from (default /sandbox/assets). */
  assetsPath?: string;
  /** Oldest messages beyond this many are dropped from the outbox (default 5000). */
  maxMessages?: number;
}

/** Builds the local Resend: its API subset, its outbox, and their controls. */
export function createResendSandbox(options: ResendSandboxOptions & ResendSandboxExtras): ResendSandbox {
  const now = options.now ?? Date.now;
  const log = options.log ?? (() => {});
  const store = openResendStore(options.dataFile);
  const faults = createFaults(errorForStatus);
  const limiter = createRateLimiter(options.rateLimitPerSecond ?? 0, now);
  const idempotency = createIdempotency(store, now);
  const webhooks = createResendWebhooks({ store, options: options.webhooks, log });

  const clearOutbox = () => {
    store.data.messages.length = 0;
    store.save();
  };

  return {
    api: createApiRouter({
      store,
      faults,
      limiter,
      idempotency,
      now,
      log,
      maxMessages: options.maxMessages ?? 5000,
      onAccepted: (message) => webhooks.emit(message),
    }),
    outbox: createOutboxRouter({
      store,
      outboxPath: options.outboxPath.replace(/\/+$/, ''),
      assetsPath: (options.assetsPath ?? '/sandbox/assets').replace(/\/+$/, ''),
      clear: clearOutbox,
    }),
    faults: faults.control,
    setRateLimit: (perSecond) => limiter.set(perSecond),
    rateLimit: () => limiter.state(),
    messages: (): OutboxMessage[] => [...store.data.messages],
    clearOutbox,
    webhooks: {
      idle: () => webhooks.idle(),
      list: () => webhooks.list(),
      redeliver: (id) => webhooks.redeliver(id),
      enabled: () => webhooks.enabled(),
      setEnabled: (on) => webhooks.setEnabled(on),
    },
    async close() {
      await webhooks.close();
      await store.flush();
    },
  };
}

export type { OutboxListItem } from './outbox-router';
