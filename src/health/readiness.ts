import type DodoPayments from 'dodopayments';
import type { Resend } from 'resend';

/** Whether each upstream answered; a reason is given for the ones that did not. */
export interface Readiness {
  ready: boolean;
  checks: { dodo: { ok: boolean; reason?: string }; resend: { ok: boolean; reason?: string } };
}

/**
 * Readiness: Dodo answers for our own credit entitlement (which also proves the key and the
 * id are right), and Resend answers at all (any non-5xx reply: a sending-only key may be
 * refused a read, which still shows the API is reachable). Short timeouts, no retries.
 */
export function createReadiness(opts: { dodo: DodoPayments; resend: Resend; creditEntitlementId: string; timeoutMs?: number }) {
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const dodo = opts.dodo.withOptions({ maxRetries: 0, timeout: timeoutMs });

  const checkDodo = async () => {
    try {
      await dodo.creditEntitlements.retrieve(opts.creditEntitlementId);
      return { ok: true };
    } catch (err) {
      const status = (err as { status?: number }).status;
      return { ok: false, reason: status ? `Dodo answered ${status}` : 'Dodo did not answer' };
    }
  };

  const checkResend = async () => {
    const { error } = await opts.resend.emails.get('00000000-0000-0000-0000-000000000000', { signal: AbortSignal.timeout(timeoutMs) });
    // The SDK reports "no answer" as statusCode null; any HTTP answer below 500 means reachable.
    if (!error || (error.statusCode !== null && (error.statusCode ?? 0) < 500)) return { ok: true };
    return { ok: false, reason: error.statusCode ? `Resend answered ${error.statusCode}` : 'Resend did not answer' };
  };

  return async (): Promise<Readiness> => {
    const [d, r] = await Promise.all([checkDodo(), checkResend()]);
    return { ready: d.ok && r.ok, checks: { dodo: d, resend: r } };
  };
}
