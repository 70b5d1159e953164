import { describe, expect, it } from 'vitest';
import { outboxTo, settle, subscribe } from '../support/stack';
import { useBrowserStack, NO_PROBLEMS, openPage, signIn, snap, unexpected } from './support/browser';

const IMG = '<img src=x onerror=alert(1)>';
const SCRIPT = '<script>alert(2)</script>';
const SVG = '"><svg onload=alert(3)>';
const XSS = `${IMG}${SCRIPT}${SVG}`;

describe('the dashboard in Chromium: XSS and CSP', () => {
  const env = useBrowserStack();

  describe('hostile strings in every field', () => {
    it('stay inert text: no dialog, no element made from them, no CSP violation', async () => {
      const { page, problems } = await openPage(env.browser);
      await page.goto(env.stack.baseUrl);
      const injected = () => page.locator('main img, main script:not([src]), main svg').count();

      // Subscribe: a hostile email is refused with a plain-text error; a hostile name is accepted as a name.
      await page.locator('#subEmail').evaluate((el: HTMLInputElement) => (el.type = 'text')); // past the browser's own check
      await page.locator('#subEmail').fill(`${IMG}@example.com`);
      await page.locator('#subName').fill(XSS);
      await page.getByRole('button', { name: 'Get checkout link' }).click();
      await expect.poll(() => page.locator('#subscribe-result').textContent()).toBe('Error: email: must be a valid email address');

      await page.locator('#subEmail').fill('xss@example.com');
      await page.getByRole('button', { name: 'Get checkout link' }).click();
      await page.getByRole('link', { name: 'Open checkout →' }).click();
      await page.getByRole('button', { name: 'Pay with test card' }).click();
      await page.waitForURL((u) => u.pathname === '/');
      await settle(env.stack);
      const mail = outboxTo(env.stack, 'xss@example.com').find((m) => m.subject === 'Your MailKit API key');
      const key = /mk_test_[A-Za-z0-9_.-]+/.exec(mail?.text ?? '')![0];

      // The key field: a hostile "key" is refused (with spaces, before any request; without,
      // by the server), and no message echoes it.
      await page.locator('#api-key').fill(XSS);
      await page.locator('#use-key').click();
      await expect.poll(() => page.locator('#key-result').textContent()).toContain('That is not a MailKit API key');
      // Four parts and a full-length signature: not taken for a key cut short.
      await page.locator('#api-key').fill(`mk_test_${SCRIPT}.1.${SCRIPT}.${'A'.repeat(43)}`);
      await page.locator('#use-key').click();
      await expect.poll(() => page.locator('#key-result').textContent()).toContain('This API key is not valid');
      expect(await page.locator('#key-result').textContent()).not.toContain('<');
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

      // The real key: the hostile name comes back from the server and is shown as text.
      await page.locator('#api-key').fill(key);
      await page.locator('#use-key').click();
      await page.locator('#key-result.ok').waitFor();
      expect(await page.locator('#key-result').textContent()).toMatch(/^Signed in as (.+) \(xss@example\.com\), customer cus_\w+\.$/);
      expect(await page.locator('#key-result').textContent()).toContain(`Signed in as ${XSS} (`);

      // Send: a hostile "to" is stopped by the browser; hostile subject and HTML are sent as data.
      await page.locator('#sendTo').fill(IMG);
      await page.locator('#send-button').click();
      expect(await page.locator('#sendTo').evaluate((el: HTMLInputElement) => el.validity.valid)).toBe(false);
      await page.locator('#sendTo').fill('delivered@resend.dev');
      await page.locator('#sendSubj').fill(`Subject ${XSS}`);
      await page.locator('#sendBody').fill(`<p>Body</p>${XSS}`);
      await page.locator('#send-button').click();
      await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent\. Message id: /);
      expect(outboxTo(env.stack, 'delivered@resend.dev').some((m) => m.subject === `Subject ${XSS}`)).toBe(true);
      await snap(page, '20-xss-dashboard');

      expect(await injected()).toBe(0);
      expect(unexpected(problems, [400, 401])).toEqual(NO_PROBLEMS);
    });

    it('stay text in the outbox too, and the email body runs in a sandboxed frame', async () => {
      const { page, problems } = await openPage(env.browser);
      await page.goto(`${env.stack.baseUrl}/sandbox/outbox`);
      const subject = page.locator('td.col-subject a', { hasText: 'Subject <img' }).first();
      expect(await subject.textContent()).toBe(`Subject ${XSS}`);
      expect(await page.locator('main img, main svg').count()).toBe(0);
      await subject.click();
      expect(await page.locator('h1.subject').textContent()).toBe(`Subject ${XSS}`);
      expect(await page.locator('iframe.body-frame').getAttribute('sandbox')).toBe('');
      await snap(page, '21-xss-outbox-message');
      // Chromium reports, as console errors, the scripts the sandboxed frame refused to run
      // and the image "x" that does not exist: both are the frame doing its job.
      expect(problems.dialogs).toEqual([]);
      expect(problems.pageErrors).toEqual([]);
      expect(problems.cspViolations).toEqual([]);
    });
  });

  describe('the CSP', () => {
    it('is sent on the dashboard: scripts and styles from this origin only', async () => {
      const res = await fetch(env.stack.baseUrl);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("style-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
    });

    it('holds with no console error or warning on the dashboard (chart and banner drawn), the checkout, the outbox and the console', async () => {
      const { key, customerId } = await subscribe(env.stack, 'csp@example.com', 'CSP');
      await env.stack.sandbox.dodo.adjustBalance(customerId, env.stack.catalog.creditEntitlementId, -4500, 'low');
      const { page, problems } = await openPage(env.browser);
      await signIn(page, env.stack.baseUrl, key);
      await page.locator('#usage-chart canvas').waitFor();
      await page.locator('#low-balance-banner').waitFor();
      await page.locator('#usage-details summary').click();
      await page.locator('#send-button').click();
      await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent/);
      // Hovering the chart makes uPlot move its cursor and legend (styles set from script).
      await page.locator('#usage-chart .u-over').hover();

      await page.locator('#buyTopup').click();
      await page.getByRole('button', { name: 'Pay with test card' }).waitFor();
      await page.goto(`${env.stack.baseUrl}/sandbox/outbox`);
      await page.getByRole('link', { name: 'Your MailKit API key' }).first().click();
      await page.locator('pre.text-body').waitFor();
      // The console too, and its adjustment.
      await page.goto(`${env.stack.baseUrl}/sandbox`);
      await page.locator('#adjust-form select[name="customer_id"]').selectOption(customerId);
      await page.locator('#adjust-form input[name="amount"]').fill('-100');
      await page.getByRole('button', { name: 'Adjust balance' }).click();
      await page.locator('#console-status').filter({ hasText: 'Balance adjusted by −100: now 399.' }).waitFor();
      // Not an error, not a warning (an Origin-Agent-Cluster one came from the outbox's body frame).
      expect(problems).toEqual(NO_PROBLEMS);
    });

    it('a violation would be caught: an injected inline script is reported', async () => {
      const { page, problems } = await openPage(env.browser);
      await page.goto(env.stack.baseUrl);
      await page.evaluate(() => {
        const s = document.createElement('script');
        s.textContent = 'window.ran = true';
        document.body.append(s);
      });
      await expect.poll(() => problems.cspViolations.length).toBeGreaterThan(0);
      expect(await page.evaluate(() => (window as unknown as { ran?: boolean }).ran)).toBeUndefined();
      expect(problems.pageErrors).toEqual([]);
    });
  });
});
