import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import request from 'supertest';
import { bearer, outboxTo, settle, subscribe } from '../support/stack';
import { useBrowserStack, NO_PROBLEMS, openPage, signIn, snap, unexpected } from './support/browser';

/** The dashboard's own state (public/app.js), read in the page for the chart's geometry. */
declare const state: { chart: any };

/** The quick start's steps as this suite walks them. */
const README_STEPS = ['Subscribe', 'Get your key', 'Send', 'Low balance', 'Top up'];

/** The bold titles of the README's numbered quick-start steps, in order. */
function readmeSteps(): string[] {
  const readme = readFileSync(resolve(__dirname, '../../README.md'), 'utf8');
  const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('\n## ', readme.indexOf('## Quick start') + 1));
  return [...quickStart.matchAll(/^\d+\. \*\*(.+?)\*\*/gm)].map((m) => m[1]!);
}

/** Clicks something that opens a new tab (target=_blank) and returns that tab, loaded. */
async function newTab(page: Page, click: () => Promise<void>): Promise<Page> {
  const [tab] = await Promise.all([page.context().waitForEvent('page'), click()]);
  await tab.waitForLoadState();
  return tab;
}

/** Today's row of the usage table, by column heading (the table need not be open). */
async function usageToday(page: Page): Promise<Record<string, string>> {
  const headings = await page.locator('#usage-table thead th').allTextContents();
  const cells = await page.locator('#usage-rows tr').first().locator('td').allTextContents();
  return Object.fromEntries(headings.map((h, i) => [h, cells[i] ?? '']));
}

describe('the tutorial, clicked through in Chromium', () => {
  const env = useBrowserStack();

  it('the README numbers these five steps, in this order', () => {
    expect(readmeSteps()).toEqual(README_STEPS);
  });

  it("walks the README's quick start, step by step, seeing what each step says", async () => {
    const email = 'tutorial@example.com';
    const { page, problems } = await openPage(env.browser);
    const balance = page.locator('#balance');
    // The checkout's return URL is the public origin, so the whole visit stays on it (one sessionStorage).
    await page.goto(env.stack.baseUrl);
    await expect.poll(() => page.locator('#sandboxNav').isVisible()).toBe(true);
    // No key yet: the balance box says so in plain text, not a 40 px dash.
    expect(await balance.textContent()).toBe('No key in use yet');
    expect(parseFloat(await balance.evaluate((el) => getComputedStyle(el).fontSize))).toBeLessThanOrEqual(16);
    expect(await page.locator('#balance-sub').isVisible()).toBe(false);
    await snap(page, 'step0-dashboard');

    // 1. Subscribe: email and name, Get checkout link, open it, Pay with test card, back on the dashboard.
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Name', { exact: true }).fill('Tutorial Reader');
    await page.getByRole('button', { name: 'Get checkout link' }).click();
    await page.getByRole('link', { name: 'Open checkout →' }).click();
    await page.getByRole('button', { name: 'Pay with test card' }).waitFor();
    expect(await page.textContent('body')).toContain('MailKit Plan');
    await snap(page, 'step1a-checkout');
    await page.getByRole('button', { name: 'Pay with test card' }).click();
    await page.waitForURL((u) => u.origin === new URL(env.stack.baseUrl).origin && u.pathname === '/');
    await expect.poll(() => page.locator('#notice').textContent()).toContain('Payment received');
    // The ?subscribed=1 flag is read once and taken out of the address bar.
    expect(new URL(page.url()).search).toBe('');
    await snap(page, 'step1b-subscribed');
    await settle(env.stack);

    // 2. Get your key: the Outbox link (top right), the "Your MailKit API key" email, paste, Use key: 5,000.
    const outbox = await newTab(page, () => page.locator('#sandboxNav').getByRole('link', { name: 'Outbox' }).click());
    await outbox.getByRole('link', { name: 'Your MailKit API key' }).click();
    const key = /mk_test_[A-Za-z0-9_.-]+/.exec((await outbox.locator('pre.text-body').textContent()) ?? '')?.[0];
    expect(key, 'no key in the email').toBeTruthy();
    await snap(outbox, 'step2a-outbox-key-email');
    await outbox.close();
    await page.locator('#api-key').fill(key!);
    await page.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => balance.textContent()).toBe('5,000');
    await expect.poll(() => page.locator('#key-result').textContent()).toContain('Tutorial Reader');
    expect(await page.locator('#balance-sub').textContent()).toBe('emails available');
    // "Your API key is on its way" is done with once the key is in use.
    expect(await page.locator('#notice').isVisible()).toBe(false);
    // The key is in this tab's sessionStorage, never in the URL or in localStorage.
    expect(await page.evaluate(() => sessionStorage.getItem('mailkit.apiKey'))).toBe(key);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(page.url()).not.toContain(key!);
    await page.locator('#usage-chart canvas').waitFor();
    await snap(page, 'step2b-key-in-use-5000');

    // 3. Send from section 3: "Sent. Message id: …", the email in the outbox, 4,999.
    await page.getByLabel('Subject').fill('Hello from the browser test');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent\. Message id: \S+/);
    const id = (await page.locator('#send-result').textContent())!.replace('Sent. Message id: ', '');
    await expect.poll(() => balance.textContent()).toBe('4,999');
    expect(outboxTo(env.stack, 'delivered@resend.dev').find((m) => m.id === id)?.subject).toBe('Hello from the browser test');
    await expect.poll(() => usageToday(page)).toMatchObject({ Emails: '1', 'Adjusted by hand': '0', Expired: '0', Balance: '4,999' });
    expect(await page.locator('#low-balance-banner').isVisible()).toBe(false);
    await snap(page, 'step3-sent-4999');

    // 4. Low balance: the Sandbox console link, Adjust balance by the prefilled −4000, then
    // the console's message, the alert email in the outbox, the banner on the dashboard.
    const { customer_id: customerId } = await (await fetch(`${env.stack.url}/account`, { headers: { Authorization: `Bearer ${key}` } })).json();
    const console_ = await newTab(page, () => page.locator('#sandboxNav').getByRole('link', { name: 'Sandbox console' }).click());
    await console_.locator('#adjust-form select[name="customer_id"]').selectOption(customerId);
    expect(await console_.locator('#adjust-form input[name="amount"]').inputValue()).toBe('-4000');
    await console_.getByRole('button', { name: 'Adjust balance' }).click();
    await console_.locator('#console-status').filter({ hasText: 'Balance adjusted by −4,000: now 999.' }).waitFor({ timeout: 15_000 });
    await snap(console_, 'step4a-console-adjusted-999');
    await console_.goto(`${env.stack.baseUrl}/sandbox/outbox`);
    const alert = console_.getByRole('link', { name: 'Your Email Credits balance is running low' });
    await alert.waitFor();
    expect(await console_.locator('tr', { has: alert }).textContent()).toContain(email);
    expect(await console_.locator('tr', { has: alert }).textContent()).toContain('Buy a top-up pack: $9');
    await snap(console_, 'step4b-outbox-alert-email');
    await console_.close();
    await page.locator('#low-balance-banner').waitFor({ state: 'visible', timeout: 15_000 });
    expect(await balance.textContent()).toBe('999');
    expect(await page.locator('#low-balance-text').textContent()).toContain('Running low: 999 emails left');
    expect(await page.locator('#low-balance-banner').getAttribute('role')).toBe('alert');
    // The chart follows a jump in the balance at once, the adjustment apart from the send.
    await page.locator('#usage-summary').filter({ hasText: '4,000 credits adjusted by hand' }).waitFor({ timeout: 15_000 });
    expect(await page.locator('#usage-summary').textContent()).toContain('1 email sent in the last 30 days, 1 today');
    await snap(page, 'step4c-banner-999');
    // "send one more email from the dashboard's section 3": it goes out, 998.
    await page.getByLabel('Subject').fill('One more, under the threshold');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent\. Message id: \S+/);
    await expect.poll(() => balance.textContent()).toBe('998');
    await expect.poll(() => page.locator('#low-balance-text').textContent()).toContain('998 emails left');
    await expect.poll(() => usageToday(page)).toMatchObject({ Emails: '2', 'Adjusted by hand': '4,000', Balance: '998' });
    await snap(page, 'step4d-one-more-998');

    // 5. Top up from the banner, Pay with test card: 5,998 and no banner.
    await page.getByRole('button', { name: 'Top up 5,000 credits ($9)' }).click();
    await page.getByRole('button', { name: 'Pay with test card' }).waitFor();
    expect(await page.textContent('body')).toContain('Email Top-Up Pack');
    await snap(page, 'step5a-topup-checkout');
    await page.getByRole('button', { name: 'Pay with test card' }).click();
    await page.waitForURL((u) => u.pathname === '/');
    await expect.poll(() => balance.textContent()).toBe('5,998');
    await expect.poll(() => page.locator('#notice').textContent()).toContain('Top-up complete');
    expect(await page.locator('#low-balance-banner').isVisible()).toBe(false);
    await page.locator('#usage-details summary').click();
    await expect.poll(() => usageToday(page)).toMatchObject({ Emails: '2', 'Adjusted by hand': '4,000', Added: '10,000', Balance: '5,998' });
    await snap(page, 'step5b-topped-up-5998');

    expect(problems).toEqual(NO_PROBLEMS);
  });

  it("section 4's button goes straight to checkout, like the banner's", async () => {
    const { key } = await subscribe(env.stack, 'section4@example.com', 'Section Four');
    const { page, problems } = await openPage(env.browser);
    await signIn(page, env.stack.baseUrl, key);
    await page.getByRole('button', { name: 'Buy 5,000 emails ($9)' }).click();
    await page.getByRole('button', { name: 'Pay with test card' }).waitFor();
    expect(await page.textContent('body')).toContain('Email Top-Up Pack');
    await page.getByRole('button', { name: 'Pay with test card' }).click();
    await page.waitForURL((u) => u.pathname === '/');
    await expect.poll(() => page.locator('#balance').textContent()).toBe('10,000');
    expect(problems).toEqual(NO_PROBLEMS);
  });

  describe('what Send says when it fails', () => {
    const RETRY_HINT = 'Press Send again without changing anything';

    it('with no key: paste one first, and no promise of a retry', async () => {
      const { page, problems } = await openPage(env.browser);
      await page.goto(env.stack.baseUrl);
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      const result = page.locator('#send-result');
      await expect.poll(() => result.textContent()).toContain('Paste your API key first');
      expect(await result.textContent()).not.toContain(RETRY_HINT);
      await snap(page, '11-send-without-key');
      expect(problems).toEqual(NO_PROBLEMS);
    });

    it('after the server refused the key (401): no promise of a retry, then or on the next press', async () => {
      const { page, problems } = await openPage(env.browser);
      await page.goto(env.stack.baseUrl);
      await page.locator('#api-key').fill('mk_test_not-a-real-key');
      await page.getByRole('button', { name: 'Use key' }).click();
      await page.locator('#key-result.error').waitFor();
      for (let press = 0; press < 2; press++) {
        await page.getByRole('button', { name: 'Send', exact: true }).click();
        await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Error: /);
        expect(await page.locator('#send-result').textContent()).not.toContain(RETRY_HINT);
      }
      await snap(page, '12-send-after-401');
      expect(unexpected(problems, [401])).toEqual(NO_PROBLEMS);
    });

    it('when the key in use is refused at Send (rotated elsewhere): no promise of a retry', async () => {
      const { key } = await subscribe(env.stack, 'rotated@example.com', 'Rotated');
      const { page, problems } = await openPage(env.browser);
      await signIn(page, env.stack.baseUrl, key);
      await request(env.stack.url).post('/account/key').set(bearer(key)).expect(201);
      for (let press = 0; press < 2; press++) {
        await page.getByRole('button', { name: 'Send', exact: true }).click();
        // The 401 itself, or, once the balance poll has met the same 401 and forgotten the key, "paste one first".
        await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/Paste a valid key above\.|Paste your API key first/);
        expect(await page.locator('#send-result').textContent()).not.toContain(RETRY_HINT);
      }
      expect(unexpected(problems, [401])).toEqual(NO_PROBLEMS);
    });

    it('after a 503 delivery_unconfirmed: the hint, and the retry carries the same Idempotency-Key', async () => {
      const { key } = await subscribe(env.stack, 'unconfirmed@example.com', 'Unconfirmed');
      const { page, problems } = await openPage(env.browser);
      await signIn(page, env.stack.baseUrl, key);
      const keys: string[] = [];
      // The server's answer when Resend's outcome is unknown, as a user would get it.
      await page.route('**/send', async (route) => {
        keys.push(route.request().headers()['idempotency-key'] ?? '');
        await route.fulfill({
          status: 503,
          contentType: 'application/json',
          headers: { 'Retry-After': '5' },
          body: JSON.stringify({ error: { code: 'delivery_unconfirmed', message: 'Resend did not confirm the email.' } }),
        });
      });
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await expect.poll(() => page.locator('#send-result').textContent()).toContain(RETRY_HINT);
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await expect.poll(() => keys.length).toBe(2);
      expect(keys[1]).toBe(keys[0]);
      await snap(page, '13-send-503-unconfirmed');
      // Another 5xx is not that case: no hint.
      await page.unroute('**/send');
      await page.route('**/send', (route) =>
        route.fulfill({
          status: 503,
          contentType: 'application/json',
          body: JSON.stringify({ error: { code: 'billing_unavailable', message: 'Billing is not answering.' } }),
        }),
      );
      await page.getByLabel('Subject').fill('Another email');
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await expect.poll(() => page.locator('#send-result').textContent()).toContain('Billing is not answering.');
      expect(await page.locator('#send-result').textContent()).not.toContain(RETRY_HINT);
      expect(unexpected(problems, [503])).toEqual(NO_PROBLEMS);
    });
  });

  it('the chart: labels fit their axes, every bar inside the plot, nothing drawn for a quiet day, adjustments in their own series', async () => {
    const { key, customerId } = await subscribe(env.stack, 'chart@example.com', 'Chart');
    const entitlement = env.stack.catalog.creditEntitlementId;
    await env.stack.sandbox.dodo.adjustBalance(customerId, entitlement, 20_000, 'a big grant: five-digit labels');
    await env.stack.sandbox.dodo.adjustBalance(customerId, entitlement, -12_000, 'a big debit by hand');
    await settle(env.stack);
    for (const width of [1100, 375]) {
      const { page, problems } = await openPage(env.browser, { viewport: { width, height: 900 } });
      await signIn(page, env.stack.baseUrl, key);
      await page.locator('#usage-chart canvas').waitFor();
      const geometry = await page.evaluate(() => {
        const u = state.chart;
        const fits = [1, 2].map((i) => {
          const axis = u.axes[i];
          u.ctx.font = axis.font[0];
          const widest = Math.max(...axis._values.map((v: string) => u.ctx.measureText(v).width / devicePixelRatio));
          return { labels: axis._values, room: axis._size - axis.ticks.size - axis.gap, widest };
        });
        const xs: number[] = u.data[0];
        return { fits, xMin: u.scales.x.min, xMax: u.scales.x.max, first: xs[0]!, last: xs[xs.length - 1]!, series: u.data.slice(1, 4) };
      });
      for (const axis of geometry.fits) expect(axis.widest, `labels ${axis.labels.join(' ')} at ${width}px`).toBeLessThanOrEqual(axis.room);
      // The credits scale (right) carries the adjustment and the balance: five-digit labels.
      expect(geometry.fits[1]!.labels).toContain('10,000');
      // Each day's bar is centred in its UTC day, and the plot spans whole days: first to last.
      expect(geometry.xMin).toBeLessThanOrEqual(geometry.first - 43_200);
      expect(geometry.xMax).toBeGreaterThanOrEqual(geometry.last + 43_200);
      // Bars: emails (own scale), then expired and adjusted (stacked); every day but today is null, so nothing is drawn there.
      for (const series of geometry.series) expect(series.slice(0, -1).every((v: number | null) => v === null)).toBe(true);
      expect(geometry.series.map((series: Array<number | null>) => series.at(-1))).toEqual([null, null, 12_000]);
      await snap(page, `14-chart-${width}`);
      expect(problems).toEqual(NO_PROBLEMS);
    }
  });

  it('a 402 explains how to top up and offers the one-click top-up', async () => {
    const { page, problems } = await openPage(env.browser);
    const { key, customerId } = await subscribe(env.stack, 'zero@example.com', 'Zero');
    await env.stack.sandbox.dodo.adjustBalance(customerId, env.stack.catalog.creditEntitlementId, -5000, 'spend it all');
    await settle(env.stack);

    await page.goto(env.stack.baseUrl);
    await page.locator('#api-key').fill(key);
    await page.locator('#api-key').press('Enter');
    await expect.poll(() => page.locator('#balance').textContent()).toBe('0');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const result = page.locator('#send-result');
    await expect.poll(() => result.textContent()).toContain('No email credits remaining. Buy a top-up pack or upgrade your plan.');
    expect(await result.getAttribute('class')).toContain('error');
    expect(await result.textContent()).toContain('nothing was sent or charged');
    await snap(page, '10-send-402');
    await result.getByRole('button', { name: 'Top up 5,000 credits ($9)' }).click();
    await page.getByRole('button', { name: 'Pay with test card' }).waitFor();
    expect(await page.textContent('body')).toContain('Email Top-Up Pack');
    expect(unexpected(problems, [402])).toEqual(NO_PROBLEMS);
  });

  it('the balance refreshes itself while the tab is visible, and pauses while it is hidden', async () => {
    const { key, customerId } = await subscribe(env.stack, 'poll@example.com', 'Poll');
    const { page, problems } = await openPage(env.browser);
    const reads: number[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/credits') reads.push(Date.now());
    });
    await signIn(page, env.stack.baseUrl, key);
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,000');

    // Hidden: no reads at all, even when the balance changes meanwhile.
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const hiddenAt = Date.now();
    await env.stack.sandbox.dodo.adjustBalance(customerId, env.stack.catalog.creditEntitlementId, -10, 'while hidden');
    await new Promise((r) => setTimeout(r, 7_000));
    expect(reads.filter((t) => t > hiddenAt + 200)).toEqual([]);
    expect(await page.locator('#balance').textContent()).toBe('5,000');

    // Visible again: read at once, then every few seconds.
    const shownAt = Date.now();
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await expect.poll(() => page.locator('#balance').textContent(), { timeout: 1_500 }).toBe('4,990');
    await new Promise((r) => setTimeout(r, 11_000));
    expect(reads.filter((t) => t >= shownAt).length).toBeGreaterThanOrEqual(3);
    expect(problems).toEqual(NO_PROBLEMS);
  });
});
