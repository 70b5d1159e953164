import type DodoPayments from 'dodopayments';
import type { Resend } from 'resend';
import type { Database } from '../db/index';
import type { SendingPause } from '../mail/mailer';
import { reachCause, transportCause } from '../lib/vendor-cause';

type Check = { ok: boolean; reason?: string };

/** Whether each upstream answered; a reason is given for the ones that did not. */
export interface Readiness {
  ready: boolean;
  checks: { database: Check; dodo: Check; resend: Check };
}

/**
 * Readiness: the database answers a query (every probe: it is ours and cheap), Dodo answers for
 * our own credit entitlement (which also proves the key and the
 * id are right), and Resend answers at all (any non-5xx reply: a sending-only key may be
 * refused a read, which still shows the API is reachable). Short timeouts, no retries. The
 * vendors' answers are reused for `vendorTtlMs` (default 30 s): every call spends the same
 * quota as sending (Dodo: 240 a minute), and a load balancer probing every second must not.
 * While Resend refuses MailKit's key for sending (`sendingPaused`), Resend is not ready either,
 * and the reason says so.
 */
export function createReadiness(opts: {
  database: Database;
  dodo: DodoPayments;
  resend: Resend;
  creditEntitlementId: string;
  timeoutMs?: number;
  vendorTtlMs?: number;
  sendingPaused?: () => SendingPause | null;
}) {
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const vendorTtlMs = opts.vendorTtlMs ?? 30_000;
  let vendors: { at: number; result: Promise<{ dodo: Check; resend: Check }> } | null = null;
  const dodo = opts.dodo.withOptions({ maxRetries: 0, timeout: timeoutMs });

  const checkDodo = async () => {
    try {
      await dodo.creditEntitlements.retrieve(opts.creditEntitlementId);
      return { ok: true };
    } catch (err) {
      const status = (err as { status?: number }).status;
      return { ok: false, reason: status ? `Dodo answered ${status}` : `Dodo did not answer: ${transportCause(err) ?? 'no answer'}` };
    }
  };

  const checkResend = async () => {
    const { error } = await opts.resend.emails.get('00000000-0000-0000-0000-000000000000', { signal: AbortSignal.timeout(timeoutMs) });
    // The SDK reports "no answer" as statusCode null; any HTTP answer below 500 means reachable.
    if (!error || (error.statusCode !== null && (error.statusCode ?? 0) < 500)) return { ok: true };
    if (error.statusCode) return { ok: false, reason: `Resend answered ${error.statusCode}` };
    // The SDK keeps the cause of a failed fetch to itself: a bare TCP connect finds it.
    return { ok: false, reason: `Resend did not answer: ${await reachCause(opts.resend.baseUrl, timeoutMs)}` };
  };

  const checkDatabase = async (): Promise<Check> => {
    try {
      await opts.database.ping();
      return { ok: true };
    } catch {
      return { ok: false, reason: 'the database did not answer' };
    }
  };

  return async (): Promise<Readiness> => {
    if (!vendors || Date.now() - vendors.at > vendorTtlMs) {
      vendors = { at: Date.now(), result: Promise.all([checkDodo(), checkResend()]).then(([dodo, resend]) => ({ dodo, resend })) };
    }
    const [database, { dodo, resend: reachable }] = await Promise.all([checkDatabase(), vendors.result]);
    const paused = opts.sendingPaused?.();
    const resend = paused
      ? {
          ok: false,
          reason:
            `Resend refused MailKit's API key (${paused.status} ${paused.name}) ` +
            `since ${new Date(paused.since).toISOString()}: sending is paused`,
        }
      : reachable;
    // A failed vendor check is not cached: the next probe asks again.
    if (!dodo.ok || !reachable.ok) vendors = null;
    return { ready: database.ok && dodo.ok && resend.ok, checks: { database, dodo, resend } };
  };
}
