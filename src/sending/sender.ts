import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Billing } from '../billing/billing';
import type { Credits } from '../billing/credits';
import type { Database } from '../db/index';
import { acquireSend, findSend, insertOrGetSend, LostClaim, payloadOf, pruneSends, putPayload, releasedByTransition, releaseSend, renewClaims, unsettledSends, type SendRow } from '../db/sends';
import { forgetEmailsBefore, insertEmails } from '../db/emails';
import { HttpError } from '../errors';
import { recipientCount, type Mailer, type OutgoingEmail } from '../mail/mailer';
import type { Logger } from '../logger';
import { acceptedAnswer, emailIdsOf, fingerprintOf, KEY_RETENTION_MS, sendIdFor, type SendPayload, type StoredResponse } from './records';
import { queuedHistory } from './history';
import { createAcceptRoom } from './room';
import { createDispatcher } from './dispatcher';
import { pruneFlights } from '../db/flights';
import { deliver, finishRefund, redeliver, resultOf, runSend, voidReservation, type StepContext } from './steps';

/** What the route writes back: status, body, and the headers that let a client retry safely. */
export interface SendOutcome extends StoredResponse {
  headers: Record<string, string>;
}

/** One item of a batch as the route validated it. */
export type BatchItem = OutgoingEmail;

/**
 * How a send is answered. `async`: once its credits are taken and it is queued (202, MailKit's
 * own ids, `Prefer: respond-async`); it is then delivered in the background, through outages,
 * and its fate is read from the email history. Otherwise once Resend accepted it (its ids).
 */
export interface SendOptions {
  async?: boolean;
}

/** The send itself: idempotency claim → reserve → deliver → settle. */
export interface Sender {
  send(customerId: string, email: OutgoingEmail, clientKey: string | undefined, opts?: SendOptions): Promise<SendOutcome>;
  sendBatch(customerId: string, emails: BatchItem[], clientKey: string | undefined, opts?: SendOptions): Promise<SendOutcome>;
  /**
   * One pass of the reconciler (it also runs on its own every `intervalMs`): claims every send
   * left reserving, delivering or refunding, untouched for `graceMs` and held by nobody, drives
   * it to its end, and prunes settled sends past the key retention window. Resolves to the
   * sends it settled.
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

/** How long an instance's claim on a send holds without renewal; renewed every third of it while the send runs. */
const DEFAULT_CLAIM_MS = 30_000;
/** How long a request waits for the same key running on another instance before answering 409. */
const WAIT_FOR_OTHER_MS = 10_000;
/**
 * Emails an instance holds accepted (answered 202) and not yet delivered: 5 s of Resend's
 * default quota (2 batch calls a second, 100 emails each). Past it, a send to be answered once
 * queued waits for room (ACCEPT_WAIT_MS), then is refused (429, nothing taken) rather than
 * queued without bound.
 */
const DEFAULT_ACCEPT_LIMIT = 1_000;
/** How long a send to be answered once queued waits for room before its 429: the flights free 200 places a second at Resend's default quota. */
const ACCEPT_WAIT_MS = 1_000;
/** Longest pause between two tries of an accepted send's delivery (Resend failing, or out of turns). */
const ACCEPTED_RETRY_MAX_MS = 10_000;

export function createSender(opts: {
  billing: Billing;
  /** The balance sends are paid from. */
  credits: Credits;
  mailer: Mailer;
  database: Database;
  log?: Logger;
  now?: () => Date;
  reconcile?: ReconcileOptions;
  /** This instance's name in claims (default host:pid:random). */
  instanceId?: string;
  /** How long a claim holds without renewal (default 30 s; tests shorten it to play a dead instance). */
  claimMs?: number;
  /** false: one Resend call per send instead of shared flights (default true). */
  dispatch?: boolean;
  /** Emails held accepted and undelivered at once by this instance (default 1,000). */
  acceptLimit?: number;
  /**
   * How many emails a second the flights deliver at most (Resend's quota × 100); a send that
   * could not get room within its wait at that pace is refused at once. Absent: Resend is not
   * budgeted, and a send waits its whole wait.
   */
  deliveredPerSecond?: number;
  /** How long the email history is kept, days (EMAIL_HISTORY_DAYS; absent: for ever). Pruned by the reconciler's passes. */
  historyDays?: number;
}): Sender {
  const { database, mailer, log } = opts;
  const now = () => (opts.now ? opts.now().getTime() : Date.now());
  const graceMs = opts.reconcile?.graceMs ?? 60_000;
  const intervalMs = opts.reconcile?.intervalMs ?? 30_000;
  const claimMs = opts.claimMs ?? DEFAULT_CLAIM_MS;
  const owner = opts.instanceId ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  // First tries of every send share Resend batch calls (flights); see dispatcher.ts.
  const dispatcher = opts.dispatch === false ? undefined : createDispatcher({ database, mailer, log, owner });
  const ctx: StepContext = { database, billing: opts.billing, credits: opts.credits, mailer, dispatcher, log, owner, now };
  /** Runs in this process by send id: a request for the same send joins it. `reconciler` marks the reconciler's own. */
  const running = new Map<string, { fingerprint: string; promise: Promise<StoredResponse>; reconciler: boolean; accepted?: Promise<StoredResponse> }>();
  let stopping = false;
  /** Wakes accepted sends waiting to try again, at shutdown (they are left to the reconciler). */
  const stopped = new AbortController();
  const acceptLimit = opts.acceptLimit ?? DEFAULT_ACCEPT_LIMIT;
  /** Room for the emails of accepted sends not yet settled (room.ts). */
  const acceptRoom = createAcceptRoom({ limit: acceptLimit, waitMs: ACCEPT_WAIT_MS, drainPerSecond: opts.deliveredPerSecond });
  let reconciling: Promise<number> | null = null;
  const timer = intervalMs > 0 ? setInterval(() => void sender.reconcile().catch((err: unknown) => log?.error({ err }, 'reconcile pass failed')), intervalMs) : null;
  // Claims on the sends this process runs are renewed while they run; a process that dies lets them expire.
  const renewer = setInterval(() => {
    void renewClaims(database, owner, [...running.keys()], now() + claimMs).catch((err: unknown) => log?.warn({ err }, 'could not renew send claims'));
  }, claimMs / 3);
  // Neither must keep a finished test or CLI process alive.
  timer?.unref();
  renewer.unref();

  /** Claims the key (one atomic insert), joins or waits for a run of the same send, replays a finished one, or runs it. */
  async function begin(customerId: string, clientKey: string | undefined, body: unknown, payload: SendPayload): Promise<SendOutcome> {
    // Without a client key every request is a new send; the generated key is returned so the
    // client can still retry an ambiguous outcome safely.
    const key = clientKey ?? randomUUID();
    const sendId = sendIdFor(customerId, key);
    const fingerprint = fingerprintOf(body);
    const headers: Record<string, string> = { 'Idempotency-Key': key };
    const replayed = (r: StoredResponse): SendOutcome => ({ ...r, headers: { ...headers, 'Idempotent-Replayed': 'true' } });
    const payloadText = JSON.stringify(payload);
    const waitUntil = now() + WAIT_FOR_OTHER_MS;
    // A send to be answered once queued holds its room among the accepted emails before it is
    // claimed; without room it is refused with nothing recorded. A run that starts takes the
    // room over; anything else (a replay, a refusal) gives it back.
    let room = 0;
    if (payload.async && !running.has(sendId)) {
      const count = payload.emails.length;
      if (!(await acceptRoom.hold(customerId, count))) {
        const seconds = Math.max(1, Math.ceil(((acceptRoom.held() + acceptRoom.waiting() + count - acceptLimit) / acceptLimit) * 5));
        throw new HttpError(429, 'send_queue_full', "MailKit is holding as many emails as the email provider's quota delivers in the next seconds. Nothing was taken; retry after the Retry-After delay.", {
          'Retry-After': String(seconds),
          ...headers,
        });
      }
      room = count;
    }
    const takeRoom = () => {
      const n = room;
      room = 0;
      return n;
    };

    try {
      for (;;) {
        const local = running.get(sendId);
        if (local) {
          assertSameBody(local.fingerprint, fingerprint);
          // A client's run: answer what it answers. The reconciler's: let it finish, then look again.
          if (!local.reconciler) return replayed(await (local.accepted ?? local.promise));
          await local.promise.catch(() => undefined);
          continue;
        }
        const t = now();
        const credits = payload.emails.reduce((n, e) => n + recipientCount(e), 0);
        const { created, row: existing } = await insertOrGetSend(database, newRow(customerId, key, sendId, fingerprint, credits, t, owner, t + claimMs), payloadText);
        if (!existing) continue; // deleted between two statements: claim again
        if (created) return { ...(await (payload.async ? accept(existing, fingerprint, payload, payloadText, takeRoom()) : track(sendId, fingerprint, existing, false))), headers };
        assertSameBody(existing.fingerprint, fingerprint);
        if (existing.state === 'done') return replayed(resultOf(existing));
        const mine = await acquireSend(database, sendId, owner, t, t + claimMs);
        if (mine) {
          if (mine.state === 'done') {
            await releaseSend(database, sendId, owner);
            return replayed(resultOf(mine));
          }
          // A retry re-supplies the payload; one already stored (an attempt in doubt) wins, and
          // so does how it is answered.
          await putPayload(database, sendId, payloadText);
          const stored = await storedPayload(sendId);
          if (stored?.async) return { ...(await accept(mine, fingerprint, stored, payloadText, takeRoom())), headers };
          return { ...(await track(sendId, fingerprint, mine, false, (r) => runSend(ctx, r, payloadText))), headers };
        }
        // Accepted and paid, running on another instance: its answer is already known.
        if (existing.state === 'delivering' || existing.state === 'refunding') {
          const stored = await storedPayload(sendId);
          if (stored?.async) return replayed(acceptedAnswer(existing.id, existing.nonce, stored));
        }
        // Running on another instance: wait for it, then replay its answer or take over.
        if (now() >= waitUntil) {
          throw new HttpError(409, 'idempotency_key_in_use', 'A request with this Idempotency-Key is still being processed. Retry after the Retry-After delay to get its result.', {
            'Retry-After': '2',
          });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (err) {
      if (err instanceof HttpError) Object.assign(err.headers, headers);
      throw err;
    } finally {
      if (room) acceptRoom.free(customerId, takeRoom());
    }
  }

  async function storedPayload(sendId: string): Promise<SendPayload | undefined> {
    const text = await payloadOf(database, sendId);
    return text ? (JSON.parse(text) as SendPayload) : undefined;
  }

  /**
   * A send this instance holds, answered once it is paid and queued (202, MailKit's ids): its
   * emails enter the history as queued, and its delivery goes on in the background (below).
   * `room`: the places among the accepted emails its request holds, given back when it settles.
   */
  async function accept(row: SendRow, fingerprint: string, payload: SendPayload, payloadText: string, room: number): Promise<StoredResponse> {
    const count = payload.emails.length;
    let answer!: (r: StoredResponse) => void;
    let refuse!: (err: unknown) => void;
    const accepted = new Promise<StoredResponse>((resolve, reject) => {
      answer = resolve;
      refuse = reject;
    });
    let paidOnce = false;
    const onPaid = async (paid: SendRow) => {
      if (paidOnce) return;
      paidOnce = true;
      const ids = emailIdsOf(paid.id, paid.nonce, count);
      // Its fate is visible from now on. Should this fail, the emails are recorded when they settle.
      await insertEmails(database.db, queuedHistory(paid, ids, payload.emails), now()).catch((err: unknown) => log?.warn({ sendId: paid.id, err }, 'could not record queued emails yet'));
      answer(acceptedAnswer(paid.id, paid.nonce, payload));
    };
    const run = track(row.id, fingerprint, row, false, (r) => deliverAccepted(r, payloadText, onPaid), accepted);
    void run.then(answer, refuse).finally(() => acceptRoom.free(row.customerId, room));
    return accepted;
  }

  /**
   * The delivery of an accepted send: tried until Resend answers for good. A refusal that
   * proves nothing was sent (no turn, Resend's 429 or 5xx) sends it in a later flight; an
   * outcome in doubt is asked again under the same key (steps.ts). At shutdown the send is left
   * to the reconciler, on this instance or another.
   */
  async function deliverAccepted(row: SendRow, payloadText: string, onPaid: (row: SendRow) => Promise<void>): Promise<StoredResponse> {
    let paid = false;
    const paying = async (r: SendRow) => {
      paid = true;
      await onPaid(r);
    };
    /** Resend refused MailKit's key last time: the next try is under the same key (sending/README.md). */
    let sameKey = false;
    for (let pause = 1_000; ; pause = Math.min(pause * 2, ACCEPTED_RETRY_MAX_MS)) {
      try {
        // Refused with nothing sent: its next try is a fresh one, in the next flight.
        if (paid && !sameKey && row.state === 'delivering' && !row.inDoubt && !row.flightId) return await deliver(ctx, row, true);
        return await runSend(ctx, row, payloadText, paying);
      } catch (err) {
        if (!paid || stopping || !(err instanceof HttpError) || err.status === 409) throw err;
        sameKey = err.code === 'email_sending_paused';
        const retryAfter = Number(err.headers['Retry-After']) * 1_000 || 0;
        await sleep(Math.max(pause, retryAfter), undefined, { signal: stopped.signal }).catch(() => undefined);
        if (stopping) throw err;
        const again = await findSend(database, row.id);
        if (!again || again.owner !== owner) throw err;
        if (again.state === 'done') return resultOf(again);
        row = again;
      }
    }
  }

  /**
   * Runs a send this instance holds, registered so that a request for the same send joins it;
   * lets go of the claim at the end, unless the run's last transition did (`done` commits with
   * the claim let go: db/sends.ts releasedByTransition).
   */
  async function track(
    sendId: string,
    fingerprint: string,
    row: SendRow,
    reconciler: boolean,
    step: (row: SendRow) => Promise<StoredResponse | void> = (r) => runSend(ctx, r),
    accepted?: Promise<StoredResponse>,
  ): Promise<StoredResponse> {
    releasedByTransition(database, sendId, owner); // nothing from an earlier run counts
    const promise = (async () => {
      try {
        return (await step(row)) as StoredResponse;
      } catch (err) {
        if (err instanceof LostClaim) {
          // Another instance took the send over (this one stalled past its claim): its run answers.
          log?.warn({ sendId }, 'send claim lost mid-run');
          throw new HttpError(409, 'idempotency_key_in_use', 'This send is being completed by another request. Retry after the Retry-After delay to get its result.', { 'Retry-After': '2' });
        }
        throw err;
      } finally {
        if (!releasedByTransition(database, sendId, owner)) await releaseSend(database, sendId, owner).catch((err: unknown) => log?.warn({ sendId, err }, 'could not release a send claim (it expires by itself)'));
      }
    })();
    running.set(sendId, { fingerprint, promise, reconciler, accepted });
    try {
      return await promise;
    } finally {
      running.delete(sendId);
    }
  }

  /** The reconciler's step for one claimed row. */
  const settleAlone = (row: SendRow) =>
    row.state === 'refunding' ? finishRefund(ctx, row).then(() => undefined) : row.state === 'reserving' ? voidReservation(ctx, row) : redeliver(ctx, row);

  async function reconcilePass(): Promise<number> {
    await pruneSends(database, now() - KEY_RETENTION_MS);
    if (opts.historyDays) await forgetEmailsBefore(database, now() - opts.historyDays * 86_400_000);
    // A flight's body is kept while one of its sends is still delivering, a minute at least.
    await pruneFlights(database, now() - 60_000, now() - KEY_RETENTION_MS);
    let settled = 0;
    for (;;) {
      if (stopping) break;
      const t = now();
      const batch = await unsettledSends(database, t - graceMs, t, 50);
      let progressed = false;
      for (const candidate of batch) {
        if (stopping) break;
        if (running.has(candidate.id)) continue;
        const row = await acquireSend(database, candidate.id, owner, now(), now() + claimMs);
        if (!row || !['reserving', 'delivering', 'refunding'].includes(row.state)) {
          if (row) await releaseSend(database, row.id, owner);
          continue; // another reconciler took it, or it settled meanwhile
        }
        try {
          await track(row.id, row.fingerprint, row, true, settleAlone);
        } catch (err) {
          log?.warn({ sendId: row.id, err }, 'reconciler could not settle a send yet');
        }
        const after = await findSend(database, row.id);
        if (!after || !['reserving', 'delivering', 'refunding'].includes(after.state)) {
          settled++;
          progressed = true;
          log?.info({ sendId: row.id, customerId: row.customerId, state: after?.state, status: after?.resultStatus }, 'reconciler settled a send');
        }
      }
      // Rows still unsettled were touched (updatedAt moved): they leave the window until the next pass.
      if (batch.length < 50 || !progressed) break;
    }
    return settled;
  }

  const sender: Sender = {
    send(customerId, email, clientKey, sendOpts = {}) {
      return begin(customerId, clientKey, email, { batch: false, from: mailer.from, emails: [email], ...(sendOpts.async ? { async: true } : {}) });
    },
    sendBatch(customerId, emails, clientKey, sendOpts = {}) {
      return begin(customerId, clientKey, emails, { batch: true, from: mailer.from, emails, ...(sendOpts.async ? { async: true } : {}) });
    },
    reconcile() {
      // One pass at a time in this process; a pass asked for during one joins it.
      reconciling ??= reconcilePass().finally(() => {
        reconciling = null;
      });
      return reconciling;
    },
    async drain() {
      stopping = true;
      acceptRoom.close();
      stopped.abort();
      if (timer) clearInterval(timer);
      await reconciling?.catch(() => undefined);
      await Promise.allSettled([...running.values()].map((r) => r.promise));
      clearInterval(renewer);
    },
  };
  return sender;
}

/** A new send, claimed by `owner` from the start: the insert is the claim. */
function newRow(customerId: string, clientKey: string, id: string, fingerprint: string, credits: number, at: number, owner: string, claimedUntil: number): SendRow {
  return {
    id,
    customerId,
    clientKey,
    fingerprint,
    credits,
    state: 'reserving',
    attempt: 0,
    nonce: randomBytes(9).toString('base64url'),
    inDoubt: 0,
    refundCredits: null,
    refundReason: null,
    refundRetryable: null,
    resultStatus: null,
    resultBody: null,
    owner,
    claimedUntil,
    createdAt: at,
    updatedAt: at,
    deliveringSince: null,
    flightId: null,
    flightOffset: null,
    funding: 'balance',
    leaseId: null,
  };
}

function assertSameBody(expected: string, actual: string) {
  if (expected !== actual) {
    throw new HttpError(422, 'idempotency_key_reused', 'This Idempotency-Key was already used with a different request body. Use a new key for a new email.');
  }
}
