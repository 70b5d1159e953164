// MailKit dashboard. Every value from the server is rendered with textContent, never as HTML.
'use strict';

const KEY_STORAGE = 'mailkit.apiKey';
const $ = (id) => document.getElementById(id);

/** The API key lives in this tab's sessionStorage only: never in the URL, never in localStorage. */
const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE) || '',
  set: (value) => sessionStorage.setItem(KEY_STORAGE, value),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

/** Shows a message in an output box: plain text, or a text + link pair. */
function show(id, { text, link, linkText, kind } = {}) {
  const el = $(id);
  el.hidden = false;
  el.className = `out${kind ? ` ${kind}` : ''}`;
  el.replaceChildren();
  if (text) el.append(document.createTextNode(text));
  if (link) {
    const a = document.createElement('a');
    a.href = link;
    a.textContent = linkText || link;
    a.rel = 'noopener';
    if (text) el.append(document.createTextNode(' '));
    el.append(a);
  }
}

/** Calls the MailKit API as the customer whose key is stored. Returns { ok, status, data }. */
async function api(path, { method = 'GET', body, auth = true, headers = {} } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (auth) {
    const key = apiKey.get();
    if (!key) return { ok: false, status: 0, data: { error: { message: 'Paste your API key first (section "Your API key").' } } };
    h.Authorization = `Bearer ${key}`;
  }
  try {
    const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, data };
  } catch {
    return { ok: false, status: 0, data: { error: { message: 'Could not reach MailKit. Is the server running?' } } };
  }
}

const errorText = (res) => `Error: ${res.data?.error?.message || `HTTP ${res.status}`}`;

async function withBusy(button, work) {
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

async function refreshBalance() {
  if (!apiKey.get()) return;
  const res = await api('/credits');
  if (res.ok) {
    $('balance').textContent = Number(res.data.balance).toLocaleString('en-US');
    $('balErr').hidden = true;
  } else {
    show('balErr', { text: errorText(res), kind: 'error' });
  }
}

async function useKey(value) {
  apiKey.set(value);
  const res = await api('/account');
  if (res.ok) {
    show('keyOut', { text: `Signed in as ${res.data.name || res.data.email} (${res.data.email}), customer ${res.data.customer_id}.`, kind: 'ok' });
    await refreshBalance();
  } else {
    apiKey.clear();
    show('keyOut', { text: errorText(res), kind: 'error' });
  }
}

function wire() {
  $('keyForm').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('apiKey').value.trim();
    $('apiKey').value = '';
    if (value) void useKey(value);
  });
  $('forgetKey').addEventListener('click', () => {
    apiKey.clear();
    $('balance').textContent = '—';
    show('keyOut', { text: 'Key forgotten in this tab.' });
  });

  $('subscribeForm').addEventListener('submit', (e) => {
    e.preventDefault();
    const button = e.submitter || $('subscribeForm').querySelector('button');
    void withBusy(button, async () => {
      const res = await api('/checkout/subscribe', {
        method: 'POST',
        auth: false,
        body: { email: $('subEmail').value, name: $('subName').value },
      });
      if (res.ok) show('subOut', { link: res.data.checkout_url, linkText: 'Open checkout →' });
      else show('subOut', { text: errorText(res), kind: 'error' });
    });
  });

  $('refreshBalance').addEventListener('click', (e) => void withBusy(e.currentTarget, refreshBalance));

  $('sendForm').addEventListener('submit', (e) => {
    e.preventDefault();
    const button = e.submitter || $('sendForm').querySelector('button');
    void withBusy(button, async () => {
      // One key per click: a network retry of this click can never send or charge twice.
      const idempotencyKey = crypto.randomUUID();
      const res = await api('/send', {
        method: 'POST',
        headers: { 'Idempotency-Key': idempotencyKey },
        body: { to: $('sendTo').value, subject: $('sendSubj').value, html: $('sendBody').value },
      });
      if (res.ok) show('sendOut', { text: `Sent. Message id: ${res.data.id}`, kind: 'ok' });
      else if (res.status === 402) show('sendOut', { text: `${errorText(res)} Use section 4 to add 5,000 emails.`, kind: 'error' });
      else show('sendOut', { text: errorText(res), kind: 'error' });
      await refreshBalance();
    });
  });

  $('buyTopup').addEventListener('click', (e) => {
    void withBusy(e.currentTarget, async () => {
      const res = await api('/checkout/topup', { method: 'POST', body: {} });
      if (res.ok) show('topOut', { link: res.data.checkout_url, linkText: 'Open top-up checkout →' });
      else show('topOut', { text: errorText(res), kind: 'error' });
    });
  });
}

async function init() {
  wire();
  const config = await api('/config', { auth: false });
  if (config.ok && config.data.mode === 'sandbox') {
    $('sandboxNav').hidden = false;
    $('keyHintSandbox').hidden = false;
  }
  const params = new URLSearchParams(location.search);
  const notice = $('notice');
  if (params.get('subscribed') === '1') {
    notice.textContent = params.get('status') === 'failed'
      ? 'The payment did not go through; nothing was charged.'
      : 'Payment received. Your API key is on its way to your inbox' + (config.data?.mode === 'sandbox' ? ' (the sandbox outbox).' : '.');
    notice.hidden = false;
  } else if (params.get('topped_up') === '1') {
    notice.textContent = params.get('status') === 'failed' ? 'The top-up payment did not go through.' : 'Top-up complete: 5,000 emails added.';
    notice.hidden = false;
  }
  if (params.toString()) history.replaceState(null, '', location.pathname + location.hash);
  if (apiKey.get()) {
    await useKey(apiKey.get());
  }
}

void init();
