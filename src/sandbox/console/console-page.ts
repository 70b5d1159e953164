import { escapeHtml, wholeWords } from '../../lib/html';
import { groupDigits } from '../dodo/amounts';
import { TRIGGER_EVENTS, type SandboxCustomerDetail, type SandboxCustomerSummary, type WebhookDelivery } from '../contracts';

/** What the console page shows; built by the router from the sandbox's own read model. */
export interface ConsoleModel {
  now: Date;
  customers: SandboxCustomerSummary[];
  selected: SandboxCustomerDetail | null;
  webhooks: WebhookDelivery[];
  /** Deliveries in the log beyond the ones shown. */
  moreWebhooks: number;
  /** The Resend half's email events (its webhook log), or null when there is no Resend half. */
  emailEvents: { enabled: boolean; shown: WebhookDelivery[]; more: number } | null;
  consolePath: string;
  apiPath: string;
  outboxPath: string;
  assetsPath: string;
}

const e = escapeHtml;

/** `2025-01-31 09:05:00 UTC`: sandbox time is shown absolute, since it may run ahead of the wall clock. */
function when(iso: string | null): string {
  if (!iso) return '<span class="muted">never</span>';
  const text = iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') + ' UTC';
  return `<time datetime="${e(iso)}">${wholeWords(text)}</time>`;
}

function customersTable(m: ConsoleModel): string {
  if (!m.customers.length) {
    return (
      '<p class="empty" id="no-customers">No customers yet. Subscribe on the <a href="/">dashboard</a> ' +
      'and pay with the test card; the customer shows up here.</p>'
    );
  }
  const rows = m.customers
    .map((c) => {
      const current = m.selected?.customer.customer_id === c.customer_id;
      const href = `${m.consolePath}?customer=${encodeURIComponent(c.customer_id)}`;
      return `<tr data-customer-id="${e(c.customer_id)}"${current ? ' class="current" aria-current="true"' : ''}>
<td class="col-name"><a href="${e(href)}">${wholeWords(c.name)}</a></td>
<td class="col-email" title="${e(c.email)}">${e(c.email)}</td>
<td class="col-balance num" data-testid="balance" data-unit="${Number(c.balance) === 1 ? 'credit' : 'credits'}">${e(groupDigits(c.balance))}</td>
<td class="col-id"><code>${e(c.customer_id)}</code></td>
<td class="col-time">${when(c.created_at)}</td>
</tr>`;
    })
    .join('\n');
  return (
    `<div class="scroll"><table class="grid" id="customers">
<caption class="visually-hidden">Customers and their Email Credits balance</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col" class="num">Balance</th>` +
    `<th scope="col">Customer id</th><th scope="col">Created</th></tr></thead>
<tbody>
${rows}
</tbody>
</table></div>`
  );
}

function actions(m: ConsoleModel): string {
  const selectedId = m.selected?.customer.customer_id ?? '';
  // The name alone fits the select's width; the email only tells apart customers of one name.
  const named = new Map<string, number>();
  for (const c of m.customers) named.set(c.name, (named.get(c.name) ?? 0) + 1);
  const options = m.customers
    .map((c) => {
      const label = named.get(c.name)! > 1 ? `${c.name} · ${c.email}` : c.name;
      return `<option value="${e(c.customer_id)}"${c.customer_id === selectedId ? ' selected' : ''}>${e(label)}</option>`;
    })
    .join('');
  const disabled = m.customers.length ? '' : ' disabled';
  return `<section class="panel actions-panel" aria-labelledby="actions-title">
<h2 id="actions-title">Actions</h2>
<form id="adjust-form" class="stack" method="get" action="${e(m.consolePath)}">
  <fieldset${disabled}>
    <legend>Adjust balance</legend>
    <label for="adjust-customer">Customer</label>
    <select id="adjust-customer" name="customer_id" required>${options}</select>
    <label for="adjust-amount">Amount <span class="hint">(negative debits; the tutorial's step is −4000)</span></label>
    <input id="adjust-amount" name="amount" type="number" step="1" value="-4000" required inputmode="numeric">
    <label for="adjust-reason">Reason <span class="hint">(optional)</span></label>
    <input id="adjust-reason" name="reason" type="text" maxlength="200" placeholder="Tutorial step: trigger the low-balance alert">
    <button type="submit" id="adjust-submit">Adjust balance</button>
  </fieldset>
</form>
<form id="trigger-form" class="stack" method="get" action="${e(m.consolePath)}">
  <fieldset${disabled}>
    <legend>Trigger an event</legend>
    <input type="hidden" name="customer_id" value="${e(selectedId)}">
    <label for="trigger-event">Event <span class="hint">(for the selected customer)</span></label>
    <select id="trigger-event" name="event">${TRIGGER_EVENTS.map((t) => `<option value="${e(t)}">${e(t)}</option>`).join('')}</select>
    <button type="submit" id="trigger-submit">Trigger</button>
  </fieldset>
</form>
<div class="stack">
  <p class="label">Sandbox clock <span id="clock">${when(m.now.toISOString())}</span></p>
  <button type="button" id="advance-cycle">Advance one billing cycle</button>
  <p class="hint">Moves the clock one calendar month: subscriptions renew, grants expire or roll over, and every webhook goes out.</p>
</div>
<noscript><p class="hint">These actions need JavaScript (they call the JSON API at <code>${e(m.apiPath)}</code>).</p></noscript>
</section>`;
}

function detail(d: SandboxCustomerDetail): string {
  const balances = d.balances
    .map(
      (b) =>
        `<li><strong class="num">${e(groupDigits(b.balance))}</strong> ${e(b.credit_entitlement_name)}` +
        `${b.primary ? '' : ` <code>${e(b.credit_entitlement_id)}</code>`}</li>`,
    )
    .join('');
  const subs = d.subscriptions
    .map(
      (s) =>
        `<li>${e(s.product_name)} · <span class="badge badge-${s.status === 'active' ? 'delivered' : 'bounced'}">${e(s.status)}</span>` +
        ` · next billing ${when(s.next_billing_date)} <code>${e(s.subscription_id)}</code></li>`,
    )
    .join('');
  const grants = d.grants
    .map((g) => {
      const status = g.is_expired ? (g.is_rolled_over ? 'rolled over' : 'expired') : g.remaining.replace(/[0.]/g, '') === '' ? 'depleted' : 'active';
      return `<tr>
<td>${e(g.source)}${g.rollover_count ? ` <span class="hint">(rollover ${e(g.rollover_count)})</span>` : ''}</td>
<td class="num">${e(groupDigits(g.initial))}</td>
<td class="num">${e(groupDigits(g.remaining))}</td>
<td>${when(g.expires_at)}</td>
<td><span class="badge badge-${status === 'active' ? 'delivered' : status === 'rolled over' ? 'complained' : 'bounced'}">${e(status)}</span></td>
<td><code>${e(g.id)}</code></td>
</tr>`;
    })
    .join('\n');
  const ledger = d.ledger
    .map(
      (l) => `<tr>
<td>${when(l.created_at)}</td>
<td><code>${e(l.transaction_type)}</code></td>
<td class="num ${l.is_credit ? 'credit' : 'debit'}">${l.is_credit ? '+' : '−'}${e(groupDigits(l.amount))}</td>
<td class="num">${e(groupDigits(l.balance_after))}</td>
<td>${wholeWords(l.description ?? '')}</td>
</tr>`,
    )
    .join('\n');
  return `<section class="panel" id="customer-detail" data-customer-id="${e(d.customer.customer_id)}" aria-labelledby="detail-title">
<h2 id="detail-title">${e(d.customer.name)} <span class="muted">${e(d.customer.email)}</span></h2>
<p><code>${e(d.customer.customer_id)}</code> · created ${when(d.customer.created_at)}</p>
<ul class="plain" id="balances">${balances || '<li class="muted">No credits yet.</li>'}</ul>
${subs ? `<ul class="plain" id="subscriptions">${subs}</ul>` : '<p class="muted">No subscription.</p>'}
<h3>Grants <span class="hint">(oldest first: the order debits use them)</span></h3>
${
  grants
    ? '<div class="scroll"><table class="grid" id="grants"><thead><tr><th scope="col">Source</th>' +
      '<th scope="col" class="num">Initial</th><th scope="col" class="num">Remaining</th><th scope="col">Expires</th>' +
      `<th scope="col">Status</th><th scope="col">Grant id</th></tr></thead><tbody>${grants}</tbody></table></div>`
    : '<p class="muted">No grants.</p>'
}
<h3>Ledger <span class="hint">(newest first)</span></h3>
${
  ledger
    ? '<div class="scroll"><table class="grid" id="ledger"><thead><tr><th scope="col">When</th><th scope="col">Type</th>' +
      '<th scope="col" class="num">Amount</th><th scope="col" class="num">Balance after</th><th scope="col">Description</th>' +
      `</tr></thead><tbody>${ledger}</tbody></table></div>`
    : '<p class="muted">No ledger entries.</p>'
}
</section>`;
}

function webhookItem(w: WebhookDelivery): string {
  const last = w.attempts.at(-1);
  const badge = w.state === 'delivered' ? 'delivered' : w.state === 'failed' ? 'bounced' : 'complained';
  const lastText = last ? (last.status !== null ? `HTTP ${last.status}` : (last.error ?? 'no answer')) : 'not sent yet';
  return `<li class="webhook" data-webhook-id="${e(w.id)}" data-state="${e(w.state)}">
<div class="webhook-head">
  <code class="webhook-type">${e(w.type)}</code>
  <span class="badge badge-${badge}">${e(w.state)}</span>
  <span class="hint">${e(w.attempts.length)} ${w.attempts.length === 1 ? 'attempt' : 'attempts'} · last: ${e(lastText)}</span>
  <span class="hint">${when(w.createdAt)}</span>
  <button type="button" data-redeliver="${e(w.id)}" aria-label="Redeliver ${e(w.type)} ${e(w.id)}">Redeliver</button>
</div>
<details>
  <summary>Body and attempts <code>${e(w.id)}</code></summary>
  <pre class="json">${e(JSON.stringify(w.payload, null, 2))}</pre>
  <ol class="attempts">${w.attempts
    .map(
      (a) =>
        `<li>${when(a.at)} → ${a.status !== null ? `HTTP ${e(a.status)}` : e(a.error ?? 'no answer')} in ${e(a.durationMs)} ms` +
        `${a.response ? ` <code>${e(a.response)}</code>` : ''}</li>`,
    )
    .join('')}</ol>
</details>
</li>`;
}

/** The Resend half's webhook log: email events, with the same items and Redeliver as Dodo's, and an off switch. */
function emailEventsSection(m: ConsoleModel, ev: NonNullable<ConsoleModel['emailEvents']>): string {
  const api = `${m.apiPath}/resend/webhooks`;
  return (
    `<section class="panel" aria-labelledby="resend-webhooks-title">
<h2 id="resend-webhooks-title">Email events <span class="hint">(Resend webhooks, newest first, to the app's /webhooks/resend)</span></h2>
<p class="label">Emission is <strong id="resend-events-state">${ev.enabled ? 'on' : 'off'}</strong>
  <button type="button" id="resend-events-toggle" data-enabled="${ev.enabled ? 'true' : 'false'}">` +
    `${ev.enabled ? 'Turn email events off' : 'Turn email events on'}</button></p>
${
  ev.shown.length
    ? ''
    : '<p class="empty">No email events yet. Send an email; each one produces email.sent, ' +
      'then email.delivered, email.bounced or email.complained (see the resend.dev test addresses).</p>'
}
<ul class="webhooks" id="resend-webhooks" data-webhooks-api="/resend/webhooks">${ev.shown.map(webhookItem).join('\n')}</ul>
${ev.more ? `<p class="hint">${e(ev.more)} older deliveries: <a href="${e(api)}">all of them as JSON</a>.</p>` : ''}
</section>`
  );
}

/** The sandbox console: customers, one customer's grants and ledger, the actions, the webhook log. */
export function renderConsolePage(m: ConsoleModel): string {
  // No inline script, style or handler: the app's CSP is script-src 'self'; style-src 'self'.
  return (
    `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Sandbox console · MailKit</title>
<link rel="stylesheet" href="${e(m.assetsPath)}/outbox.css">
<link rel="stylesheet" href="${e(m.assetsPath)}/console.css">
<script src="${e(m.assetsPath)}/console.js" defer></script>
</head>
<body data-page="console" data-api-path="${e(m.apiPath)}">
<header class="topbar">
  <a class="brand" href="${e(m.consolePath)}">MailKit <span>Sandbox</span></a>
  <nav class="nav" aria-label="Sandbox">
    <a href="/">Dashboard</a>
    <a href="${e(m.outboxPath)}" id="outbox-link">Outbox</a>
    <span class="pill">sandbox · nothing leaves this machine</span>
  </nav>
</header>
<main class="console">
<p id="console-status" class="status" role="status" aria-live="polite"></p>
<div class="layout">
<section class="panel" aria-labelledby="customers-title">
<h1 id="customers-title">Customers <span class="count">${e(m.customers.length)}</span></h1>
${customersTable(m)}
</section>
${actions(m)}
</div>
${m.selected ? detail(m.selected) : ''}
<section class="panel" aria-labelledby="webhooks-title">
<h2 id="webhooks-title">Webhook deliveries <span class="hint">(newest first, to the app's /webhooks/dodo)</span></h2>
${
  m.webhooks.length
    ? `<ul class="webhooks" id="webhooks">${m.webhooks.map(webhookItem).join('\n')}</ul>`
    : '<p class="empty">No webhooks yet.</p><ul class="webhooks" id="webhooks"></ul>'
}
${m.moreWebhooks ? `<p class="hint">${e(m.moreWebhooks)} older deliveries: <a href="${e(m.apiPath)}/webhooks">all of them as JSON</a>.</p>` : ''}
</section>
${m.emailEvents ? emailEventsSection(m, m.emailEvents) : ''}
<p class="api hint">JSON: <a href="${e(m.apiPath)}/customers"><code>GET ${e(m.apiPath)}/customers</code></a>` +
    ` · <a href="${e(m.apiPath)}/webhooks"><code>GET ${e(m.apiPath)}/webhooks</code></a>${
      m.emailEvents ? ` · <a href="${e(m.apiPath)}/resend/webhooks"><code>GET ${e(m.apiPath)}/resend/webhooks</code></a>` : ''
    }</p>
</main>
</body>
</html>
`
  );
}
