import { describe, expect, it } from 'vitest';
import { escapeHtml, wholeWords } from '../../src/lib/html';
import { escapeHtml as numericEntities } from '../../src/sandbox/resend/outbox-html';

describe('wholeWords', () => {
  it('puts each word in a span the CSS keeps whole, and leaves the spaces between them free to wrap', () => {
    expect(wholeWords('layout check:  a big-adjustment')).toBe(
      '<span class="word">layout</span> <span class="word">check:</span>  <span class="word">a</span> <span class="word">big-adjustment</span>',
    );
    expect(wholeWords('')).toBe('');
  });

  it("escapes each word with the page's escaper", () => {
    expect(wholeWords('<b> & "x"')).toBe(
      `<span class="word">${escapeHtml('<b>')}</span> <span class="word">&amp;</span> <span class="word">&quot;x&quot;</span>`,
    );
    expect(wholeWords('<b>', numericEntities)).toBe('<span class="word">&#60;b&#62;</span>');
  });
});
