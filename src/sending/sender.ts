import { randomUUID } from 'node:crypto';
import type { Billing } from '../billing/billing';
import { HttpError } from '../errors';
import type { BatchDelivery, Delivery, Mailer, OutgoingEmail } from '../mail/mailer';
import type { AppStore } from '../state';
import { fingerprintOf, KEY_RETENTION_MS, sendIdFor, upstreamKeys, type SendRecord, type StoredResponse } from './records';

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
  /** Resolves once every send in flight in this process has finished (graceful shutdown). */
  drain(): Promise<void>;
}

/** How a delivery settles the credits it reserved. */
type Settlement =
  /** Final answer; `refund` gives back the credits of items that were not sent. */
  | { kind: 'done'; response: StoredResponse; refund?: { credits: number; reason: string } }
  /** Nothing was sent and a later try may work: give every credit back, allow a fresh attempt. */
  | { kind: 'retry'; reason: string; error: HttpError }
  /** Nothing can be known: keep the reservation; the same key's retry completes it. */
  | { kind: 'unknown' };

export function createSender(opts: { billing: Billing; mailer: Mailer; store: AppStore; now?: () => Date }): Sender {
  const { billing, mailer, store } = opts;
  const now = opts.now ?? (() => new Date());
  const records = store.data.sends;
  const running = new Map<string, { fingerprint: string; promise: Promise<StoredResponse> }>();
  let created = 0;

  /** Joins a running send with the same id, replays a finished one, or starts one. */
  async function begin(
    customerId: string,
    clientKey: string | undefined,
    body: unknown,
    credits: number,
    deliver: (resendKey: string, sendId: string) => Promise<Settlement>,
  ): Promise<SendOutcome> {
    // Without a client key every request is a new send; the generated key is returned so
    // the client can still retry an ambiguous outcome safely.
    const key = clientKey ?? randomUUID();
    const sendId = sendIdFor(customerId, key);
    const fingerprint = fingerprintOf(body);
    const headers: Record<string, string> = { 'Idempotency-Key': key };

    const inFlight = running.get(sendId);
    if (inFlight) {
      assertSameBody(inFlight.fingerprint, fingerprint);
      return { ...(await inFlight.promise), headers: { ...headers, 'Idempotent-Replayed': 'true' } };
    }
    let record = records[sendId];
    if (record) {
      assertSameBody(record.fingerprint, fingerprint);
      if (record.state === 'done' && record.result) return { ...record.result, headers: { ...headers, 'Idempotent-Replayed': 'true' } };
    } else {
      record = newRecord(customerId, fingerprint, credits);
      store.set('sends', sendId, record);
      if (++created % 500 === 0) prune();
    }
    const promise = run(sendId, record, deliver);
    running.set(sendId, { fingerprint, promise });
    try {
      return { ...(await promise), headers };
    } catch (err) {
      if (err instanceof HttpError) Object.assign(err.headers, headers);
      throw err;
    } finally {
      running.delete(sendId);
    }
  }

  async function run(sendId: string, record: SendRecord, deliver: (resendKey: string, sendId: string) => Promise<Settlement>) {
    if (record.state === 'refunding') await finishRefund(sendId, record);
    if (record.state === 'done' && record.result) return record.result;

    if (record.state === 'new') {
      await reserve(sendId, record);
      update(sendId, record, { state: 'delivering' });
    }
    const settlement = await deliver(upstreamKeys(sendId, record.attempt).resend, sendId);
    return settle(sendId, record, settlement);
  }

  /** Step: reserve. Dodo's 400 on a short balance is the atomic guard; there is no pre-flight balance read. */
  async function reserve(sendId: string, record: SendRecord) {
    const reason = record.credits === 1 ? `email send ${sendId}` : `email batch ${sendId} (${record.credits} emails)`;
    try {
      await billing.reserve(record.customerId, record.credits, upstreamKeys(sendId, record.attempt).debit, reason);
    } catch (err) {
      // Nothing was sent. On a refusal (402) nothing was reserved either; on a Dodo outage the
      // debit may or may not exist, and the same key's retry resolves it (Dodo 409 → deliver).
      // Either way the record goes, so a retry, e.g. after a top-up, starts cleanly.
      if (record.attempt === 0) store.delete('sends', sendId);
      throw err;
    }
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
    if (refund.retryable) update(sendId, record, { state: 'new', attempt: record.attempt + 1, refund: undefined });
    else update(sendId, record, { state: 'done', refund: undefined });
  }

  /** Patches the record in place and journals its whole new value. */
  function update(sendId: string, record: SendRecord, patch: Partial<SendRecord>) {
    Object.assign(record, patch, { updatedAt: now().toISOString() });
    store.set('sends', sendId, record);
  }

  function newRecord(customerId: string, fingerprint: string, credits: number): SendRecord {
    const at = now().toISOString();
    return { customerId, fingerprint, credits, attempt: 0, state: 'new', createdAt: at, updatedAt: at };
  }

  /** Drops finished records older than the key retention window. */
  function prune() {
    const cutoff = now().getTime() - KEY_RETENTION_MS;
    for (const [id, r] of Object.entries(records)) {
      if (r.state === 'done' && Date.parse(r.updatedAt) < cutoff) store.delete('sends', id);
    }
  }

  return {
    send(customerId, email, clientKey) {
      return begin(customerId, clientKey, email, 1, async (resendKey, sendId) =>
        settleSingle(await mailer.deliver(email, resendKey), sendId),
      );
    },
    sendBatch(customerId, emails, clientKey) {
      return begin(customerId, clientKey, emails, emails.length, async (resendKey, sendId) =>
        settleBatch(await mailer.deliverBatch(emails, resendKey), sendId, emails.length),
      );
    },
    async drain() {
      await Promise.allSettled([...running.values()].map((r) => r.promise));
      await store.flush();
    },
  };
}

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
