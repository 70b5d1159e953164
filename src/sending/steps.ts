import { DodoUnavailable, InsufficientCredits, type Billing } from '../billing/billing';
import type { Database } from '../db/index';
import { deleteSend, findSend, LostClaim, payloadOf, putPayload, transitionSend, type SendRow } from '../db/sends';
import { HttpError } from '../errors';
import { recipientCount, type BatchDelivery, type Delivery, type Mailer, type OutgoingEmail } from '../mail/mailer';
import type { Logger } from '../logger';
import { releaseFlightOf } from '../db/flights';
import type { Dispatcher } from './dispatcher';
import { findBalance, payFromBalance, type SpendEnd } from '../db/credits';
import type { Credits } from '../billing/credits';
import { settledHistory } from './history';
import { acceptedAnswer, emailIdsOf, REDELIVER_WITHIN_MS, upstreamKeys, type SendPayload, type StoredResponse } from './records';

/**
 * The steps of one send, each a function of the send's row: reserve, deliver, settle, refund.
 * Every step commits the row's new state (a conditional update from the state it expects,
 * held by this instance) before the next upstream call, and before the client hears anything.
 * README.md in this folder has the state machine.
 */
export interface StepContext {
  database: Database;
  /** Packs first tries into shared Resend batch calls; absent: one call per send. */
  dispatcher?: Dispatcher;
  /** The balance sends are paid from (seeded from Dodo on a customer's first send). */
  credits: Credits;
  /** Dodo, for what sends paid by a Dodo debit of their own (before balances) still owe. */
  billing: Billing;
  mailer: Mailer;
  log?: Logger;
  /** This instance's claim owner id. */
  owner: string;
  now: () => number;
}

/**
 * Runs a send this instance holds from whatever state it is in to an answer; `payloadText`: the
 * client's request, when a client runs it. `onPaid` is called once the send's credits are
 * taken (or found taken), before its delivery: a send answered once queued answers there.
 */
export async function runSend(
  ctx: StepContext,
  row: SendRow,
  payloadText?: string,
  onPaid?: (row: SendRow) => Promise<void>,
): Promise<StoredResponse> {
  if (row.state === 'refunding') {
    row = await finishRefund(ctx, row);
    // The refund ended the attempt and dropped its payload: the client's retry supplied it
    // again (`payloadText`), for the fresh attempt that follows.
    if (row.state === 'failed' && payloadText) await putPayload(ctx.database, row.id, payloadText);
  }
  if (row.state === 'done') return resultOf(row);
  let fresh = false;
  if (row.state === 'failed' || row.state === 'reserving') {
    row = await reserve(ctx, row);
    fresh = true;
  }
  await onPaid?.(row);
  return deliver(ctx, row, fresh);
}

/**
 * Step: reserve. The send's credits are taken from its customer's balance, the one MailKit
 * keeps (src/billing/README.md), and the row moves to delivering, in one transaction with no
 * Dodo call: a short balance is a 402 at once, with nothing held. The first send of a customer
 * MailKit has no balance for yet reads it from Dodo once. A row left reserving by a Dodo debit
 * of its own (from before balances) is voided first.
 */
export async function reserve(ctx: StepContext, row: SendRow): Promise<SendRow> {
  if (row.state === 'reserving' && row.funding === 'debit') {
    await voidReservation(ctx, row);
    row = (await findSend(ctx.database, row.id))!;
  }
  if (row.state === 'failed')
    row = await transitionSend(ctx.database, row.id, ctx.owner, ['failed'], {
      state: 'reserving',
      funding: 'balance',
      leaseId: null,
      inDoubt: 0,
      updatedAt: ctx.now(),
    });
  try {
    let paid = await payFromBalance(ctx.database, row, ctx.owner, ctx.now());
    if (!paid) {
      // No balance yet (the customer's first send), or one seeded meanwhile by a send beside this one: once more.
      if (!(await findBalance(ctx.database, row.customerId))) await ctx.credits.ensure(row.customerId);
      paid = await payFromBalance(ctx.database, row, ctx.owner, ctx.now());
    }
    if (!paid) throw new InsufficientCredits();
    return paid;
  } catch (err) {
    // Nothing is held for a send that was not paid: nothing stays in flight.
    if (!(err instanceof LostClaim)) await dropUnpaid(ctx, row);
    throw err;
  }
}

/** A send that was never paid: a first attempt is as if it never was; a later one ends failed, with the next attempt's keys. */
async function dropUnpaid(ctx: StepContext, row: SendRow): Promise<void> {
  if (row.attempt === 0 && !row.inDoubt) await dropFirstAttempt(ctx, row);
  else await failUnpaid(ctx, row);
}

/** A send still reserving that was never paid ends failed, its payload dropped, with the next attempt's keys. */
async function failUnpaid(ctx: StepContext, row: SendRow): Promise<void> {
  await transitionSend(
    ctx.database,
    row.id,
    ctx.owner,
    ['reserving'],
    { state: 'failed', attempt: row.attempt + 1, inDoubt: 0, updatedAt: ctx.now() },
    { dropPayload: true },
  );
}

/** A first attempt refused before anything was held: its row goes, unless it moved on meanwhile. */
async function dropFirstAttempt(ctx: StepContext, row: SendRow): Promise<void> {
  if (!(await deleteSend(ctx.database, row.id, ctx.owner, ['reserving']))) {
    // Paid after all (the commit's acknowledgement was lost): the row is the truth, and the
    // client's retry under the same key carries it on.
    ctx.log?.warn({ sendId: row.id }, 'a send thought unpaid had moved on: kept');
  }
}

/**
 * Step: deliver, then settle. `fresh`: this is the first call under the attempt's Resend key,
 * made by this run. Otherwise an earlier call may have sent the email (its answer was lost, or
 * its process died), so only a definite answer for the same key settles it: Resend's
 * limiter runs before its idempotency check, so a 429 or 5xx then proves nothing.
 */
export async function deliver(ctx: StepContext, row: SendRow, fresh: boolean): Promise<StoredResponse> {
  const payloadText = await payloadOf(ctx.database, row.id);
  if (!payloadText) throw new Error(`send ${row.id} is delivering without a payload`);
  const payload = JSON.parse(payloadText) as SendPayload;
  const inDoubt = !fresh || row.inDoubt === 1;
  // Resend forgets keys after 24 h: past the window, the same key could send a second email.
  // Checked here, on every path that calls again under a key (a client's retry, the queued
  // loop, the reconciler, an instance taking a send over).
  if (!fresh && ctx.now() - (row.deliveringSince ?? row.createdAt) > REDELIVER_WITHIN_MS) return unconfirmedForGood(ctx, row);
  const delivery = await callResend(ctx, row, payload, fresh);
  const settlement = settlementOf(delivery, row.id, payload, inDoubt);
  try {
    return await settle(ctx, row, settlement, inDoubt, payload.async ? payload : undefined);
  } finally {
    // The last send of a flight to settle lets go of the flight's body.
    await releaseFlightOf(ctx.database, row.id).catch(() => undefined);
  }
}

/**
 * The Resend call of a delivery. First try: the send's emails join the dispatcher's next
 * flight, or, flying alone, go under the send's own key (`alone`). In doubt: the same call
 * again, as it was first made: the flight that carried them (same body, same key), or, for a
 * send that flew in none (alone, delivered one call per send, or never left), its own call. A
 * flight that is gone (older than Resend's key window) cannot be re-sent safely: the outcome
 * stays unknown.
 */
async function callResend(ctx: StepContext, row: SendRow, payload: SendPayload, fresh: boolean): Promise<BatchDelivery> {
  const items = payload.emails.map((email) => ({ email, from: payload.from }));
  if (ctx.dispatcher && fresh)
    return ctx.dispatcher.deliver(row, items, { patient: payload.async === true, alone: () => ownCall(ctx, row, payload, true) });
  if (row.flightId) {
    const again = ctx.dispatcher ? await ctx.dispatcher.redeliver(row, items.length) : null;
    return again ?? { kind: 'unknown', message: 'the flight that carried this send can no longer be re-sent' };
  }
  return ownCall(ctx, row, payload);
}

/**
 * A send's own Resend call, under its own key: the endpoint and body follow the payload alone,
 * so a retry in doubt repeats exactly the call first made. `tokenTaken`: the dispatcher took
 * the call's turn from Resend's budget (a send flying alone).
 */
function ownCall(ctx: StepContext, row: SendRow, payload: SendPayload, tokenTaken = false): Promise<BatchDelivery> {
  const key = upstreamKeys(row.id, row.nonce, row.attempt).resend;
  if (payload.batch) return ctx.mailer.deliverBatch(payload.emails, key, payload.from, { tokenTaken });
  return ctx.mailer
    .deliver(payload.emails[0]!, key, payload.from, { tokenTaken })
    .then((one) => (one.kind === 'sent' ? { kind: 'sent', ids: [one.id], errors: [] } : one));
}

/** How a delivery settles the credits it reserved (sending/README.md, "What Resend's answers prove"). */
type Settlement =
  /** Final answer; `refund` gives back the credits of items that were not sent (`refused`, by index). */
  | {
      kind: 'done';
      response: StoredResponse;
      refund?: { credits: number; reason: string };
      accepted?: Array<{ id: string; email: OutgoingEmail; index: number }>;
      refused?: Array<{ index: number; reason: string }>;
    }
  /** Refused with nothing sent, under a key never in doubt (Resend's 429, no turn): a later try may work. */
  | { kind: 'retry'; reason: string; error: HttpError }
  /** Nothing can be known: keep the credits; only the same key, asked again, completes it. */
  | { kind: 'unknown'; conflict?: boolean; retryAfterSec?: number }
  /** Resend refused MailKit's credentials: the credits stay, the key stays, sending is paused. */
  | { kind: 'paused'; error: HttpError };

/**
 * Step: settle. Credits follow what Resend did, never what we hoped it did. `accepted`: the
 * payload of a send answered once queued; its answer stays the one it gave (202, MailKit's
 * ids) and a refusal that proves nothing was sent keeps it delivering, for its next try.
 */
async function settle(ctx: StepContext, row: SendRow, s: Settlement, inDoubt: boolean, accepted?: SendPayload): Promise<StoredResponse> {
  const at = ctx.now();
  if (accepted && s.kind === 'retry') {
    // Nothing was sent (Resend's limiter refused the call, or no turn came): the credits stay
    // taken and the send waits for its next flight, a fresh call whose key Resend has never
    // stored, so its 23 h window starts again. Its old flight is forgotten (it carried nothing).
    await transitionSend(ctx.database, row.id, ctx.owner, ['delivering'], { flightId: null, flightOffset: null, deliveringSince: at, updatedAt: at });
    throw s.error;
  }
  if (s.kind === 'paused') {
    // Nothing about the email: it keeps its credits, its key and its flight, and goes out once
    // Resend accepts MailKit's key again (this client's retry, the queued loop, the reconciler).
    await transitionSend(ctx.database, row.id, ctx.owner, ['delivering'], { updatedAt: at });
    throw s.error;
  }
  if (s.kind === 'unknown') {
    if (s.conflict) ctx.log?.error({ sendId: row.id }, 'Resend refused the send key for another body: left in doubt, credit kept');
    await transitionSend(ctx.database, row.id, ctx.owner, ['delivering'], { inDoubt: 1, updatedAt: at });
    throw unconfirmed(s.retryAfterSec !== undefined ? String(Math.max(1, Math.ceil(s.retryAfterSec))) : undefined);
  }
  if (s.kind === 'retry') {
    if (paidHere(row)) {
      // Nothing was sent: its credits go back in the transition that ends the attempt.
      await transitionSend(
        ctx.database,
        row.id,
        ctx.owner,
        ['delivering'],
        { state: 'failed', attempt: row.attempt + 1, inDoubt: 0, updatedAt: at },
        { dropPayload: true, spend: spendEnd(row, 0) },
      );
      throw s.error;
    }
    row = await transitionSend(ctx.database, row.id, ctx.owner, ['delivering'], {
      state: 'refunding',
      refundCredits: row.credits,
      refundReason: s.reason,
      refundRetryable: 1,
      updatedAt: at,
    });
    await finishRefund(ctx, row);
    throw s.error;
  }
  // What Resend accepted enters the customer's email history in the transaction that
  // settles the send (a repeat records nothing twice; a failure leaves the send delivering, for a retry).
  const own = accepted && { ids: emailIdsOf(row.id, row.nonce, accepted.emails.length), emails: accepted.emails, refused: s.refused ?? [] };
  const history = settledHistory(row, s.accepted ?? [], at, own);
  if (accepted) s = { ...s, response: acceptedAnswer(row.id, row.nonce, accepted) };
  const result = { resultStatus: s.response.status, resultBody: JSON.stringify(s.response.body) };
  const refunded = s.refund && s.refund.credits > 0 ? s.refund.credits : 0;
  if (!refunded || paidHere(row)) {
    // What was sent is owed to Dodo (settled in arrears), what was refused goes back: both in the
    // transaction that ends the send.
    const spend = paidHere(row) ? spendEnd(row, row.credits - refunded) : undefined;
    await transitionSend(
      ctx.database,
      row.id,
      ctx.owner,
      ['delivering'],
      { state: 'done', inDoubt: 0, ...result, updatedAt: at },
      { dropPayload: true, release: true, history, spend },
    );
    return s.response;
  }
  row = await transitionSend(
    ctx.database,
    row.id,
    ctx.owner,
    ['delivering'],
    {
      state: 'refunding',
      inDoubt: 0,
      refundCredits: refunded,
      refundReason: s.refund!.reason,
      refundRetryable: 0,
      ...result,
      updatedAt: at,
    },
    { history },
  );
  try {
    await finishRefund(ctx, row);
  } catch (err) {
    // What was sent is final, and the answer says so: the refund owed is finished by the
    // reconciler (the row stays refunding), never by a client resending the whole request.
    ctx.log?.warn({ sendId: row.id, err }, 'refund of rejected items postponed to the reconciler');
  }
  return s.response;
}

/**
 * Gives back the credits a send paid by a Dodo debit of its own (before balances) records, under
 * its refund key; then either a fresh attempt may start (failed) or the result stands (done).
 * (A send paid from the balance never waits here: its refund is part of its last transition.)
 */
export async function finishRefund(ctx: StepContext, row: SendRow): Promise<SendRow> {
  await ctx.billing.refund(row.customerId, row.refundCredits!, upstreamKeys(row.id, row.nonce, row.attempt).refund, row.refundReason ?? 'refund');
  return transitionSend(
    ctx.database,
    row.id,
    ctx.owner,
    ['refunding'],
    {
      refundCredits: null,
      refundReason: null,
      refundRetryable: null,
      inDoubt: 0,
      updatedAt: ctx.now(),
      ...(row.refundRetryable ? { state: 'failed', attempt: row.attempt + 1 } : { state: 'done' }),
    },
    { dropPayload: true },
  );
}

/** Paid from the balance MailKit keeps (not by a Dodo debit of its own, or a lease, from before). */
const paidHere = (row: SendRow) => row.funding === 'balance';

/** How a send paid from the balance ends in it: `sent` credits owed to Dodo, the rest given back. */
const spendEnd = (row: SendRow, sent: number): SpendEnd => ({ customerId: row.customerId, held: row.credits, sent, refunded: row.credits - sent });

/**
 * Step, without a client: a debit that may exist (its answer was lost, or its process died
 * asking) is voided. Asking again under the same key settles whether it exists: 409 (it did)
 * or a new debit (it did not, it does now) both leave one debit, which is then refunded; a
 * 400 (no such debit, balance short) leaves nothing. This relies on Dodo checking the key
 * before the balance, as the sandbox does (the spec does not say).
 */
export async function voidReservation(ctx: StepContext, row: SendRow): Promise<void> {
  // Paid from the balance (or a lease): a row still reserving was never paid (paying moves it on atomically).
  if (row.funding !== 'debit') return dropUnpaid(ctx, row);
  const keys = upstreamKeys(row.id, row.nonce, row.attempt);
  try {
    await ctx.billing.reserve(row.customerId, row.credits, keys.debit, reserveReason(row));
  } catch (err) {
    if (!(err instanceof InsufficientCredits)) {
      await transitionSend(ctx.database, row.id, ctx.owner, ['reserving'], { inDoubt: 1, updatedAt: ctx.now() });
      throw err; // still no definite answer: the next pass
    }
    await failUnpaid(ctx, row);
    return;
  }
  row = await transitionSend(ctx.database, row.id, ctx.owner, ['reserving'], {
    state: 'refunding',
    refundCredits: row.credits,
    refundReason: `refund: ${reserveReason(row)} voided (billing did not answer)`,
    refundRetryable: 1,
    updatedAt: ctx.now(),
  });
  await finishRefund(ctx, row);
}

/**
 * Step, without a client: an unconfirmed (or paused) delivery, redelivered under the same
 * attempt's Resend key while Resend still remembers it (deliver checks the 23 h window).
 */
export async function redeliver(ctx: StepContext, row: SendRow): Promise<void> {
  await deliver(ctx, row, false).catch((err: unknown) => {
    // A definite rejection (refunded) is an end like any other; anything else is for the next pass.
    if (!(err instanceof HttpError) || err.code === 'delivery_unconfirmed' || err.code === 'email_sending_paused') throw err;
  });
}

/**
 * A send in doubt past Resend's key window (23 h from its first call under the key): a call
 * now could be a second email, so it ends 502 with its credit kept, and an operator is told.
 */
async function unconfirmedForGood(ctx: StepContext, row: SendRow): Promise<StoredResponse> {
  await transitionSend(
    ctx.database,
    row.id,
    ctx.owner,
    ['delivering'],
    {
      state: 'done',
      resultStatus: UNCONFIRMED_FOR_GOOD.status,
      resultBody: JSON.stringify(UNCONFIRMED_FOR_GOOD.body),
      updatedAt: ctx.now(),
    },
    { dropPayload: true, spend: paidHere(row) ? spendEnd(row, row.credits) : undefined },
  );
  ctx.log?.error({ sendId: row.id, customerId: row.customerId, credits: row.credits }, 'send left unconfirmed for good: credit kept, check Resend');
  return UNCONFIRMED_FOR_GOOD;
}

/** The stored answer of a finished send. */
export function resultOf(row: SendRow): StoredResponse {
  return { status: row.resultStatus ?? 500, body: row.resultBody ? JSON.parse(row.resultBody) : null };
}

/** The reason on a send's debit; a retry of the debit under the same key repeats it exactly. */
function reserveReason(row: SendRow): string {
  return row.credits === 1 ? `email send ${row.id}` : `email batch ${row.id} (${row.credits} emails)`;
}

export function unconfirmed(retryAfter = '2'): HttpError {
  return new HttpError(
    503,
    'delivery_unconfirmed',
    'We could not confirm whether the email provider accepted this email. ' +
      'Its credit is held and MailKit keeps trying under the same provider key; ' +
      'retry with the same Idempotency-Key to get its result: it completes exactly once, with no second email and no second charge.',
    { 'Retry-After': retryAfter },
  );
}

/** The answer of a send whose delivery could not be confirmed within Resend's key window. */
const UNCONFIRMED_FOR_GOOD: StoredResponse = {
  status: 502,
  body: {
    error: {
      code: 'delivery_unconfirmed',
      message:
        'The email provider never confirmed this email within 24 hours. ' +
        'It may have been delivered, so its credit was kept; contact support to check it.',
    },
  },
};

/**
 * What a delivery's answer settles. `inDoubt`: an earlier call under this key may have sent
 * the emails (its answer was lost, a 5xx, or this run did not make it), so only Resend's ids
 * settle it; a refusal (429, a validation error) then proves nothing about that call.
 */
function settlementOf(d: BatchDelivery, sendId: string, payload: SendPayload, inDoubt: boolean): Settlement {
  const { emails, batch } = payload;
  const what = batch ? `email batch ${sendId}` : `email send ${sendId}`;
  if (d.kind === 'unknown') return { kind: 'unknown', conflict: d.conflict, retryAfterSec: d.retryAfterSec };
  if (d.kind === 'paused') return { kind: 'paused', error: sendingPaused(d.retryAfterSec) };
  if (d.kind === 'rejected') {
    if (inDoubt) return { kind: 'unknown', retryAfterSec: d.retryAfterSec };
    if (d.retryable) return { kind: 'retry', reason: `refund: ${what} not accepted (${d.name})`, error: providerBusy(d) };
    const message = `The email provider rejected this ${batch ? 'batch' : 'email'}: ${d.message}`;
    return {
      kind: 'done',
      response: { status: 422, body: { error: { code: 'email_rejected', message } } },
      refund: { credits: emails.reduce((n, e) => n + recipientCount(e), 0), reason: `refund: ${what} rejected (${d.name})` },
      refused: emails.map((_, index) => ({ index, reason: message })),
    };
  }
  // Resend's answer with ids: definite, its items refused included (a replay of the first
  // call's answer, or this call's own).
  const messages = new Map(d.errors.map((e) => [e.index, e.message]));
  const accepted = d.ids.flatMap((id, index) => (id ? [{ id, email: emails[index]!, index }] : []));
  const refused = d.ids.flatMap((id, index) =>
    id ? [] : [{ index, reason: `The email provider rejected this email: ${messages.get(index) ?? 'no reason given'}` }],
  );
  const refunded = emails.reduce((n, e, i) => (d.ids[i] ? n : n + recipientCount(e)), 0);
  if (!batch) {
    if (accepted[0]) return { kind: 'done', response: { status: 200, body: { id: accepted[0].id } }, accepted };
    const message = `The email provider rejected this email: ${messages.get(0) ?? 'no reason given'}`;
    return {
      kind: 'done',
      response: { status: 422, body: { error: { code: 'email_rejected', message } } },
      refund: { credits: refunded, reason: `refund: ${what} rejected (validation_error)` },
      refused: [{ index: 0, reason: message }],
    };
  }
  const data = d.ids.map((id, index) =>
    id ? { id } : { error: { code: 'email_rejected', message: messages.get(index) ?? 'Rejected by the email provider.' } },
  );
  const failed = refused.length;
  return {
    kind: 'done',
    response: { status: 200, body: { data, sent: emails.length - failed, failed } },
    refund: failed ? { credits: refunded, reason: `refund: ${failed} of ${emails.length} emails in batch ${sendId} rejected` } : undefined,
    accepted,
    refused,
  };
}

/** The answer while Resend refuses MailKit's credentials: nothing about the email, which is kept. */
function sendingPaused(retryAfterSec: number): HttpError {
  return new HttpError(
    503,
    'email_sending_paused',
    "Sending is paused: the email provider refused MailKit's credentials. " +
      'Your email is kept with its credit and goes out once sending resumes; retry with the same Idempotency-Key to get its result.',
    { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSec))) },
  );
}

function providerBusy(d: { retryAfterSec?: number }): HttpError {
  const retryAfter = String(Math.max(1, Math.ceil(d.retryAfterSec ?? 2)));
  return new HttpError(
    429,
    'email_rate_limited',
    'The email provider is rate limiting us. Nothing was sent or charged; retry after the Retry-After delay.',
    { 'Retry-After': retryAfter },
  );
}
