import { randomUUID } from 'node:crypto';
import { DodoUnavailable, InsufficientCredits, type Billing } from '../billing/billing';
import { HttpError } from '../errors';
import type { BatchDelivery, Delivery, Mailer, OutgoingEmail } from '../mail/mailer';
import type { Logger } from '../logger';
import type { AppStore } from '../state';
import {
  fingerprintOf,
  KEY_RETENTION_MS,
  REDELIVER_WITHIN_MS,
  sendIdFor,
  upstreamKeys,
  type SendPayload,
  type SendRecord,
  type StoredResponse,
} from './records';

/** What the route writes back: status, body, and the headers that let a client retry safely. */
export interface SendOutcome extends StoredResponse {
  headers: Record<string, string>;
}

/** One item of a batch as the route validated it. */
export type BatchItem = OutgoingEmail;

/** The send itself: idempotency key → reserve → deliver → settle. */
export interface Sender {
  send(customerId: string, email: OutgoingEmail, clientKey: string | undefined): Promise<SendOutcome>;
  sendBatch(customerId: string, emails: BatchItem[], clientKey: string | undefined): Promise<SendOutcome>;
  /**
   * One pass of the reconciler (it also runs on its own every `intervalMs`): drives every
   * send left with an unanswered debit, an unconfirmed delivery or a refund in progress for
   * longer than `graceMs` to its end, and prunes finished records past the key retention
   * window. Resolves to the sends it settled.
   */
  reconcile(): Promise<number>;
  /** Stops the reconciler; resolves once every send in flight in this process has finished (graceful shutdown). */
  drain(): Promise<void>;
}

/** When the reconciler looks, and how long a send is left to its own client first. */
export interface ReconcileOptions {
  /** Between two passes (default 30 s; 0: only when reconcile() is called). */
  intervalMs?: number;
  /** A send is the reconciler's only once untouched this long (default 60 s): the client's own retry, told to come back in 2 s, normally wins. */
  graceMs?: number;
}

/** How a delivery settles the credits it reserved. */
type Settlement =
  /** Final answer; `refund` gives back the credits of items that were not sent. */
  | { kind: 'done'; response: StoredResponse; refund?: { credits: number; reason: string } }
  /** Nothing was sent and a later try may work: give every credit back, allow a fresh attempt. */
  | { kind: 'retry'; reason: string; error: HttpError }
  /** Nothing can be known: keep the reservation; the same key's retry completes it. */
  | { kind: 'unknown' };

/** Delivers a send's payload under one attempt's Resend key and says how that settles. */
type Deliver = (resendKey: string, sendId: string) => Promise<Settlement>;

export function createSender(opts: {
  billing: Billing;
  mailer: Mailer;
  store: AppStore;
  log?: Logger;
  now?: () => Date;
  reconcile?: ReconcileOptions;
}): Sender {
  const { billing, mailer, store, log } = opts;
  const now = opts.now ?? (() => new Date());
  const graceMs = opts.reconcile?.graceMs ?? 60_000;
  const intervalMs = opts.reconcile?.intervalMs ?? 30_000;
  const records = store.data.sends;
  /** Runs in this process by send id; `reconciler` marks the reconciler's own. */
  const running = new Map<string, { fingerprint: string; promise: Promise<unknown>; reconciler: boolean }>();
  let stopping = false;
  /** Sends that hold, or may hold, credits with their outcome open (unsure, delivering, refunding): the reconciler's work list. */
  const unsettled = new Set(Object.keys(records).filter((id) => isUnsettled(records[id]!)));
  let reconciling: Promise<number> | null = null;
  const timer = intervalMs > 0 ? setInterval(() => void sender.reconcile().catch((err: unknown) => log?.error({ err }, 'reconcile pass failed')), intervalMs) : null;
  // The reconciler must not keep a finished test or CLI process alive.
  timer?.unref();

  /** Joins a running send with the same id, replays a finished one, or starts one. */
  async function begin(
    customerId: string,
    clientKey: string | undefined,
    body: unknown,
    payload: SendPayload,
  ): Promise<SendOutcome> {
    // Without a client key every request is a new send; the generated key is returned so
    // the client can still retry an ambiguous outcome safely.
    const key = clientKey ?? randomUUID();
    const sendId = sendIdFor(customerId, key);
    const fingerprint = fingerprintOf(body);
    const headers: Record<string, string> = { 'Idempotency-Key': key };

    for (let inFlight = running.get(sendId); inFlight; inFlight = running.get(sendId)) {
      assertSameBody(inFlight.fingerprint, fingerprint);
      // A client's run: answer what it answers. The reconciler's: let it finish, then look again.
      if (!inFlight.reconciler) return { ...((await inFlight.promise) as StoredResponse), headers: { ...headers, 'Idempotent-Replayed': 'true' } };
      await inFlight.promise.catch(() => undefined);
    }
    let record = records[sendId];
    if (record) {
      assertSameBody(record.fingerprint, fingerprint);
      if (record.state === 'done' && record.result) return { ...record.result, headers: { ...headers, 'Idempotent-Replayed': 'true' } };
    } else {
      record = newRecord(customerId, fingerprint, payload.emails.length);
      store.set('sends', sendId, record);
    }
    // Kept until the send is done or failed, for the reconciler (a retry re-supplies it).
    if (!store.data.payloads[sendId]) store.set('payloads', sendId, payload);
    try {
      return { ...(await track(sendId, fingerprint, run(sendId, record, deliverer(payload)), false)), headers };
    } catch (err) {
      if (err instanceof HttpError) Object.assign(err.headers, headers);
      throw err;
    }
  }

  /** Registers a run so that a request for the same send joins it instead of starting another. */
  async function track<T>(sendId: string, fingerprint: string, promise: Promise<T>, reconciler: boolean): Promise<T> {
    running.set(sendId, { fingerprint, promise, reconciler });
    try {
      return await promise;
    } finally {
      running.delete(sendId);
    }
  }

  /** How a payload is delivered: one Resend call for one email, one batch call for a batch. */
  function deliverer(payload: SendPayload): Deliver {
    return payload.batch
      ? async (resendKey, sendId) => settleBatch(await mailer.deliverBatch(payload.emails, resendKey), sendId, payload.emails.length)
      : async (resendKey, sendId) => settleSingle(await mailer.deliver(payload.emails[0]!, resendKey), sendId);
  }

  async function run(sendId: string, record: SendRecord, deliver: Deliver) {
    if (record.state === 'refunding') await finishRefund(sendId, record);
    if (record.state === 'done' && record.result) return record.result;

    if (record.state === 'new' || record.state === 'unsure' || record.state === 'failed') {
      await reserve(sendId, record);
      update(sendId, record, { state: 'delivering' });
    }
    const settlement = await deliver(upstreamKeys(sendId, record.attempt).resend, sendId);
    return settle(sendId, record, settlement);
  }

  /** Step: reserve. Dodo's 400 on a short balance is the atomic guard; there is no pre-flight balance read. */
  async function reserve(sendId: string, record: SendRecord) {
    try {
      await billing.reserve(record.customerId, record.credits, upstreamKeys(sendId, record.attempt).debit, reserveReason(sendId, record));
    } catch (err) {
      // Nothing was sent. No answer from Dodo: the debit may exist, so the record stays
      // (unsure) for the same key's retry (Dodo 409 → deliver) or, failing that, the
      // reconciler's void. A refusal (402, 429): nothing was reserved; nothing stays in
      // flight, so a retry, e.g. after a top-up, starts cleanly.
      if (err instanceof DodoUnavailable) {
        update(sendId, record, { state: 'unsure' });
      } else if (record.attempt === 0) {
        store.delete('sends', sendId);
        store.delete('payloads', sendId);
      } else {
        update(sendId, record, { state: 'failed' });
      }
      throw err;
    }
  }

  /**
   * Step, without a client: a debit Dodo never answered is voided. Asking again under the
   * same key settles whether it exists: 409 (it did) or a new debit (it did not, it does now)
   * both leave one debit, which is then refunded; a refusal (no such debit, balance short)
   * leaves nothing to refund. This relies on Dodo checking the key before the balance, as
   * the sandbox does (the spec does not say). Either way the send ends failed, and a retry
   * with the key starts a fresh attempt.
   */
  async function voidReservation(sendId: string, record: SendRecord) {
    try {
      await billing.reserve(record.customerId, record.credits, upstreamKeys(sendId, record.attempt).debit, reserveReason(sendId, record));
    } catch (err) {
      if (!(err instanceof InsufficientCredits)) throw err; // still no answer: the next pass
      update(sendId, record, { state: 'failed', attempt: record.attempt + 1 });
      return;
    }
    update(sendId, record, { state: 'refunding', refund: { credits: record.credits, reason: `refund: ${reserveReason(sendId, record)} voided (billing did not answer)`, retryable: true } });
    await store.flush();
    await finishRefund(sendId, record);
  }

  /** Step: settle. Credits follow what Resend did, never what we hoped it did. */
  async function settle(sendId: string, record: SendRecord, s: Settlement): Promise<StoredResponse> {
    switch (s.kind) {
      case 'done':
        if (s.refund && s.refund.credits > 0) {
          update(sendId, record, { state: 'refunding', refund: { ...s.refund, retryable: false }, result: s.response });
          await store.flush();
          await finishRefund(sendId, record);
        } else {
          update(sendId, record, { state: 'done', result: s.response });
        }
        return s.response;
      case 'retry':
        update(sendId, record, { state: 'refunding', refund: { credits: record.credits, reason: s.reason, retryable: true } });
        await store.flush();
        await finishRefund(sendId, record);
        throw s.error;
      case 'unknown':
        throw new HttpError(
          503,
          'delivery_unconfirmed',
          'We could not confirm whether the email provider accepted this email. Retry with the same Idempotency-Key: it completes exactly once, with no second email and no second charge.',
          { 'Retry-After': '2' },
        );
    }
  }

  /** Gives back the credits recorded in `refund`; then either a fresh attempt may start or the send is final. */
  async function finishRefund(sendId: string, record: SendRecord) {
    const refund = record.refund!;
    await billing.refund(record.customerId, refund.credits, upstreamKeys(sendId, record.attempt).refund, refund.reason);
    if (refund.retryable) update(sendId, record, { state: 'failed', attempt: record.attempt + 1, refund: undefined });
    else update(sendId, record, { state: 'done', refund: undefined });
  }

  /** Patches the record in place and journals its whole new value; a send that ends lets go of its payload. */
  function update(sendId: string, record: SendRecord, patch: Partial<SendRecord>) {
    Object.assign(record, patch, { updatedAt: now().toISOString() });
    store.set('sends', sendId, record);
    if (isUnsettled(record)) unsettled.add(sendId);
    else unsettled.delete(sendId);
    // Nothing more will be delivered without a client's retry, which brings the emails again.
    if (record.state === 'done' || record.state === 'failed' || record.state === 'unsure') store.delete('payloads', sendId);
  }

  /**
   * Step, without a client: a send left unsettled (its client got 503 delivery_unconfirmed
   * and never came back, or the server stopped mid-send) is driven to its end. Unconfirmed:
   * redelivered under the same attempt's Resend key, so Resend answers the first email's id
   * if it went out and sends it now if it did not: one email either way, then settled as a
   * client's retry would be. Mid-refund: the refund is finished.
   */
  async function reconcileOne(sendId: string, record: SendRecord): Promise<void> {
    if (record.state === 'refunding') {
      await track(sendId, record.fingerprint, finishRefund(sendId, record), true);
      return;
    }
    if (record.state === 'unsure') {
      await track(sendId, record.fingerprint, voidReservation(sendId, record), true);
      return;
    }
    if (now().getTime() - Date.parse(record.createdAt) > REDELIVER_WITHIN_MS) {
      // Resend may have forgotten the key: a redelivery could be a second email. The credit
      // stays, as the email may be out; the send's answer says so, and an operator is told.
      update(sendId, record, { state: 'done', result: UNCONFIRMED_FOR_GOOD });
      log?.error({ sendId, customerId: record.customerId, credits: record.credits }, 'send left unconfirmed for good: credit kept, check Resend');
      return;
    }
    // A record written before payloads were kept: only its client's retry can complete it.
    const payload = store.data.payloads[sendId];
    if (!payload) return;
    await track(sendId, record.fingerprint, run(sendId, record, deliverer(payload)), true);
  }

  /**
   * Drops finished records past the retention window. The store lists records oldest first,
   * so this stops at the first young one: the cost is what it drops, not what it keeps.
   */
  function prune() {
    const cutoff = now().getTime() - KEY_RETENTION_MS;
    for (const id of store.keys('sends')) {
      const r = records[id]!;
      if (Date.parse(r.createdAt) >= cutoff) break;
      if ((r.state === 'done' || r.state === 'failed') && !running.has(id)) store.delete('sends', id);
    }
  }

  function newRecord(customerId: string, fingerprint: string, credits: number): SendRecord {
    const at = now().toISOString();
    return { customerId, fingerprint, credits, attempt: 0, state: 'new', createdAt: at, updatedAt: at };
  }

  const sender: Sender = {
    send(customerId, email, clientKey) {
      return begin(customerId, clientKey, email, { batch: false, emails: [email] });
    },
    sendBatch(customerId, emails, clientKey) {
      return begin(customerId, clientKey, emails, { batch: true, emails });
    },
    reconcile() {
      // One pass at a time; a pass asked for during one joins it.
      reconciling ??= (async () => {
        prune();
        const cutoff = now().getTime() - graceMs;
        let settled = 0;
        for (const sendId of [...unsettled]) {
          if (stopping) break;
          const record = records[sendId];
          if (!record || !isUnsettled(record)) {
            unsettled.delete(sendId);
            continue;
          }
          if (running.has(sendId) || Date.parse(record.updatedAt) > cutoff) continue;
          try {
            await reconcileOne(sendId, record);
          } catch (err) {
            // Still unsettled (Resend or Dodo failing, no answer again): the next pass retries.
            // Settled with an error (Resend refused: refunded) is an end like any other.
            if (isUnsettled(record)) log?.warn({ sendId, err }, 'reconciler could not settle a send yet');
          }
          if (!isUnsettled(record)) {
            settled++;
            log?.info({ sendId, customerId: record.customerId, state: record.state, status: record.result?.status }, 'reconciler settled a send');
          }
        }
        return settled;
      })().finally(() => {
        reconciling = null;
      });
      return reconciling;
    },
    async drain() {
      stopping = true;
      if (timer) clearInterval(timer);
      await reconciling?.catch(() => undefined);
      await Promise.allSettled([...running.values()].map((r) => r.promise));
      await store.flush();
    },
  };
  return sender;
}

/** A send that holds, or may hold, credits whose outcome is still open: the reconciler's. */
function isUnsettled(record: SendRecord): boolean {
  return record.state === 'delivering' || record.state === 'refunding' || record.state === 'unsure';
}

/** The reason on a send's debit; a retry of the debit under the same key repeats it exactly. */
function reserveReason(sendId: string, record: SendRecord): string {
  return record.credits === 1 ? `email send ${sendId}` : `email batch ${sendId} (${record.credits} emails)`;
}

/** The answer of a send whose delivery could not be confirmed within Resend's key window. */
const UNCONFIRMED_FOR_GOOD: StoredResponse = {
  status: 502,
  body: {
    error: {
      code: 'delivery_unconfirmed',
      message: 'The email provider never confirmed this email within 24 hours. It may have been delivered, so its credit was kept; contact support to check it.',
    },
  },
};

function assertSameBody(expected: string, actual: string) {
  if (expected !== actual) {
    throw new HttpError(
      422,
      'idempotency_key_reused',
      'This Idempotency-Key was already used with a different request body. Use a new key for a new email.',
    );
  }
}

function settleSingle(d: Delivery, sendId: string): Settlement {
  if (d.kind === 'sent') return { kind: 'done', response: { status: 200, body: { id: d.id } } };
  if (d.kind === 'unknown') return { kind: 'unknown' };
  if (d.retryable) return { kind: 'retry', reason: `refund: email send ${sendId} not accepted (${d.name})`, error: providerBusy(d) };
  return {
    kind: 'done',
    response: { status: 422, body: { error: { code: 'email_rejected', message: `The email provider rejected this email: ${d.message}` } } },
    refund: { credits: 1, reason: `refund: email send ${sendId} rejected (${d.name})` },
  };
}

function settleBatch(d: BatchDelivery, sendId: string, count: number): Settlement {
  if (d.kind === 'unknown') return { kind: 'unknown' };
  if (d.kind === 'rejected') {
    if (d.retryable) return { kind: 'retry', reason: `refund: email batch ${sendId} not accepted (${d.name})`, error: providerBusy(d) };
    return {
      kind: 'done',
      response: { status: 422, body: { error: { code: 'email_rejected', message: `The email provider rejected this batch: ${d.message}` } } },
      refund: { credits: count, reason: `refund: email batch ${sendId} rejected (${d.name})` },
    };
  }
  const messages = new Map(d.errors.map((e) => [e.index, e.message]));
  const data = d.ids.map((id, index) => (id ? { id } : { error: { code: 'email_rejected', message: messages.get(index) ?? 'Rejected by the email provider.' } }));
  const failed = data.filter((item) => 'error' in item).length;
  return {
    kind: 'done',
    response: { status: 200, body: { data, sent: count - failed, failed } },
    refund: failed ? { credits: failed, reason: `refund: ${failed} of ${count} emails in batch ${sendId} rejected` } : undefined,
  };
}

function providerBusy(d: { status: number; retryAfterSec?: number }): HttpError {
  const retryAfter = String(Math.max(1, Math.ceil(d.retryAfterSec ?? 2)));
  return d.status === 429
    ? new HttpError(429, 'email_rate_limited', 'The email provider is rate limiting us. Nothing was sent or charged; retry after the Retry-After delay.', { 'Retry-After': retryAfter })
    : new HttpError(503, 'email_provider_unavailable', 'The email provider is failing right now. Nothing was sent or charged; retry shortly.', { 'Retry-After': retryAfter });
}
