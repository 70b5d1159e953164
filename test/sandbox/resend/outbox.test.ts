import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { email, OUTBOX_PATH, startSandbox, type Harness } from './harness';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const page = (path = '') => fetch(`${h.origin}${OUTBOX_PATH}${path}`);

/** The list's HTML with each subject and snippet word's `<span class="word">` taken off: the text as read. */
const unwrapWords = (html: string) => html.replace(/<span class="word">([^<]*)<\/span>/g, '$1');

/** The page must run under `script-src 'self'`: scripts only by src, no inline handlers or javascript: URLs. */
function expectNoInlineScript(html: string): void {
  for (const tag of html.match(/<script\b[^>]*>/gi) ?? []) expect(tag).toMatch(/\ssrc="\/[^"]+"/);
  expect(html).not.toMatch(/<script\b[^>]*>[^<]+<\/script>/i);
  // Inside tags only: escaped text such as `&#60;img onerror=…` is harmless content.
  expect(html).not.toMatch(/<[^>]*\son[a-z]+\s*=/i);
  expect(html).not.toMatch(/<[^>]*=\s*["']?\s*javascript:/i);
}

describe('outbox page', () => {
  it('lists messages newest first with from, to, subject, snippet, status and time', async () => {
    h = await startSandbox();
    await h.resend.emails.send(email({ subject: 'Older one', to: 'ada@example.com' }));
    await h.resend.emails.send(
      email({ subject: 'Newer one', to: 'bounced@resend.dev', html: '<style>p{color:red}</style><p>Your <b>balance</b> &amp; credits</p>' }),
    );
    const res = await page('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = unwrapWords(await res.text());
    expect(html.indexOf('Newer one')).toBeGreaterThan(-1);
    expect(html.indexOf('Newer one')).toBeLessThan(html.indexOf('Older one'));
    expect(html).toContain('MailKit &#60;no-reply@mailkit.dev&#62;');
    expect(html).toContain('ada@example.com');
    expect(html).toContain('Your balance &#38; credits');
    expect(html).not.toContain('color:red');
    expect(html).toMatch(/class="badge badge-bounced">bounced</);
    expect(html).toMatch(/<time datetime="\d{4}-\d\d-\d\dT[^"]+Z"/);
    expect(html).toContain('href="/sandbox/assets/outbox.css"');
    expect(html).toContain('src="/sandbox/assets/outbox.js"');
    expectNoInlineScript(html);
  });

  it('escapes a hostile subject and sender name instead of rendering them', async () => {
    h = await startSandbox();
    const sent = await h.resend.emails.send(
      email({ subject: '<script>alert(1)</script> "quoted" <img src=x onerror=alert(2)>', from: `Tom & Jerry's "Shop" <shop@example.com>` }),
    );
    expect(sent.error).toBeNull();
    const list = unwrapWords(await (await page('/')).text());
    expect(list).toContain('&#60;script&#62;alert(1)&#60;/script&#62; &#34;quoted&#34; &#60;img src=x onerror=alert(2)&#62;');
    expect(list).not.toContain('<script>alert(1)');
    expect(list).not.toContain('<img src=x');
    expect(list).toContain('Tom &#38; Jerry&#39;s &#34;Shop&#34; &#60;shop@example.com&#62;');

    const id = h.sandbox.messages()[0]!.id;
    const detail = await (await page(`/${id}`)).text();
    expect(detail).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
    expect(detail).not.toContain('<script>alert(1)');
    expectNoInlineScript(detail);
  });

  it('says so when the outbox is empty', async () => {
    h = await startSandbox();
    const html = await (await page('/')).text();
    expect(html).toMatch(/<p class="empty" id="empty">No emails yet/);
  });
});

describe('message page', () => {
  it('shows the envelope, the links, the HTML in a sandboxed iframe and the text part', async () => {
    h = await startSandbox();
    const { data } = await h.resend.emails.send(
      email({
        subject: 'Your API key',
        cc: 'cfo@example.com',
        html: '<p>Key ready. <a href="http://localhost:3000/keys?token=abc&amp;x=1">Reveal it</a> <a href="javascript:alert(1)">bad</a></p>',
        text: 'Key ready: http://localhost:3000/keys?token=abc&x=1',
      }),
    );
    const res = await page(`/${data!.id}`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('Your API key');
    expect(html).toContain('cfo@example.com');
    expect(html).toContain(`<iframe class="body-frame" sandbox src="${OUTBOX_PATH}/${data!.id}/html"`);
    expect(html).not.toMatch(/allow-scripts/);
    // The link is readable and followable outside the sandbox; the javascript: one is text only.
    expect(html).toContain(
      '<a href="http://localhost:3000/keys?token=abc&#38;x=1" target="_blank" rel="noopener noreferrer">' +
        'http://localhost:3000/keys?token=abc&#38;x=1</a>',
    );
    expect(html).toContain('<pre class="text-body">Key ready: http://localhost:3000/keys?token=abc&#38;x=1</pre>');
    expect(html).not.toMatch(/href="javascript:/i);
  });

  it('serves the HTML body with a sandbox CSP and nosniff', async () => {
    h = await startSandbox();
    const body = '<html><body><p>Hi</p><script>alert(1)</script></body></html>';
    const { data } = await h.resend.emails.send(email({ html: body }));
    const res = await page(`/${data!.id}/html`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp.split(';')[0]!.trim()).toBe('sandbox');
    expect(csp).not.toMatch(/allow-scripts|allow-same-origin/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toBe(body);
  });

  it('answers 404 for an unknown message', async () => {
    h = await startSandbox();
    expect((await page('/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await page('/00000000-0000-4000-8000-000000000000/html')).status).toBe(404);
  });
});

describe('outbox JSON API', () => {
  it('lists newest first, filters by recipient and limits', async () => {
    h = await startSandbox();
    await h.resend.emails.send(email({ to: 'ada@example.com', subject: 'a1' }));
    await h.resend.emails.send(email({ to: 'bob@example.com', subject: 'b1' }));
    await h.resend.emails.send(email({ to: ['Ada <ADA@example.com>'], subject: 'a2' }));

    const all = await (await page('/messages')).json();
    expect(all.total).toBe(3);
    expect(all.messages.map((m: { subject: string }) => m.subject)).toEqual(['a2', 'b1', 'a1']);
    expect(all.messages[0]).toMatchObject({ snippet: 'Hi there', lastEvent: 'delivered', from: 'MailKit <no-reply@mailkit.dev>' });

    const ada = await (await page('/messages?to=ada@example.com')).json();
    expect(ada.messages.map((m: { subject: string }) => m.subject)).toEqual(['a2', 'a1']);

    const one = await (await page('/messages?limit=1')).json();
    expect(one).toMatchObject({ total: 3, messages: [{ subject: 'a2' }] });
  });

  it('returns one message by id, 404 for an unknown one', async () => {
    h = await startSandbox();
    const { data } = await h.resend.emails.send(email());
    const res = await page(`/messages/${data!.id}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: data!.id, subject: 'Hello', html: '<p>Hi there</p>' });
    expect((await page('/messages/nope')).status).toBe(404);
  });

  it('clears the outbox on DELETE /messages', async () => {
    h = await startSandbox();
    await h.resend.emails.send(email());
    const res = await fetch(`${h.origin}${OUTBOX_PATH}/messages`, { method: 'DELETE' });
    expect(res.status).toBe(204);
    expect(h.sandbox.messages()).toHaveLength(0);
    expect((await (await page('/messages')).json()).total).toBe(0);
  });
});

describe('durability', () => {
  it('keeps messages and idempotency records across a restart on the same file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailkit-resend-'));
    const dataFile = join(dir, 'resend.json');
    try {
      h = await startSandbox({ dataFile });
      const first = await h.resend.emails.send(email({ subject: 'Survives' }), { idempotencyKey: 'durable-1' });
      await h.close();

      h = await startSandbox({ dataFile });
      expect(h.sandbox.messages().map((m) => m.subject)).toEqual(['Survives']);
      const replay = await h.resend.emails.send(email({ subject: 'Survives' }), { idempotencyKey: 'durable-1' });
      expect(replay.data!.id).toBe(first.data!.id);
      const conflict = await h.resend.emails.send(email({ subject: 'Changed' }), { idempotencyKey: 'durable-1' });
      expect(conflict.error).toMatchObject({ statusCode: 409, name: 'invalid_idempotent_request' });
      expect(h.sandbox.messages()).toHaveLength(1);
      expect((await h.resend.emails.get(first.data!.id)).data!.subject).toBe('Survives');

      h.sandbox.clearOutbox();
      await h.close();
      h = await startSandbox({ dataFile });
      expect(h.sandbox.messages()).toHaveLength(0);
    } finally {
      await h.close();
      h = undefined as never;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
