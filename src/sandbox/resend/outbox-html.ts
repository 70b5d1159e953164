import type { OutboxMessage } from '../contracts';
import { wholeWords } from '../../lib/html';

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/**
 * Decodes the HTML entities an email body commonly uses (one pass, so `&amp;lt;` stays `&lt;`).
 * Every part of the pattern is bounded, so no input makes it backtrack far.
 */
export function decodeEntities(value: string): string {
  return value.replace(/&(#x[0-9a-f]{1,8}|#\d{1,8}|[a-z]{1,32});/gi, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return Object.hasOwn(NAMED_ENTITIES, ref.toLowerCase()) ? NAMED_ENTITIES[ref.toLowerCase()]! : whole;
  });
}

/** Elements whose content is not text: skipped whole, up to their end tag. */
const HIDDEN_ELEMENTS = ['script', 'style', 'head', 'title'] as const;
type HiddenElement = (typeof HIDDEN_ELEMENTS)[number];
const END_TAGS = Object.fromEntries(HIDDEN_ELEMENTS.map((name) => [name, new RegExp(`</${name}(?![A-Za-z0-9-])`, 'gi')])) as Record<
  HiddenElement,
  RegExp
>;
/** Inline elements run on with the text around them ("<a>Buy</a>: $9" is "Buy: $9"); any other tag breaks words. */
const INLINE_ELEMENTS = new Set(['a', 'abbr', 'b', 'code', 'em', 'i', 'mark', 'q', 's', 'small', 'span', 'strong', 'sub', 'sup', 'u']);
const TAG_NAME = /[A-Za-z][A-Za-z0-9]{0,31}/y;

/**
 * The readable text of an HTML body: no head, styles, scripts, comments or tags; spaces collapsed.
 *
 * A scanner, not regular expressions: `/<[^>]*>/g` and its kin take quadratic time on a body of
 * `<` characters (40 s for 256 KiB), and this runs on every outbox refresh. Each search starts
 * where the previous one ended, and an end tag found missing is not searched for again, so the
 * body is read a bounded number of times. It gives what the patterns it replaces gave: a `<`
 * that no `>` closes is text, an unterminated comment is an ordinary tag, and a script without
 * its end tag leaves its content as text.
 */
export function htmlToText(html: string): string {
  const parts: string[] = [];
  // Each hidden element's next end tag from a position on (-1: there is none after it).
  const endTags: Partial<Record<HiddenElement, { from: number; at: number }>> = {};
  const nextEndTag = (name: HiddenElement, from: number): number => {
    const known = endTags[name];
    if (known && from >= known.from && (known.at === -1 || known.at >= from)) return known.at;
    const pattern = END_TAGS[name];
    pattern.lastIndex = from;
    const at = pattern.exec(html)?.index ?? -1;
    endTags[name] = { from, at };
    return at;
  };

  let i = 0;
  while (i < html.length) {
    const open = html.indexOf('<', i);
    if (open === -1) {
      parts.push(html.slice(i));
      break;
    }
    parts.push(html.slice(i, open));
    const commentEnd = html.startsWith('<!--', open) ? html.indexOf('-->', open + 4) : -1;
    if (commentEnd !== -1) {
      parts.push(' ');
      i = commentEnd + 3;
      continue;
    }
    const close = html.indexOf('>', open + 1);
    if (close === -1) {
      parts.push(html.slice(open));
      break;
    }
    i = close + 1;
    const endTag = html[open + 1] === '/';
    TAG_NAME.lastIndex = open + (endTag ? 2 : 1);
    const name = TAG_NAME.exec(html)?.[0].toLowerCase() ?? '';
    if (!INLINE_ELEMENTS.has(name)) parts.push(' ');
    const hidden = endTag ? undefined : HIDDEN_ELEMENTS.find((h) => h === name);
    if (!hidden) continue;
    const end = nextEndTag(hidden, i);
    if (end === -1) continue;
    const endClose = html.indexOf('>', end);
    i = endClose === -1 ? html.length : endClose + 1;
  }
  return decodeEntities(parts.join('')).replace(/\s+/g, ' ').trim();
}

/** A one-line preview: the text of the HTML body (the text part when there is no HTML). */
export function snippetOf(m: Pick<OutboxMessage, 'html' | 'text'>, max = 140): string {
  const text = m.html !== null ? htmlToText(m.html) : (m.text ?? '').replace(/\s+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max - 1).trimEnd()}…` : text;
}

/**
 * Every link in the email, so one (a checkout link, a sign-in link) can be read and followed
 * even though the body itself is shown in a sandbox that blocks navigation out of it.
 */
export function linksIn(m: Pick<OutboxMessage, 'html' | 'text'>): string[] {
  const found = new Set<string>();
  for (const match of (m.html ?? '').matchAll(/\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/gi)) {
    const url = decodeEntities(match[1] ?? match[2] ?? match[3] ?? '').trim();
    if (url && !url.startsWith('#')) found.add(url);
  }
  for (const match of (m.text ?? '').matchAll(/\bhttps?:\/\/[^\s<>"')\]]+/gi)) found.add(match[0]);
  return [...found];
}

/** `2025-01-31 09:05:00 UTC`: shown without JavaScript, and as the tooltip of the relative time. */
export function absoluteTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') + ' UTC';
}

export interface PageOptions {
  outboxPath: string;
  assetsPath: string;
}

function layout(o: PageOptions, title: string, page: string, content: string): string {
  // No inline script or handler anywhere: the app's CSP is `script-src 'self'`.
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${escapeHtml(o.assetsPath)}/outbox.css">
<script src="${escapeHtml(o.assetsPath)}/outbox.js" defer></script>
</head>
<body data-page="${page}" data-outbox-path="${escapeHtml(o.outboxPath)}">
<header class="topbar">
  <a class="brand" href="${escapeHtml(o.outboxPath)}">MailKit <span>Outbox</span></a>
  <span class="pill">sandbox · nothing leaves this machine</span>
</header>
${content}
</body>
</html>
`;
}

const badge = (event: OutboxMessage['lastEvent']) => `<span class="badge badge-${event}">${escapeHtml(event)}</span>`;
const timeTag = (iso: string) =>
  `<time datetime="${escapeHtml(iso)}" title="${escapeHtml(absoluteTime(iso))}">${escapeHtml(absoluteTime(iso))}</time>`;

function row(o: PageOptions, m: OutboxMessage): string {
  const href = `${o.outboxPath}/${encodeURIComponent(m.id)}`;
  return (
    `<tr data-href="${escapeHtml(href)}">
<td class="col-from">${escapeHtml(m.from)}</td>
<td class="col-to">${escapeHtml(m.to.join(', '))}</td>
<td class="col-subject"><a href="${escapeHtml(href)}">${wholeWords(m.subject, escapeHtml)}</a>` +
    `<span class="snippet">${wholeWords(snippetOf(m), escapeHtml)}</span></td>
<td class="col-status">${badge(m.lastEvent)}</td>
<td class="col-time">${timeTag(m.createdAt)}</td>
</tr>`
  );
}

/** The outbox list: newest first, as mailpit shows it. */
export function renderListPage(o: PageOptions, messages: OutboxMessage[]): string {
  const count = `${messages.length} ${messages.length === 1 ? 'message' : 'messages'}`;
  return layout(
    o,
    `Outbox (${messages.length}) · MailKit sandbox`,
    'list',
    `<main class="list">
<div class="toolbar">
  <h1>Outbox <span class="count" id="count">${count}</span></h1>
  <div class="actions">
    <span class="live" id="live" hidden>live</span>
    <button type="button" id="clear" class="danger" hidden>Clear outbox</button>
  </div>
</div>
<p class="empty" id="empty"${messages.length ? ' hidden' : ''}>No emails yet. Anything sent through the sandboxed Resend API shows up here.</p>
<table class="messages" id="messages"${messages.length ? '' : ' hidden'}>
<thead><tr><th>From</th><th>To</th><th>Subject</th><th>Status</th><th>Received</th></tr></thead>
<tbody id="rows">
${messages.map((m) => row(o, m)).join('\n')}
</tbody>
</table>
</main>`,
  );
}

function metaRow(label: string, value: string): string {
  return value ? `<dt>${escapeHtml(label)}</dt><dd>${value}</dd>` : '';
}

/** One message: its envelope, its links, its HTML in a sandboxed iframe and its text part. */
export function renderMessagePage(o: PageOptions, m: OutboxMessage): string {
  const list = (values: string[]) => escapeHtml(values.join(', '));
  const links = linksIn(m);
  const linkItems = links
    .map((url) =>
      /^(https?:|mailto:)/i.test(url)
        ? `<li><a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(url)}</a></li>`
        : `<li><code>${escapeHtml(url)}</code></li>`,
    )
    .join('\n');
  const headers = Object.entries(m.headers)
    .map(([k, v]) => `<code>${escapeHtml(k)}: ${escapeHtml(v)}</code>`)
    .join('<br>');
  const tags = m.tags.map((t) => `<code>${escapeHtml(t.name)}=${escapeHtml(t.value)}</code>`).join(' ');
  const base = `${o.outboxPath}/${encodeURIComponent(m.id)}`;

  return layout(
    o,
    `${m.subject} · Outbox`,
    'message',
    `<main class="message">
<p class="back"><a href="${escapeHtml(o.outboxPath)}">← All messages</a></p>
<h1 class="subject">${escapeHtml(m.subject)}</h1>
<dl class="meta">
${[
  metaRow('From', escapeHtml(m.from)),
  metaRow('To', list(m.to)),
  metaRow('Cc', list(m.cc)),
  metaRow('Bcc', list(m.bcc)),
  metaRow('Reply-To', list(m.replyTo)),
  metaRow('Date', timeTag(m.createdAt)),
  metaRow('Status', badge(m.lastEvent)),
  metaRow('Tags', tags),
  metaRow('Headers', headers),
  metaRow('ID', `<code>${escapeHtml(m.id)}</code>`),
]
  .filter(Boolean)
  .join('\n')}
</dl>
${apiKeySection(m)}
${links.length ? `<section class="links"><h2>Links in this email</h2><ul>\n${linkItems}\n</ul></section>` : ''}
${
  m.html !== null
    ? '<section class="part"><h2>HTML</h2><p class="note">Shown sandboxed: no scripts, no forms, no navigation. ' +
      `<a href="${escapeHtml(base)}/html" target="_blank" rel="noopener noreferrer">Open alone</a></p>
<iframe class="body-frame" sandbox src="${escapeHtml(base)}/html" title="HTML body of the email" referrerpolicy="no-referrer"></iframe></section>`
    : ''
}
${m.text !== null ? `<section class="part"><h2>Plain text</h2><pre class="text-body">${escapeHtml(m.text)}</pre></section>` : ''}
<p class="api">JSON: <a href="${escapeHtml(o.outboxPath)}/messages/${encodeURIComponent(m.id)}">` +
      `<code>GET ${escapeHtml(o.outboxPath)}/messages/${escapeHtml(m.id)}</code></a></p>
</main>`,
  );
}

/**
 * A MailKit API key the email carries (the key email), shown whole with a button that copies
 * it: the key's dots stop a double-click's selection at its first part.
 */
function apiKeySection(m: OutboxMessage): string {
  const key = /\bmk_(?:test|live)_[A-Za-z0-9_-]+\.\d+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/.exec(m.text ?? m.html ?? '')?.[0];
  if (!key) return '';
  return (
    `<section class="api-key"><h2>API key in this email</h2>
<p><code id="api-key-value">${escapeHtml(key)}</code> <button type="button" id="copy-key" data-key="${escapeHtml(key)}" hidden>Copy key</button>` +
    ' <span id="copy-key-result" role="status"></span></p></section>'
  );
}

/** A not-found page in the outbox's look. */
export function renderNotFoundPage(o: PageOptions): string {
  return layout(
    o,
    'Not found · Outbox',
    'missing',
    `<main class="message"><p class="back"><a href="${escapeHtml(o.outboxPath)}">← All messages</a></p>` +
      '<h1>No such message</h1><p>It may have been cleared from the outbox.</p></main>',
  );
}
