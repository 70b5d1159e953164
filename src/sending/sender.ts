import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Billing } from '../billing/billing';
import type { Credits } from '../billing/credits';
import type { Database } from '../db/index';
import type { Logger } from '../logger';
import type { Mailer, OutgoingEmail } from '../mail/mailer';
import { beginSend } from './claim';
import type { Dispatcher } from './dispatcher';
import type { SenderParts } from './parts';
import { reconcilePass, type ReconcileOptions } from './reconciler';
import type { SendOutcome } from './records';
import type { AcceptRoom } from './room';
import { Runs } from './runs';

export type { SendOutcome } from './records';
export type { ReconcileOptions } from './reconciler';

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

/** The send itself: idempotency claim → reserve → deliver → settle (README.md in this folder). */
export interface Sender {
  send(customerId: string, email: OutgoingEmail, clientKey: string | undefined, opts?: SendOptions): Promise<SendOutcome>;
  sendBatch(customerId: string, emails: BatchItem[], clientKey: string | undefined, opts?: SendOptions): Promise<SendOutcome>;
  /**
   * One pass of the reconciler (it also runs on its own every `intervalMs`): claims every send
   * left reserving, delivering or refunding, untouched for `graceMs` and held by nobody, drives
   * it to its end, and prunes what retention lets go. Resolves to the sends it settled.
   */
  reconcile(): Promise<number>;
  /** Stops the reconciler; resolves once every send in flight in this process has finished (graceful shutdown). */
  drain(): Promise<void>;
}

/** How long an instance's claim on a send holds without renewal; renewed every third of it while the send runs. */
const DEFAULT_CLAIM_MS = 30_000;

/**
 * The sender: wires the pieces (claim.ts, the front door; accepted.ts, sends answered once
 * queued; reconciler.ts; runs.ts, the runs of this process and their claims) around what it is
 * handed: the dispatcher packing flights (null: one Resend call per send) and the room for
 * accepted emails, both built by the stack.
 */
export function createSender(opts: {
  billing: Billing;
  /** The balance sends are paid from. */
  credits: Credits;
  mailer: Mailer;
  database: Database;
  /** Packs the first Resend call of every send into shared flights; null: one call per send. */
  dispatcher: Dispatcher | null;
  /** The room for accepted, undelivered emails (room.ts), and the most it holds. */
  room: { room: AcceptRoom; limit: number };
  log?: Logger;
  now?: () => Date;
  reconcile?: ReconcileOptions;
  /** This instance's name in claims (default host:pid:random); the dispatcher's must be the same. */
  instanceId?: string;
  /** How long a claim holds without renewal (default 30 s; tests shorten it to play a dead instance). */
  claimMs?: number;
  /** How long the email history is kept, days (EMAIL_HISTORY_DAYS; absent: for ever). Pruned by the reconciler's passes. */
  historyDays?: number;
}): Sender {
  const { database, log } = opts;
  const now = () => (opts.now ? opts.now().getTime() : Date.now());
  const graceMs = opts.reconcile?.graceMs ?? 60_000;
  const intervalMs = opts.reconcile?.intervalMs ?? 30_000;
  const claimMs = opts.claimMs ?? DEFAULT_CLAIM_MS;
  const owner = opts.instanceId ?? newOwner();
  const stopped = new AbortController();
  const parts: SenderParts = {
    ctx: { database, billing: opts.billing, credits: opts.credits, mailer: opts.mailer, dispatcher: opts.dispatcher ?? undefined, log, owner, now },
    runs: new Runs({ database, owner, claimMs, now, log }),
    room: opts.room.room,
    acceptLimit: opts.room.limit,
    claimMs,
    stopping: { now: false, signal: stopped.signal },
  };
  let reconciling: Promise<number> | null = null;
  const timer =
    intervalMs > 0
      ? setInterval(() => void sender.reconcile().catch((err: unknown) => log?.error({ err }, 'reconcile pass failed')), intervalMs)
      : null;
  // It must not keep a finished test or CLI process alive.
  timer?.unref();
  const from = opts.mailer.from;

  const sender: Sender = {
    send(customerId, email, clientKey, sendOpts = {}) {
      return beginSend(parts, customerId, clientKey, email, { batch: false, from, emails: [email], ...(sendOpts.async ? { async: true } : {}) });
    },
    sendBatch(customerId, emails, clientKey, sendOpts = {}) {
      return beginSend(parts, customerId, clientKey, emails, { batch: true, from, emails, ...(sendOpts.async ? { async: true } : {}) });
    },
    reconcile() {
      // One pass at a time in this process; a pass asked for during one joins it.
      reconciling ??= reconcilePass(parts, { graceMs, historyDays: opts.historyDays }).finally(() => {
        reconciling = null;
      });
      return reconciling;
    },
    async drain() {
      parts.stopping.now = true;
      parts.room.close();
      stopped.abort();
      if (timer) clearInterval(timer);
      await reconciling?.catch(() => undefined);
      await parts.runs.settled();
      parts.runs.stop();
    },
  };
  return sender;
}

/** A name for this instance in claims: host, process and a random part (two processes of one pid on one host, a restart). */
export function newOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}
