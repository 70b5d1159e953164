import { Webhook } from 'standardwebhooks';
import type { WebhookDelivery } from './contracts';

/** How much of a receiver's answer the delivery log keeps. */
const RESPONSE_PREVIEW_CHARS = 500;

/** A delivery as the durable document keeps it: the log entry plus its place in the queue. */
export interface StoredDelivery extends WebhookDelivery {
  /** Deliveries with the same key go out strictly in order (one queue per customer, per email…). */
  queueKey: string;
  /** Epoch ms of the next attempt while a retry is scheduled. */
  nextAttemptAt: number | null;
}

/**
 * The names of the three signature headers. The scheme is Standard Webhooks either way; Dodo
 * sends `webhook-id|timestamp|signature`, Resend (through Svix) `svix-id|timestamp|signature`.
 */
export interface SignatureHeaderNames {
  id: string;
  timestamp: string;
  signature: string;
}

/** Signed outbound delivery with per-queue ordering, retries and a log. Shared by both halves. */
export interface SignedDeliverer {
  /** Records an event and schedules its delivery (never synchronously: after the current tick). */
  enqueue(event: { type: string; payload: unknown; queueKey: string; createdAt: string }): StoredDelivery;
  /** Newest first, without the queue bookkeeping. */
  list(): WebhookDelivery[];
  /** A pending delivery is retried now, in its queue; a settled one is resent out of band. */
  redeliver(id: string): Promise<void>;
  /** Resolves when no delivery is pending or in flight (retries not yet due count as pending). */
  idle(): Promise<void>;
  /** Resumes deliveries left pending in a persisted document. */
  start(): void;
  close(): Promise<void>;
}

export interface SignedDelivererOptions {
  /** The delivery log inside the durable document; mutated in place, so it survives a restart. */
  deliveries: () => StoredDelivery[];
  /** Schedules a write of the durable document. */
  save: () => void;
  /** Standard Webhooks secret (`whsec_…`). */
  secret: string;
  url: string;
  /** Wait before each retry, in ms; one attempt plus one per entry, then the delivery is `failed`. */
  retryDelaysMs: number[];
  headerNames: SignatureHeaderNames;
  userAgent: string;
  /** A fresh delivery id (the id header's value). */
  newId: () => string;
  /** Prefix of the log lines, e.g. `dodo webhook` → `dodo webhook attempt`, `dodo webhook gave up`. */
  logName: string;
  log?: (entry: Record<string, unknown>) => void;
  /** Settled deliveries kept in the log (pending ones are always kept). */
  historyLimit?: number;
  timeoutMs?: number;
}

/** Builds a deliverer over a persisted log; pending deliveries resume on `start()`. */
export function createSignedDeliverer(options: SignedDelivererOptions): SignedDeliverer {
  const { deliveries, save, url, retryDelaysMs, headerNames, log, logName } = options;
  const signer = new Webhook(options.secret);
  const historyLimit = options.historyLimit ?? 1000;
  const timeoutMs = options.timeoutMs ?? 10_000;

  let closed = false;
  /** Queue keys with an attempt in flight or a retry timer armed. */
  const busy = new Set<string>();
  const timers = new Map<string, NodeJS.Timeout>();
  const inFlight = new Set<AbortController>();
  let kickScheduled = false;
  let idleWaiters: Array<() => void> = [];

  // An index over the delivery log, so no step scans it: the pending deliveries of each queue
  // (oldest first) and how many settled ones the log holds.
  const queues = new Map<string, StoredDelivery[]>();
  let pendingCount = 0;
  let settledCount = 0;
  const addPending = (d: StoredDelivery) => {
    const queue = queues.get(d.queueKey);
    if (queue) queue.push(d);
    else queues.set(d.queueKey, [d]);
    pendingCount++;
  };
  for (const d of deliveries()) {
    if (d.state === 'pending') addPending(d);
    else settledCount++;
  }
  const headOf = (key: string) => queues.get(key)?.[0];
  /** The head of its queue left the pending state (delivered or given up). */
  const settled = (d: StoredDelivery) => {
    const queue = queues.get(d.queueKey)!;
    queue.splice(queue.indexOf(d), 1); // the head: index 0
    if (queue.length === 0) queues.delete(d.queueKey);
    pendingCount--;
    settledCount++;
  };

  const isIdle = () => inFlight.size === 0 && pendingCount === 0;
  const settleIdle = () => {
    if (!isIdle() && !closed) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  };

  /** One HTTP attempt; records it on the delivery and returns whether the receiver took it (2xx). */
  const attempt = async (delivery: StoredDelivery): Promise<boolean> => {
    const body = JSON.stringify(delivery.payload);
    // A restarted sandbox may have a new receiver URL; the log shows where the attempt went.
    delivery.url = url;
    // The signature timestamp is wall time, not sandbox time: receivers (standardwebhooks, svix)
    // reject timestamps more than 5 minutes off their own clock.
    const sentAt = new Date();
    const headers = {
      'content-type': 'application/json',
      'user-agent': options.userAgent,
      [headerNames.id]: delivery.id,
      [headerNames.timestamp]: String(Math.floor(sentAt.getTime() / 1000)),
      [headerNames.signature]: signer.sign(delivery.id, sentAt, body),
    };
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), timeoutMs);
    timeout.unref();
    inFlight.add(controller);
    const started = performance.now();
    let status: number | null = null;
    let error: string | undefined;
    let response: string | undefined;
    try {
      const res = await fetch(url, { method: 'POST', headers, body, signal: controller.signal });
      status = res.status;
      // The start of the receiver's answer, as a delivery log shows it (e.g. {"duplicate":true}).
      response = (await res.text().catch(() => '')).slice(0, RESPONSE_PREVIEW_CHARS) || undefined;
    } catch (err) {
      error = (err as Error).message || String(err);
    } finally {
      clearTimeout(timeout);
      inFlight.delete(controller);
    }
    if (closed && status === null) return false; // aborted by close(): leave it pending for the next start
    const ok = status !== null && status >= 200 && status < 300;
    delivery.attempts.push({
      at: sentAt.toISOString(),
      status,
      ...(error ? { error } : {}),
      ...(response ? { response } : {}),
      durationMs: Math.round(performance.now() - started),
    });
    log?.({ msg: `${logName} attempt`, id: delivery.id, type: delivery.type, status, error, ok });
    save();
    return ok;
  };

  /** Delivers the head of one queue; on failure arms a retry timer and blocks the queue behind it. */
  const pump = async (key: string): Promise<void> => {
    if (busy.has(key) || closed) return;
    const head = headOf(key);
    if (!head) return;
    if (head.nextAttemptAt !== null && head.nextAttemptAt > Date.now()) {
      armRetry(key, head.nextAttemptAt - Date.now());
      return;
    }
    busy.add(key);
    try {
      const ok = await attempt(head);
      if (closed) return;
      if (ok) {
        head.state = 'delivered';
        head.nextAttemptAt = null;
        settled(head);
      } else {
        const retryIndex = head.attempts.length - 1;
        const delay = retryDelaysMs[retryIndex];
        if (delay === undefined) {
          head.state = 'failed';
          head.nextAttemptAt = null;
          settled(head);
          log?.({ msg: `${logName} gave up`, id: head.id, type: head.type, attempts: head.attempts.length });
        } else {
          head.nextAttemptAt = Date.now() + delay;
        }
      }
      trimHistory();
      save();
    } finally {
      busy.delete(key);
    }
    if (closed) return;
    const next = headOf(key);
    if (next) {
      if (next.nextAttemptAt !== null && next.nextAttemptAt > Date.now()) armRetry(key, next.nextAttemptAt - Date.now());
      else void pump(key);
    }
    settleIdle();
  };

  const armRetry = (key: string, delayMs: number) => {
    if (timers.has(key) || closed) return;
    busy.add(key);
    const timer = setTimeout(() => {
      timers.delete(key);
      busy.delete(key);
      void pump(key);
    }, delayMs);
    // A pending retry must never keep a test runner or CLI alive.
    timer.unref();
    timers.set(key, timer);
  };

  /** Drops the oldest settled deliveries past the limit, in batches (one pass per tenth of it). */
  const trimHistory = () => {
    if (settledCount <= historyLimit + Math.max(1, Math.floor(historyLimit / 10))) return;
    let drop = settledCount - historyLimit;
    const log = deliveries();
    const kept = log.filter((d) => d.state === 'pending' || drop-- <= 0);
    // In place: the document holds this very array.
    log.length = 0;
    for (const d of kept) log.push(d);
    settledCount = historyLimit;
  };

  const kickAll = () => {
    if (kickScheduled || closed) return;
    kickScheduled = true;
    // setImmediate: the request that caused the event has already written its response by then.
    setImmediate(() => {
      kickScheduled = false;
      for (const key of [...queues.keys()]) void pump(key);
      settleIdle();
    }).unref();
  };

  return {
    enqueue({ type, payload, queueKey, createdAt }) {
      const delivery: StoredDelivery = {
        id: options.newId(),
        type,
        url,
        payload,
        createdAt,
        attempts: [],
        state: 'pending',
        queueKey,
        nextAttemptAt: null,
      };
      deliveries().push(delivery);
      addPending(delivery);
      save();
      kickAll();
      return delivery;
    },
    list() {
      return deliveries()
        .slice()
        .reverse()
        .map(({ queueKey: _k, nextAttemptAt: _n, ...d }) => structuredClone(d));
    },
    async redeliver(id) {
      const delivery = deliveries().find((d) => d.id === id);
      if (!delivery) throw new Error(`No webhook delivery ${id}`);
      if (delivery.state === 'pending') {
        // Jump the retry wait: cancel the timer and let the queue try the head again now.
        const timer = timers.get(delivery.queueKey);
        if (timer) {
          clearTimeout(timer);
          timers.delete(delivery.queueKey);
          busy.delete(delivery.queueKey);
        }
        delivery.nextAttemptAt = null;
        await pump(delivery.queueKey);
        return;
      }
      // A settled delivery is resent out of band, same id, fresh timestamp and signature.
      const ok = await attempt(delivery);
      if (ok) delivery.state = 'delivered';
      save();
      settleIdle();
    },
    idle() {
      if (isIdle() || closed) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    start() {
      kickAll();
    },
    async close() {
      closed = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      for (const controller of inFlight) controller.abort();
      settleIdle();
    },
  };
}
