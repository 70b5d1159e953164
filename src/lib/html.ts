const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/**
 * Escaped text whose lines break at its spaces only: each word is a `<span class="word">`, which
 * the page's CSS keeps whole (white-space: nowrap), so no line breaks inside an address or an id.
 * `escape` is the page's own escaper (the outbox writes numeric entities).
 */
export function wholeWords(value: string, escape: (text: string) => string = escapeHtml): string {
  return value
    .split(/(\s+)/)
    .map((part) => (part === '' || /^\s/.test(part) ? part : `<span class="word">${escape(part)}</span>`))
    .join('');
}
