import { describe, expect, it } from 'vitest';
import { htmlToText, snippetOf } from '../../../src/sandbox/resend/outbox-html';

describe('the outbox preview of an HTML body', () => {
  it('runs inline elements on with the text around them: no space before the colon', () => {
    const html = '<p>Sending stops at zero. <a href="http://localhost:3000/#topup">Buy a top-up pack</a>: $9 for 5,000 more emails.</p>';
    expect(htmlToText(html)).toBe('Sending stops at zero. Buy a top-up pack: $9 for 5,000 more emails.');
  });

  it('still separates block elements and line breaks', () => {
    expect(htmlToText('<p>You have <strong>999</strong> emails left.</p><p>Top up</p>first<br>second')).toBe(
      'You have 999 emails left. Top up first second',
    );
  });

  it('previews the low-balance email as its reader would read it', () => {
    const m = {
      html:
        '<p>You have <strong>999</strong> emails left (under your 20% threshold).</p>\n' +
        '<p>Sending stops at zero. <a href="x">Buy a top-up pack</a>: $9 for 5,000 more emails, available at once.</p>',
      text: null,
    };
    expect(snippetOf(m)).toContain('Buy a top-up pack: $9');
    expect(snippetOf(m)).not.toContain(' :');
  });
});
