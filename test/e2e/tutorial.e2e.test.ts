import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboxTo, settle, startTestStack, subscribe } from '../support/stack';
import { launchBrowser, NO_PROBLEMS, openPage, signIn, snap, unexpected } from './support/browser';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe('the tutorial, clicked through in Chromium', () => {
  let stack: TestStack;
  let browser: Browser;

  beforeAll(async () => {
    stack = await startTestStack();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('subscribe, pay, key from the outbox, send, low-balance banner, one-click top-up', async () => {
    const email = 'tutorial@example.com';
    const { page, problems } = await openPage(browser);
    // The checkout's return URL is the public origin, so the whole visit stays on it (one sessionStorage).
    await page.goto(stack.baseUrl);
    await expect.poll(() => page.locator('#sandboxNav').isVisible()).toBe(true);
    await snap(page, '01-dashboard');

    // 1. Subscribe: email and name, then the hosted checkout.
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Name', { exact: true }).fill('Tutorial Reader');
    await page.getByRole('button', { name: 'Get checkout link' }).click();
    await page.getByRole('link', { name: 'Open checkout →' }).click();
    await page.getByRole('button', { name: 'Pay with test card' }).waitFor();
    expect(await page.textContent('body')).toContain('MailKit Plan');
    await snap(page, '02-checkout');
    await page.getByRole('button', { name: 'Pay with test card' }).click();
    await page.waitForURL((u) => u.origin === new URL(stack.baseUrl).origin && u.pathname === '/');
    await expect.poll(() => page.locator('#notice').textContent()).toContain('Payment received');
    // The ?subscribed=1 flag is read once and taken out of the address bar.
    expect(new URL(page.url()).search).toBe('');
    await snap(page, '03-subscribed');
    await settle(stack);

    // 2. The key, from the "Your MailKit API key" email in the outbox.
    await page.goto(`${stack.baseUrl}/sandbox/outbox`);
    await page.getByRole('link', { name: 'Your MailKit API key' }).click();
    const text = await page.locator('pre.text-body').textContent();
    const key = /mk_test_[A-Za-z0-9_.-]+/.exec(text ?? '')?.[0];
    expect(key, 'no key in the email').toBeTruthy();
    await snap(page, '04-outbox-key-email');

    await page.goto(stack.baseUrl);
    await page.locator('#api-key').fill(key!);
    await page.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,000');
    await expect.poll(() => page.locator('#key-result').textContent()).toContain('Tutorial Reader');
    // The key is in this tab's sessionStorage, never in the URL or in localStorage.
    expect(await page.evaluate(() => sessionStorage.getItem('mailkit.apiKey'))).toBe(key);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(page.url()).not.toContain(key!);
    await page.locator('#usage-chart canvas').waitFor();
    await snap(page, '05-balance-5000');

    // 3. Send: the result carries the Resend id, the balance drops to 4,999, the outbox has it.
    await page.getByLabel('Subject').fill('Hello from the browser test');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent\. Message id: \S+/);
    const id = (await page.locator('#send-result').textContent())!.replace('Sent. Message id: ', '');
    await expect.poll(() => page.locator('#balance').textContent()).toBe('4,999');
    const sent = outboxTo(stack, 'delivered@resend.dev').find((m) => m.id === id);
    expect(sent?.subject).toBe('Hello from the browser test');
    await expect.poll(() => page.locator('#usage-rows tr').first().locator('td').nth(1).textContent()).toBe('1');
    await expect(page.locator('#low-balance-banner').isVisible()).resolves.toBe(false);
    await snap(page, '06-sent-4999');

    // 4. "Adjust balance" by -4000 in the sandbox console (the tutorial does it in Dodo's
    // dashboard), in another tab: the banner appears on the dashboard by itself, no reload.
    const { customer_id: customerId } = await (
      await fetch(`${stack.url}/account`, { headers: { Authorization: `Bearer ${key}` } })
    ).json();
    const consoleTab = await page.context().newPage();
    await consoleTab.goto(`${stack.baseUrl}/sandbox`);
    await consoleTab.locator('#adjust-form select[name="customer_id"]').selectOption(customerId);
    await consoleTab.locator('#adjust-form input[name="amount"]').fill('-4000');
    await consoleTab.locator('#adjust-form input[name="reason"]').fill('tutorial step');
    await consoleTab.locator('#adjust-form button[type="submit"]').click();
    await consoleTab.locator('#console-status').filter({ hasText: 'now 999' }).waitFor({ timeout: 15_000 });
    await snap(consoleTab, '07a-console-adjusted');
    await consoleTab.close();
    await page.locator('#low-balance-banner').waitFor({ state: 'visible', timeout: 15_000 });
    expect(await page.locator('#balance').textContent()).toBe('999');
    expect(await page.locator('#low-balance-text').textContent()).toContain('999 emails left');
    expect(await page.locator('#low-balance-banner').getAttribute('role')).toBe('alert');
    // The chart follows a jump in the balance at once: 1 send + 4,000 adjusted today.
    await page.locator('#usage-summary').filter({ hasText: '4,001 credits debited' }).waitFor({ timeout: 15_000 });
    await snap(page, '07-low-balance-banner');

    // 5. One-click top-up from the banner, pay, and the balance rises by 5,000.
    await page.getByRole('button', { name: 'Top up 5,000 credits ($9)' }).click();
    await page.getByRole('button', { name: 'Pay with test card' }).waitFor();
    expect(await page.textContent('body')).toContain('Email Top-Up Pack');
    await snap(page, '08-topup-checkout');
    await page.getByRole('button', { name: 'Pay with test card' }).click();
    await page.waitForURL((u) => u.pathname === '/');
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,999');
    await expect.poll(() => page.locator('#notice').textContent()).toContain('Top-up complete');
    expect(await page.locator('#low-balance-banner').isVisible()).toBe(false);
    await snap(page, '09-topped-up-5999');

    expect(problems).toEqual(NO_PROBLEMS);
  });

  it('a 402 explains how to top up and offers the one-click top-up', async () => {
    const { page, problems } = await openPage(browser);
    const { key, customerId } = await subscribe(stack, 'zero@example.com', 'Zero');
    await stack.sandbox.dodo.adjustBalance(customerId, stack.catalog.creditEntitlementId, -5000, 'spend it all');
    await settle(stack);

    await page.goto(stack.baseUrl);
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
    const { key, customerId } = await subscribe(stack, 'poll@example.com', 'Poll');
    const { page, problems } = await openPage(browser);
    const reads: number[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/credits') reads.push(Date.now());
    });
    await signIn(page, stack.baseUrl, key);
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,000');

    // Hidden: no reads at all, even when the balance changes meanwhile.
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const hiddenAt = Date.now();
    await stack.sandbox.dodo.adjustBalance(customerId, stack.catalog.creditEntitlementId, -10, 'while hidden');
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
