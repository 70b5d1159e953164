import { closeSettlement, updateSettlement, utcDay, type SettlementRow } from '../db/credits';
import { DodoUnavailable, InsufficientCredits } from './billing';
import { drawn, grantsOf, rebalanced } from './credit-math';
import type { CreditsContext } from './credits-context';

/**
 * Asks Dodo for a recorded settlement under its own key, until a definite answer: a lost
 * answer or a 5xx is asked again later under the same key, never with another amount. Dodo
 * refusing it for want of credits (a change MailKit had not heard of yet) settles what Dodo
 * holds instead, under `<id>.part`, fixed before it is asked; the rest is logged as unpaid.
 */
export async function askSettlement(c: CreditsContext, s: SettlementRow): Promise<void> {
  const amount = s.partial ?? s.credits;
  const key = s.partial === null ? s.id : `${s.id}.part`;
  let answer: { balanceAfter: string; createdAt: string } | 'exists' | null = null;
  if (amount > 0) {
    try {
      answer = await c.billing.debit(s.customerId, amount, key, `${s.credits} email credits spent (settlement ${s.id})`, {
        mailkit_settlement: s.id,
      });
    } catch (err) {
      if (err instanceof InsufficientCredits && s.partial === null) {
        const held = Math.max(0, Math.floor(Number(await c.billing.balance(s.customerId))));
        const partial = Math.min(held, s.credits - 1);
        await updateSettlement(c.database, s.id, { partial, updatedAt: c.now() });
        return askSettlement(c, { ...s, partial });
      }
      if (!(err instanceof InsufficientCredits)) {
        if (err instanceof DodoUnavailable) await updateSettlement(c.database, s.id, { inDoubt: 1, updatedAt: c.now() });
        throw err;
      }
      // The partial amount refused too: Dodo's balance fell again. Nothing more is taken.
    }
  }
  const paid = answer === null ? 0 : amount;
  const t = c.now();
  const dodoAt = answer && answer !== 'exists' ? Date.parse(answer.createdAt) : t;
  let mismatch = false;
  // Charted on Dodo's day of the debit (the sandbox's clock may run ahead of this machine's).
  const day = utcDay(Number.isFinite(dodoAt) ? dodoAt : t);
  const closedNow = await closeSettlement(
    c.database,
    s,
    { paid, balanceAfter: answer && answer !== 'exists' ? answer.balanceAfter : null, at: t, day },
    (row) => {
      const grants = drawn(grantsOf(row), paid, dodoAt);
      const after = { ...row, settling: 0 };
      const patch = rebalanced(after, grants, t);
      const mirrored = grants.reduce((n, g) => n + g.remaining, 0);
      // Dodo's balance after the debit should be what the mirror holds; anything else (a change
      // not heard of yet, a debit that drew other grants than the mirror assumed) is read back.
      mismatch = answer === 'exists' || answer === null || (answer !== null && Math.floor(Number(answer.balanceAfter)) !== mirrored);
      // A match confirms the mirror as a read would.
      return { ...patch, settling: 0, lastSettledAt: t, needsSync: mismatch ? 1 : row.needsSync, ...(mismatch ? {} : { syncedAt: t }) };
    },
  );
  if (!closedNow) return;
  c.metrics?.settled.inc({ outcome: paid < s.credits ? 'partial' : 'paid' }, paid);
  if (paid < s.credits) {
    c.metrics?.unpaid.inc(s.credits - paid);
    c.log?.error(
      { customerId: s.customerId, settlementId: s.id, credits: s.credits, paid, unpaid: s.credits - paid },
      'settlement: Dodo held less than was spent; the rest is unpaid',
    );
  } else c.log?.debug({ customerId: s.customerId, settlementId: s.id, credits: s.credits }, 'settled with Dodo');
}
