import type { JsonStore } from '../../lib/json-store';
import type { OutboxMessage, ResendWebhookOptions, WebhookDelivery } from '../contracts';
import { newId } from '../dodo/ids';
import { createSignedDeliverer } from '../webhook-delivery';
import type { ResendState } from './store';
import { emailEvents } from './webhook-events';

/**
 * Resend's documented schedule after a failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
 * (eight attempts in all, the first one immediate), then the message is failed.
 */
export const RESEND_RETRY_DELAYS_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];

/** The email events of the Resend half: signed like Svix signs them, delivered in order per email. */
export interface ResendWebhooks {
  /** Records and schedules the events of a just-accepted email (nothing when emission is off). */
  emit(message: OutboxMessage): void;
  list(): WebhookDelivery[];
  redeliver(id: string): Promise<void>;
  idle(): Promise<void>;
  enabled(): boolean;
  setEnabled(on: boolean): void;
  close(): Promise<void>;
}

export interface ResendWebhooksDeps {
  store: JsonStore<ResendState>;
  /** Absent: emission is off (and there is nowhere to send to). */
  options: ResendWebhookOptions | undefined;
  log: (entry: Record<string, unknown>) => void;
}

/** Builds the Resend half's webhooks; pending deliveries of a persisted log resume at once. */
export function createResendWebhooks(deps: ResendWebhooksDeps): ResendWebhooks {
  const { store, options } = deps;
  if (!options) return disabledWebhooks(store);
  let on = options.enabled ?? true;
  const deliverer = createSignedDeliverer({
    deliveries: () => store.data.deliveries,
    save: () => store.save(),
    secret: options.secret,
    url: options.url,
    retryDelaysMs: options.retryDelaysMs ?? RESEND_RETRY_DELAYS_MS,
    // Resend signs through Svix: the Standard Webhooks scheme under `svix-*` header names.
    headerNames: { id: 'svix-id', timestamp: 'svix-timestamp', signature: 'svix-signature' },
    userAgent: 'Svix-Webhooks/1.0 (MailKit Resend sandbox)',
    // Svix message ids: `msg_` and 27 base62 characters.
    newId: () => newId('msg', 27),
    logName: 'resend webhook',
    log: quietLog(deps.log, options.url),
  });
  // Off means no HTTP at all: a persisted log's pending deliveries wait until it is turned on.
  if (on) deliverer.start();

  return {
    emit(message) {
      if (!on) return;
      for (const event of emailEvents(message, Date.parse(message.createdAt))) {
        // One queue per email: its events arrive in order (sent, delivered, complained), and a
        // receiver failing one email's event does not hold back another email's.
        deliverer.enqueue({ type: event.type, payload: event, queueKey: message.id, createdAt: event.created_at });
      }
    },
    list: () => deliverer.list(),
    redeliver: (id) => deliverer.redeliver(id),
    idle: () => deliverer.idle(),
    enabled: () => on,
    setEnabled(value) {
      on = value;
      if (on) deliverer.start();
    },
    close: () => deliverer.close(),
  };
}

/** No receiver configured: nothing is emitted; a persisted log is still listed. */
function disabledWebhooks(store: JsonStore<ResendState>): ResendWebhooks {
  return {
    emit() {},
    list: () =>
      store.data.deliveries
        .slice()
        .reverse()
        .map(({ queueKey: _k, nextAttemptAt: _n, ...d }) => structuredClone(d)),
    redeliver: async (id) => {
      throw new Error(`No webhook receiver is configured; cannot redeliver ${id}`);
    },
    idle: async () => {},
    enabled: () => false,
    setEnabled() {},
    close: async () => {},
  };
}

/**
 * Every email makes two or three deliveries, each retried up to seven times: while the receiver
 * answers the same way (e.g. MailKit without a `/webhooks/resend` route answers 404), one line
 * says so and the repeats stay in the delivery log only. A change of answer is logged again.
 */
function quietLog(log: (entry: Record<string, unknown>) => void, url: string) {
  let lastAnswer: string | undefined;
  return (entry: Record<string, unknown>) => {
    if (entry.msg !== 'resend webhook attempt') return log(entry);
    const answer = entry.status !== null ? `HTTP ${String(entry.status)}` : 'no answer';
    if (answer === lastAnswer) return;
    lastAnswer = answer;
    log({
      msg: 'resend webhook receiver answers',
      url,
      answer,
      ok: entry.ok,
      ...(entry.error ? { error: entry.error } : {}),
      ...(entry.ok ? {} : { note: 'Deliveries are retried on schedule and listed in the sandbox console; repeats of this answer are not logged.' }),
    });
  };
}
