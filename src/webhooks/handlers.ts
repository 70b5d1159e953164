import type { ApiKeys } from '../auth/api-keys';
import type { Billing } from '../billing/billing';
import type { Credits } from '../billing/credits';
import { escapeHtml } from '../lib/html';
import type { Mailer, OutgoingEmail } from '../mail/mailer';
import type { DodoEvent, WebhookContext, WebhookHandlers } from './dodo-webhooks';

/** The events whose payload is a credit ledger entry. */
type LedgerEventType =
  | 'credit.added'
  | 'credit.deducted'
  | 'credit.expired'
  | 'credit.rolled_over'
  | 'credit.rollover_forfeited'
  | 'credit.overage_charged'
  | 'credit.manual_adjustment';

/**
 * What MailKit does with each Dodo event. Effects that leave the process (emails) carry a
 * Resend idempotency key derived from the webhook-id, so a redelivery, or a second server
 * instance handling the same delivery, cannot send them twice.
 */
export function createWebhookHandlers(deps: {
  apiKeys: ApiKeys;
  billing: Billing;
  credits: Credits;
  mailer: Mailer;
  baseUrl: string;
}): WebhookHandlers {
  const { apiKeys, billing, credits, mailer, baseUrl } = deps;
  /** Only MailKit's own entitlement: Dodo sends every entitlement's events to the endpoint. */
  const ours = (creditEntitlementId: string) => creditEntitlementId === billing.catalog.creditEntitlementId;

  /**
   * Sends a system email; throws (so Dodo redelivers) unless Resend gave a definite answer.
   * Its own call under its own key (a redelivered webhook must not send it twice, which a key
   * shared with customers' emails in a flight could not promise), ahead of customers' flights
   * in Resend's budget (priority), so their traffic never starves it.
   */
  async function notify(email: OutgoingEmail, ctx: WebhookContext, purpose: string) {
    const d = await mailer.deliver(email, `webhook:${ctx.webhookId}:${purpose}`, undefined, { priority: true });
    if (d.kind === 'sent') {
      ctx.log.info({ emailId: d.id, purpose }, 'notification email sent');
      return;
    }
    if (d.kind === 'rejected' && !d.retryable) {
      ctx.log.error({ purpose, reason: d.name }, 'notification email rejected by the provider; not retrying');
      return;
    }
    throw new Error(`notification email (${purpose}) not confirmed: ${d.kind}`);
  }

  const onLedgerEntry = async (event: DodoEvent<LedgerEventType>, ctx: WebhookContext) => {
    const d = event.data;
    // A change MailKit did not make (a purchase, an expiry, an adjustment in Dodo's dashboard):
    // counted in the usage chart, and the balance MailKit keeps reads Dodo's grants again.
    if (ours(d.credit_entitlement_id)) await credits.dodoChanged(d);
    ctx.log.info(
      {
        customerId: d.customer_id,
        transactionType: d.transaction_type,
        amount: d.amount,
        isCredit: d.is_credit,
        balanceBefore: d.balance_before,
        balanceAfter: d.balance_after,
        grantId: d.grant_id,
        ledgerEntryId: d.id,
      },
      event.type,
    );
  };

  return {
    'subscription.active': async (event, ctx) => {
      const { customer, subscription_id: subscriptionId } = event.data;
      const key = await apiKeys.forSubscription(customer.customer_id, subscriptionId);
      if (!key) {
        ctx.log.warn({ customerId: customer.customer_id }, 'subscription active but its API key was revoked; not re-issuing');
        return;
      }
      ctx.log.info({ customerId: customer.customer_id, subscriptionId }, 'API key issued');
      await notify(keyEmail(customer.email, customer.name, key, baseUrl), ctx, 'api-key');
    },

    'credit.balance_low': async (event, ctx) => {
      const d = event.data;
      // Dodo sees the crossing when a settlement reaches it, seconds after the emails that made
      // it: the alert says what the customer holds now, from the balance MailKit keeps (once,
      // for Dodo fires once per crossing and MailKit never credits Dodo back for refunds).
      let available = d.available_balance;
      if (ours(d.credit_entitlement_id)) {
        const now = await credits.balance(d.customer_id);
        if (now.available >= Number(d.threshold_amount)) {
          ctx.log.info(
            { customerId: d.customer_id, available: now.available },
            'low-balance alert skipped: the balance is above the threshold again',
          );
          return;
        }
        available = String(now.available);
      }
      ctx.log.info(
        { customerId: d.customer_id, available, thresholdPercent: d.threshold_percent },
        `[low-balance] ${d.customer_id} has ${available} ${d.credit_entitlement_name} left (under ${d.threshold_percent}%)`,
      );
      const customer = await billing.customer(d.customer_id);
      await notify(lowBalanceEmail(customer.email, d.credit_entitlement_name, available, d.threshold_percent, baseUrl), ctx, 'low-balance');
    },

    'credit.added': onLedgerEntry,
    'credit.deducted': onLedgerEntry,
    'credit.expired': onLedgerEntry,
    'credit.rolled_over': onLedgerEntry,
    'credit.rollover_forfeited': onLedgerEntry,
    'credit.overage_charged': onLedgerEntry,
    'credit.manual_adjustment': onLedgerEntry,
    'credit.overage_reset': async (event, ctx) => {
      ctx.log.info({ data: event.data }, event.type);
    },
    'payment.succeeded': async (event, ctx) => {
      ctx.log.info({ paymentId: event.data.payment_id, customerId: event.data.customer.customer_id, total: event.data.total_amount }, event.type);
    },
    'payment.failed': async (event, ctx) => {
      ctx.log.warn({ paymentId: event.data.payment_id, customerId: event.data.customer.customer_id }, event.type);
    },
    'subscription.renewed': async (event, ctx) => {
      ctx.log.info({ subscriptionId: event.data.subscription_id, customerId: event.data.customer.customer_id }, event.type);
    },
  };
}

function keyEmail(to: string, name: string, key: string, baseUrl: string): OutgoingEmail {
  const dashboard = `${baseUrl}/`;
  return {
    to: [to],
    subject: 'Your MailKit API key',
    html: [
      `<p>Hi ${escapeHtml(name || 'there')},</p>`,
      '<p>Your MailKit Plan is active: 5,000 emails every billing cycle.</p>',
      '<p>Your API key (keep it secret; anyone holding it can send email on your credits):</p>',
      `<p><code style="font-size:15px">${escapeHtml(key)}</code></p>`,
      `<p>Paste it into the <a href="${escapeHtml(dashboard)}">MailKit dashboard</a>, or send with curl:</p>`,
      `<pre>curl -X POST ${escapeHtml(baseUrl)}/send \\\n  -H "Authorization: Bearer ${escapeHtml(key)}" \\\n` +
        '  -H "Content-Type: application/json" \\\n' +
        `  -d '{"to":"delivered@resend.dev","subject":"Hello","html":"&lt;p&gt;Hi&lt;/p&gt;"}'</pre>`,
    ].join('\n'),
    text: `Your MailKit Plan is active.\n\nYour API key: ${key}\n\nDashboard: ${dashboard}\n`,
  };
}

function lowBalanceEmail(to: string, entitlementName: string, available: string, thresholdPercent: number, baseUrl: string): OutgoingEmail {
  const topup = `${baseUrl}/#topup`;
  const n = Number(available).toLocaleString('en-US');
  return {
    to: [to],
    subject: `Your ${entitlementName} balance is running low`,
    html: [
      `<p>You have <strong>${escapeHtml(n)}</strong> emails left (under your ${escapeHtml(thresholdPercent)}% threshold).</p>`,
      `<p>Sending stops at zero. <a href="${escapeHtml(topup)}">Buy a top-up pack</a>: $9 for 5,000 more emails, available at once.</p>`,
    ].join('\n'),
    text: `You have ${n} emails left (under your ${thresholdPercent}% threshold). Top up: ${topup}\n`,
  };
}
