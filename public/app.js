// MailKit dashboard. Every value from the server or the user is rendered with textContent,
// never as HTML; no inline script or style anywhere (the CSP forbids both).
'use strict';

const KEY_STORAGE = 'mailkit.apiKey';
/** How often the balance is re-read while the tab is visible. */
const POLL_MS = 5000;
const USAGE_DAYS = 30;
const CHART_HEIGHT = 240;
const THRESHOLD_COLOR = '#b42318';
/** A balance change seen by the poll redraws the chart at most this often (it reads the ledger). */
const USAGE_POLL_MIN_MS = 30000;
const TOPUP_LABEL = 'Top up 5,000 credits ($9)';
/** What the balance box says before a key is in use (a dash at 40 px reads as a bar). */
const EMPTY_BALANCE = 'No key in use yet';

const $ = (id) => document.getElementById(id);
const fmt = (n) => Number(n).toLocaleString('en-US');

/** The API key lives in this tab's sessionStorage only: never in the URL, never in localStorage. */
const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE) || '',
  set: (value) => sessionStorage.setItem(KEY_STORAGE, value),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

const state = {
  /** Last balance read, as a number; null before the first read. */
  balance: null,
  /** The plan's low-balance threshold, from /credits/usage. */
  threshold: null,
  chart: null,
  timer: null,
  balanceSeq: 0,
  usageSeq: 0,
  usageReadAt: 0,
  /** Which notice is up ('subscribed': the key is on its way), so it goes once it is done with. */
  notice: null,
  /** The days the chart shows, for its legend. */
  days: [],
  /** The last send whose outcome is unknown: retried with the same Idempotency-Key. */
  unconfirmed: null,
};

/** Only http(s) URLs are followed or linked: a checkout URL is never allowed to be javascript:. */
function safeUrl(value) {
  try {
    const url = new URL(String(value), location.href);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/** Shows a message in an output box: text, and optionally a link or an action button. */
function show(id, { text, link, linkText, kind, action } = {}) {
  const el = $(id);
  el.hidden = false;
  el.className = `out${kind ? ` ${kind}` : ''}`;
  el.replaceChildren();
  if (text) el.append(document.createTextNode(text));
  const href = link && safeUrl(link);
  if (href) {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = linkText || href;
    a.rel = 'noopener';
    if (text) el.append(document.createTextNode(' '));
    el.append(a);
  }
  if (action) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'inline-action';
    b.textContent = action.label;
    b.addEventListener('click', () => action.run(b));
    el.append(document.createElement('br'), b);
  }
}

const hide = (id) => {
  $(id).hidden = true;
};

/** Calls the MailKit API as the customer whose key is stored. Returns { ok, status, data, headers }. */
async function api(path, { method = 'GET', body, auth = true, headers = {}, key: given } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (auth) {
    const key = given || apiKey.get();
    if (!key) return { ok: false, status: 0, noKey: true, data: { error: { message: 'Paste your API key first (section "Your API key").' } } };
    h.Authorization = `Bearer ${key}`;
  }
  try {
    const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    const data = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, data, headers: r.headers };
  } catch {
    return { ok: false, status: 0, data: { error: { message: 'Could not reach MailKit. Is the server running?' } } };
  }
}

const errorText = (res) => `Error: ${res.data?.error?.message || `HTTP ${res.status}`}`;

async function withBusy(button, work) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

// ---- Balance, polled while the tab is visible ---------------------------------------------------

async function refreshBalance() {
  if (!apiKey.get()) return;
  const seq = ++state.balanceSeq;
  const res = await api('/credits');
  if (seq !== state.balanceSeq) return; // a newer read has answered or is on its way
  if (res.status === 401) return signOut(errorText(res));
  if (!res.ok) {
    show('balance-error', { text: errorText(res), kind: 'error' });
    return;
  }
  hide('balance-error');
  const value = Number(res.data.balance);
  const previous = state.balance;
  const changed = previous !== null && value !== previous;
  state.balance = value;
  showBalance(fmt(value));
  const updated = $('balance-updated');
  updated.hidden = false;
  updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes by itself every ${POLL_MS / 1000} s.`;
  updateBanner();
  // A top-up, a renewal or a manual adjustment (a jump, not a trickle of sends) redraws the chart
  // at once; otherwise at most every USAGE_POLL_MIN_MS, for the usage route reads the ledger.
  const jump = changed && Math.abs(value - previous) >= 100;
  if (jump || (changed && Date.now() - state.usageReadAt >= USAGE_POLL_MIN_MS)) void refreshUsage();
}

/** Writes the balance (only when it changes, so the live region speaks only when there is news); null: no key. */
function showBalance(text) {
  const el = $('balance');
  const empty = text === null;
  const shown = empty ? EMPTY_BALANCE : text;
  if (el.textContent !== shown) el.textContent = shown;
  el.classList.toggle('is-empty', empty);
  $('balance-sub').hidden = empty;
}

function startPolling() {
  stopPolling();
  if (!apiKey.get() || document.hidden) return;
  state.timer = setInterval(() => void refreshBalance(), POLL_MS);
}

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function updateBanner() {
  const banner = $('low-balance-banner');
  const low = state.balance !== null && state.threshold !== null && state.balance < state.threshold;
  if (!low) {
    banner.hidden = true;
    return;
  }
  const text =
    `Running low: ${fmt(state.balance)} emails left, under your plan's low-balance threshold of ${fmt(state.threshold)}. ` +
    'Top up now to keep sending.';
  if ($('low-balance-text').textContent !== text) $('low-balance-text').textContent = text;
  banner.hidden = false;
}

// ---- Usage chart ------------------------------------------------------------------------------------

async function refreshUsage() {
  if (!apiKey.get()) return;
  const seq = ++state.usageSeq;
  state.usageReadAt = Date.now();
  const res = await api(`/credits/usage?days=${USAGE_DAYS}`);
  if (seq !== state.usageSeq) return;
  if (res.status === 401) return signOut(errorText(res));
  if (!res.ok) {
    $('usage').hidden = false;
    $('usage-summary').textContent = `The usage chart could not be loaded. ${errorText(res)}`;
    return;
  }
  state.threshold = Number(res.data.low_balance_threshold);
  if (state.balance === null) state.balance = Number(res.data.balance);
  updateBanner();
  renderUsage(res.data.days, res.data.truncated);
}

/**
 * The chart's bars. Emails have a scale of their own (left), so the day's 2 emails stay visible
 * beside a 4,000-credit adjustment; adjustments and expiries share the balance's scale (right),
 * so a bar is as tall as the drop it caused in the balance line.
 */
const EMAIL_SERIES = { key: 'emails', label: 'Emails sent', stroke: '#b45309', fill: '#f5b76a' };
/** Stacked on the credits scale in this order (bottom first). */
const CREDIT_SERIES = [
  { key: 'adjusted', label: 'Adjusted by hand', stroke: '#6d28d9', fill: '#c4b5fd' },
  { key: 'expired', label: 'Expired (not usage)', stroke: '#667085', fill: '#d0d5dd' },
];
/** The axis titles, drawn beside each scale (and read by the browser tests). */
const AXIS_TITLES = { emails: 'Emails per day', credits: 'Credits: balance, adjustments' };

/** Tick steps for counts of credits: whole numbers only. */
const WHOLE_STEPS = [
  1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 25000, 50000, 100000, 250000, 500000, 1000000,
];

const plural = (n, one, many) => `${fmt(n)} ${n === 1 ? one : many}`;

function renderUsage(days, truncated) {
  $('usage').hidden = false;
  const sum = (key, list = days) => list.reduce((total, d) => total + d[key], 0);
  const today = days.slice(-1);
  const parts = [
    `${plural(sum('emails'), 'email', 'emails')} sent in the last ${days.length} days, ${fmt(sum('emails', today))} today (days in UTC)`,
  ];
  if (sum('adjusted')) parts.push(`${plural(sum('adjusted'), 'credit', 'credits')} adjusted by hand`);
  if (sum('expired')) parts.push(`${plural(sum('expired'), 'credit', 'credits')} expired unused`);
  $('usage-summary').textContent = parts.join('; ') + '.' + (truncated ? ' Only the most recent activity is shown.' : '');

  // Days before the customer's first movement have no balance and nothing to show: no rows.
  const rows = days
    .filter((d) => d.balance !== null)
    .reverse()
    .map((d) => {
      const tr = document.createElement('tr');
      for (const value of [d.date, fmt(d.emails), fmt(d.adjusted), fmt(d.expired), fmt(d.credits), fmt(d.balance)]) {
        const td = document.createElement('td');
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    });
  $('usage-rows').replaceChildren(...rows);
  drawChart(days);
}

/**
 * The chart's columns: x, emails, the credit bars, balance, threshold. The credit bars are
 * stacked by drawing each series as the running total up to it, top series first, so the one
 * below paints over it. A day whose part is 0 is null, so no zero-height bar draws a dash along
 * the baseline; a day before the customer existed is null everywhere, so nothing is drawn there.
 * Bars sit in the middle of their UTC day.
 */
function chartData(days) {
  const xs = days.map((d) => Date.parse(`${d.date}T12:00:00Z`) / 1000);
  const emails = days.map((d) => d.emails || null);
  const stacked = CREDIT_SERIES.map((s, i) =>
    days.map((d) => (d[s.key] ? CREDIT_SERIES.slice(0, i + 1).reduce((total, below) => total + d[below.key], 0) : null)),
  ).reverse();
  const balances = days.map((d) => (d.balance === null ? null : Number(d.balance)));
  const threshold = days.map((d) => (d.balance === null ? null : state.threshold));
  return [xs, emails, ...stacked, balances, threshold];
}

/** An axis as wide as its longest label (uPlot's fixed sizes clip "10,000" to "0,000"). */
function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values ?? []).reduce((a, v) => (v.length > a.length ? v : a), '');
  if (longest) {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size) + 4;
}

/** The day the legend shows: the one under the cursor, else the latest (never a row of dashes). */
const legendDay = (idx) => state.days[idx ?? state.days.length - 1];

/**
 * A balance day with no neighbour draws no line (a customer's first day, a lone day in the
 * window): it gets a dot, so the line is never invisible.
 */
function lonePoints(u, seriesIdx) {
  const values = u.data[seriesIdx];
  const lone = values.flatMap((v, i) => (v !== null && values[i - 1] == null && values[i + 1] == null ? [i] : []));
  return lone.length ? lone : null;
}

/**
 * The low-balance threshold, a dashed rule from the left edge of the customer's first day to the
 * plot's end: drawn by hand, for a line through one day's value would not show.
 */
function drawThreshold(u, seriesIdx) {
  const values = u.data[seriesIdx];
  const first = values.findIndex((v) => v !== null);
  if (first === -1) return;
  const px = devicePixelRatio;
  const y = Math.round(u.valToPos(values[first], 'credits', true));
  const start = Math.max(u.bbox.left, u.valToPos(u.data[0][first] - 43200, 'x', true));
  const { ctx } = u;
  ctx.save();
  ctx.strokeStyle = THRESHOLD_COLOR;
  ctx.lineWidth = px;
  ctx.setLineDash([6 * px, 4 * px]);
  ctx.beginPath();
  ctx.moveTo(start, y);
  ctx.lineTo(u.bbox.left + u.bbox.width, y);
  ctx.stroke();
  ctx.restore();
}

function drawChart(days) {
  const el = $('usage-chart');
  if (typeof uPlot === 'undefined') {
    el.textContent = 'The chart library did not load; the table below has the same numbers.';
    return;
  }
  state.days = days;
  const data = chartData(days);
  if (state.chart) {
    state.chart.setData(data);
    return;
  }
  state.chart = new uPlot(chartOptions(), data, el);
}

function chartOptions() {
  // Legend values come from the day itself, not from the stacked totals drawn.
  const part = (key) => (_u, _v, _si, idx) => {
    const d = legendDay(idx);
    return d ? fmt(d[key]) : '—';
  };
  const balanceOf = (_u, _v, _si, idx) => {
    const d = legendDay(idx);
    return d && d.balance !== null ? fmt(d.balance) : '—';
  };
  const thresholdOf = (_u, _v, _si, idx) => {
    const d = legendDay(idx);
    return d && d.balance !== null && state.threshold !== null ? fmt(state.threshold) : '—';
  };
  const bars = (align) => uPlot.paths.bars({ size: [0.4, 14], align });
  const counts = (_u, vals) => vals.map((v) => fmt(v));
  const day = 86400;
  const axisTitle = { labelSize: 18, labelGap: 2, labelFont: '12px system-ui, -apple-system, "Segoe UI", sans-serif' };
  return {
    width: chartWidth(),
    height: CHART_HEIGHT,
    // Ledger days are UTC days: label them as such, whatever the browser's zone.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    // Every series reads the hovered day itself (uPlot would skip to a series' nearest non-null day).
    cursor: { drag: { x: false, y: false }, dataIdx: (_u, _si, hovered) => hovered },
    scales: {
      // From the first day's midnight to the end of the last day: every bar whole inside the plot.
      x: { time: true, range: (_u, min, max) => [min - day / 2, max + day / 2] },
      emails: { range: (_u, _min, max) => [0, Math.max(5, Math.ceil((max ?? 0) * 1.15))] },
      credits: { range: (_u, _min, max) => [0, Math.max(max ?? 0, state.threshold ?? 0, 10) * 1.1] },
    },
    series: [
      { label: 'Day', value: (_u, _ts, _si, idx) => legendDay(idx)?.date ?? '—' },
      // Emails to the left of the day's middle, credits moved to its right: side by side.
      {
        label: EMAIL_SERIES.label,
        scale: 'emails',
        stroke: EMAIL_SERIES.stroke,
        fill: EMAIL_SERIES.fill,
        width: 1,
        paths: bars(-1),
        points: { show: false },
        value: part('emails'),
      },
      ...CREDIT_SERIES.slice()
        .reverse()
        .map((s) => ({
          label: s.label,
          scale: 'credits',
          stroke: s.stroke,
          fill: s.fill,
          width: 1,
          paths: bars(1),
          points: { show: false },
          value: part(s.key),
        })),
      {
        label: 'Balance',
        scale: 'credits',
        stroke: '#4f46e5',
        width: 2,
        points: { show: false, size: 6, fill: '#4f46e5', filter: lonePoints },
        value: balanceOf,
      },
      // Its stroke and dash are for the legend's marker: drawThreshold draws the rule itself.
      {
        label: 'Low-balance threshold',
        scale: 'credits',
        stroke: THRESHOLD_COLOR,
        width: 1,
        dash: [6, 4],
        paths: () => null,
        points: { show: false },
        value: thresholdOf,
      },
    ],
    hooks: { drawSeries: [(u, si) => u.series[si].label === 'Low-balance threshold' && drawThreshold(u, si)] },
    axes: [
      { stroke: '#555', grid: { stroke: '#eee' } },
      {
        scale: 'emails',
        label: AXIS_TITLES.emails,
        ...axisTitle,
        stroke: '#92400e',
        grid: { stroke: '#eee' },
        size: axisSize,
        incrs: WHOLE_STEPS,
        values: counts,
      },
      {
        scale: 'credits',
        label: AXIS_TITLES.credits,
        ...axisTitle,
        side: 1,
        stroke: '#4f46e5',
        grid: { show: false },
        size: axisSize,
        incrs: WHOLE_STEPS,
        values: counts,
      },
    ],
  };
}

const chartWidth = () => Math.max(260, $('usage-chart').clientWidth || 600);

function resizeChart() {
  if (state.chart) state.chart.setSize({ width: chartWidth(), height: CHART_HEIGHT });
}

// ---- Key, send, top-up -------------------------------------------------------------------------------

async function useKey(value) {
  // Tried before it replaces the key in use: a mistyped key must not sign out a working one.
  const res = await api('/account', { key: value });
  if (res.ok) {
    apiKey.set(value);
    // "Your API key is on its way" is done with once a key works.
    if (state.notice === 'subscribed') hideNotice();
    show('key-result', {
      text: `Signed in as ${res.data.name || res.data.email} (${res.data.email}), customer ${res.data.customer_id}.`,
      kind: 'ok',
    });
    await Promise.all([refreshBalance(), refreshUsage(), refreshHistory()]);
    startPolling();
  } else if (apiKey.get() && apiKey.get() !== value) {
    show('key-result', { text: `${errorText(res)} The key you were using is still in use.`, kind: 'error' });
  } else {
    signOut(errorText(res));
  }
}

function hideNotice() {
  $('notice').hidden = true;
  state.notice = null;
}

/** Forgets the key and everything read with it. */
function signOut(message) {
  apiKey.clear();
  stopPolling();
  state.balance = null;
  state.threshold = null;
  state.balanceSeq++;
  state.usageSeq++;
  state.unconfirmed = null;
  showBalance(null);
  $('balance-updated').hidden = true;
  $('low-balance-banner').hidden = true;
  $('usage').hidden = true;
  $('usage-rows').replaceChildren();
  if (state.chart) state.chart.destroy();
  state.chart = null;
  clearHistory();
  show('key-result', { text: message, kind: message.startsWith('Error') ? 'error' : undefined });
}

/** One click: ask for a top-up checkout and go there. */
function startTopup(button, outId) {
  return withBusy(button, async () => {
    const res = await api('/checkout/topup', { method: 'POST', body: {} });
    const url = res.ok && safeUrl(res.data.checkout_url);
    if (url) {
      location.assign(url);
      return;
    }
    show(outId, { text: res.ok ? 'Error: the checkout link was not usable.' : errorText(res), kind: 'error' });
  });
}

async function sendEmail() {
  const body = { to: $('sendTo').value, subject: $('sendSubj').value, html: $('sendBody').value };
  const fingerprint = JSON.stringify(body);
  // One key per email: a retry of a send whose outcome was unknown reuses it, so it can
  // never send or charge twice; any other click is a new email with a new key.
  const idempotencyKey = state.unconfirmed?.fingerprint === fingerprint ? state.unconfirmed.key : crypto.randomUUID();
  const res = await api('/send', { method: 'POST', headers: { 'Idempotency-Key': idempotencyKey }, body });
  // Only an answer that leaves the outcome open keeps the key for a retry: a 5xx, or a request
  // that may have reached the server. With no key, nothing was sent.
  state.unconfirmed = !res.noKey && (res.status === 0 || res.status >= 500) ? { fingerprint, key: idempotencyKey } : null;

  if (res.noKey) {
    show('send-result', { text: errorText(res), kind: 'error' });
    return;
  }
  if (res.ok) {
    show('send-result', { text: `Sent. Message id: ${res.data.id}`, kind: 'ok' });
  } else if (res.status === 402) {
    show('send-result', {
      text: `${errorText(res)}\nA top-up pack adds 5,000 emails for $9 as soon as you pay; nothing was sent or charged.`,
      kind: 'error',
      action: { label: TOPUP_LABEL, run: (b) => startTopup(b, 'send-result') },
    });
  } else if (res.status === 401) {
    show('send-result', { text: `${errorText(res)} Paste a valid key above.`, kind: 'error' });
  } else if (res.status === 503 && res.data?.error?.code === 'delivery_unconfirmed') {
    show('send-result', {
      text: `${errorText(res)}\nPress Send again without changing anything: it retries this same email, never a second one.`,
      kind: 'error',
    });
  } else {
    show('send-result', { text: errorText(res), kind: 'error' });
  }
  if (res.status !== 401) await Promise.all([refreshBalance(), refreshUsage(), refreshHistory()]);
}

function wire() {
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('api-key');
    const value = input.value.trim();
    input.value = '';
    if (!value) return;
    // A header can carry neither spaces nor non-ASCII: say so instead of a puzzling 401.
    if (!/^[\x21-\x7e]+$/.test(value)) {
      show('key-result', { text: 'That is not a MailKit API key: keys look like mk_test_… or mk_live_…, with no spaces.', kind: 'error' });
      return;
    }
    void useKey(value);
  });
  $('toggle-key').addEventListener('click', (e) => {
    const input = $('api-key');
    const showing = input.type === 'text';
    input.type = showing ? 'password' : 'text';
    e.currentTarget.textContent = showing ? 'Show' : 'Hide';
    e.currentTarget.setAttribute('aria-pressed', String(!showing));
  });
  $('forget-key').addEventListener('click', () => signOut('Key forgotten in this tab.'));

  $('subscribe-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const button = e.submitter || $('subscribe-form').querySelector('button');
    void withBusy(button, async () => {
      const res = await api('/checkout/subscribe', {
        method: 'POST',
        auth: false,
        body: { email: $('subEmail').value, name: $('subName').value },
      });
      if (res.ok) show('subscribe-result', { link: res.data.checkout_url, linkText: 'Open checkout →' });
      else show('subscribe-result', { text: errorText(res), kind: 'error' });
    });
  });

  $('refresh-balance').addEventListener('click', (e) => {
    void withBusy(e.currentTarget, async () => {
      if (!apiKey.get()) return show('balance-error', { text: 'Paste your API key first (section "Your API key").', kind: 'error' });
      await Promise.all([refreshBalance(), refreshUsage()]);
    });
  });

  $('send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void withBusy($('send-button'), sendEmail);
  });

  $('topup-button').addEventListener('click', (e) => void startTopup(e.currentTarget, 'bannerOut'));

  // The same one click as the banner's and the 402's: straight to checkout.
  $('buyTopup').addEventListener('click', (e) => void startTopup(e.currentTarget, 'topup-result'));

  // Poll only while someone can see the page; catch up at once when they come back.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) return stopPolling();
    if (!apiKey.get()) return;
    void refreshBalance();
    startPolling();
  });

  if (typeof ResizeObserver === 'function') new ResizeObserver(resizeChart).observe($('usage'));
  else window.addEventListener('resize', resizeChart);
}

/** Resend's test address that always delivers: the sandbox's send form starts with it. */
const SANDBOX_TO = 'delivered@resend.dev';

/**
 * The page as served says nothing of the sandbox: its hints (the outbox, Resend's test address,
 * mk_test_ keys) appear only once /config says the server runs it, so live mode never shows them.
 */
function applyMode(mode) {
  const sandbox = mode === 'sandbox';
  // Says the mode is known (live, sandbox, or unknown when /config did not answer).
  document.documentElement.dataset.mode = mode || 'unknown';
  for (const id of ['sandboxNav', 'keyHintSandbox', 'sendToSandbox']) $(id).hidden = !sandbox;
  $('api-key').placeholder = sandbox ? 'mk_test_…' : 'mk_…';
  // Only an empty field: an address typed before /config answered stays.
  if (sandbox && !$('sendTo').value) $('sendTo').value = SANDBOX_TO;
}

async function init() {
  wire();
  startHistoryPolling();
  const config = await api('/config', { auth: false });
  applyMode(config.ok ? config.data.mode : null);
  const params = new URLSearchParams(location.search);
  const notice = $('notice');
  if (params.get('subscribed') === '1') {
    if (params.get('status') !== 'failed') state.notice = 'subscribed';
    notice.textContent =
      params.get('status') === 'failed'
        ? 'The payment did not go through; nothing was charged.'
        : 'Payment received. Your API key is on its way to your inbox' + (config.data?.mode === 'sandbox' ? ' (the sandbox outbox).' : '.');
    notice.hidden = false;
  } else if (params.get('topped_up') === '1') {
    notice.textContent = params.get('status') === 'failed' ? 'The top-up payment did not go through.' : 'Top-up complete: 5,000 emails added.';
    notice.hidden = false;
  }
  if (params.toString()) history.replaceState(null, '', location.pathname + location.hash);
  if (apiKey.get()) await useKey(apiKey.get());
}

// ---- Recent emails and the suppression list ---------------------------------------------------------

const EMAILS_SHOWN = 10;
const emailHistory = {
  seq: 0,
  /** Last status seen per email id: a change is announced once. */
  statuses: new Map(),
  /** Whether the list has been drawn once for this key: an email first seen after that is new. */
  primed: false,
};

/**
 * Text that wraps at its spaces only: each word in a span that never breaks (no "delivere|d",
 * no "mailbox-|name"); a word wider than its column widens the table, which scrolls in its frame.
 */
function words(text) {
  return String(text)
    .split(/(\s+)/)
    .filter(Boolean)
    .map((part) => {
      if (/^\s/.test(part)) return document.createTextNode(part);
      const span = document.createElement('span');
      span.className = 'word';
      span.textContent = part;
      return span;
    });
}

const cell = (text, className) => {
  const td = document.createElement('td');
  td.append(...words(text));
  if (className) td.className = className;
  return td;
};

/** Re-reads both lists; polled while the tab is visible, and at once after a send. */
async function refreshHistory() {
  if (!apiKey.get()) return clearHistory();
  const seq = ++emailHistory.seq;
  const [emails, suppressions] = await Promise.all([api(`/emails?limit=${EMAILS_SHOWN}`), api('/suppressions?limit=100')]);
  if (seq !== emailHistory.seq) return;
  if (emails.status === 401 || suppressions.status === 401) return; // the balance poll signs out
  if (!emails.ok) show('emails-error', { text: errorText(emails), kind: 'error' });
  else {
    hide('emails-error');
    renderEmails(emails.data.data);
  }
  if (suppressions.ok) renderSuppressions(suppressions.data.data);
}

function renderEmails(list) {
  $('emails-empty').hidden = list.length > 0;
  $('emails-wrap').hidden = list.length === 0;
  const news = [];
  const rows = list.map((e) => {
    const before = emailHistory.statuses.get(e.id);
    // A change, or an email sent since the first draw whose fate is already known (its events
    // came before this refresh did): either is news, once.
    const arrivedSettled = !before && emailHistory.primed && e.status !== 'queued' && e.status !== 'sent';
    if ((before && before !== e.status) || arrivedSettled) news.push(`Email to ${e.to.join(', ')}: ${e.status}.`);
    emailHistory.statuses.set(e.id, e.status);
    const tr = document.createElement('tr');
    tr.dataset.emailId = e.id;
    const recipients = [...e.to, ...e.cc.map((a) => `cc ${a}`), ...e.bcc.map((a) => `bcc ${a}`)].join(', ');
    const to = cell(recipients, 'col-to');
    // An address too long for its column ends in "…": the title has all of it.
    to.title = recipients;
    const credits = cell(fmt(e.credits), 'col-credits');
    // On a phone the row is a card, where "1" alone would say nothing: it reads "1 credit".
    credits.dataset.unit = e.credits === 1 ? 'credit' : 'credits';
    tr.append(
      cell(new Date(e.created_at).toLocaleTimeString(), 'col-time'),
      to,
      cell(e.subject, 'col-subject'),
      cell(e.status.replace('_', ' '), `status status-${e.status}`),
      credits,
    );
    return tr;
  });
  $('email-rows').replaceChildren(...rows);
  emailHistory.primed = true;
  if (news.length) $('emails-news').textContent = news.join(' ');
}

function renderSuppressions(list) {
  $('suppressions-empty').hidden = list.length > 0;
  $('suppressions-wrap').hidden = list.length === 0;
  const rows = list.map((s) => {
    const tr = document.createElement('tr');
    const action = document.createElement('td');
    action.className = 'col-action';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'secondary';
    button.textContent = 'Remove';
    button.setAttribute('aria-label', `Remove ${s.email} from the suppression list`);
    button.addEventListener('click', () => void removeSuppressed(s.email, button));
    action.append(button);
    const address = cell(s.email, 'col-address');
    address.title = s.email;
    tr.append(address, cell(s.reason, 'col-reason'), cell(new Date(s.created_at).toLocaleString(), 'col-since'), action);
    return tr;
  });
  $('suppression-rows').replaceChildren(...rows);
}

function removeSuppressed(address, button) {
  return withBusy(button, async () => {
    const res = await api(`/suppressions/${encodeURIComponent(address)}`, { method: 'DELETE' });
    if (res.ok) show('suppressions-result', { text: `${address} removed: MailKit will send to it again.`, kind: 'ok' });
    else show('suppressions-result', { text: errorText(res), kind: 'error' });
    await refreshHistory();
  });
}

function clearHistory() {
  emailHistory.seq++;
  emailHistory.statuses.clear();
  emailHistory.primed = false;
  $('email-rows').replaceChildren();
  $('suppression-rows').replaceChildren();
  for (const id of ['emails-wrap', 'emails-empty', 'suppressions-wrap', 'suppressions-empty', 'emails-error', 'suppressions-result'])
    $(id).hidden = true;
}

/** Its own timer, beside the balance's: every POLL_MS while the tab is visible and a key is set. */
function startHistoryPolling() {
  setInterval(() => {
    if (apiKey.get() && !document.hidden) void refreshHistory();
  }, POLL_MS);
}

void init();
