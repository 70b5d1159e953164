import type { Price } from 'dodopayments/resources/products/products';

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** "$19.00 / month", "$9.00", "$50.00 / 3 months": the amount in minor units, formatted for people. */
export function formatPrice(price: Price): string {
  if (price.type === 'usage_based_price') return 'Usage based';
  const formatter = new Intl.NumberFormat('en-US', { style: 'currency', currency: price.currency });
  const digits = formatter.resolvedOptions().maximumFractionDigits ?? 2;
  const amount = formatter.format(price.price / 10 ** digits);
  if (price.type === 'one_time_price') return amount;
  const unit = price.payment_frequency_interval.toLowerCase();
  const count = price.payment_frequency_count;
  return count === 1 ? `${amount} / ${unit}` : `${amount} / ${count} ${unit}s`;
}

export interface CheckoutPageModel {
  sessionId: string;
  checkoutPath: string;
  lines: Array<{ name: string; price: string; quantity: number; credits: string[] }>;
  email: string | null;
  status: 'open' | 'paid' | 'failed';
  notice?: string;
}

/**
 * The hosted checkout page. Server-rendered with no inline script, style or event handler, so it
 * works under a strict CSP; every dynamic value goes through escapeHtml.
 */
export function renderCheckoutPage(m: CheckoutPageModel): string {
  const base = `${m.checkoutPath}/${encodeURIComponent(m.sessionId)}`;
  const lines = m.lines
    .map(
      (l) => `<li class="line">
        <span class="line-name">${escapeHtml(l.name)}${l.quantity > 1 ? ` × ${escapeHtml(l.quantity)}` : ''}</span>
        <span class="line-price">${escapeHtml(l.price)}</span>
        ${l.credits.map((c) => `<span class="line-credits">${escapeHtml(c)}</span>`).join('')}
      </li>`,
    )
    .join('');
  const emailBlock = m.email
    ? `<p class="customer">Paying as <strong class="customer-email">${escapeHtml(m.email)}</strong></p>`
    : `<label class="field">Email <input type="email" name="email" required autocomplete="email"></label>
       <label class="field">Name <input type="text" name="name" autocomplete="name"></label>`;
  const body =
    m.status === 'paid'
      ? `<p class="status status-paid">This checkout has been paid.</p>`
      : `${m.status === 'failed' ? '<p class="status status-failed">The last payment attempt was declined. You can try again.</p>' : ''}
        <form method="post" action="${escapeHtml(base)}/pay" class="pay-form">
          ${emailBlock}
          <p class="card">Test card 4242 4242 4242 4242 · any future expiry · any CVC</p>
          <button type="submit" class="button button-pay">Pay with test card</button>
        </form>
        <form method="post" action="${escapeHtml(base)}/decline" class="decline-form">
          ${m.email ? '' : '<label class="field">Email <input type="email" name="email" required autocomplete="email"></label>'}
          <button type="submit" class="button button-decline">Decline</button>
        </form>`;
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Checkout · Dodo Payments sandbox</title>
  <link rel="stylesheet" href="/sandbox/assets/checkout.css">
</head>
<body>
  <main class="checkout">
    <p class="badge">Sandbox · no real money moves</p>
    <h1>Checkout</h1>
    ${m.notice ? `<p class="notice">${escapeHtml(m.notice)}</p>` : ''}
    <ul class="lines">${lines}</ul>
    ${body}
    <p class="session">Session <code>${escapeHtml(m.sessionId)}</code></p>
  </main>
</body>
</html>`;
}
