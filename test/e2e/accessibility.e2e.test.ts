import { describe, expect, it } from 'vitest';
import { outboxTo, subscribe } from '../support/stack';
import { useBrowserStack, NO_PROBLEMS, openPage, signIn, snap } from './support/browser';

describe('the dashboard for keyboard, screen reader and phone users', () => {
  const env = useBrowserStack();

  it('has landmarks, headings, a label on every field and live regions for results', async () => {
    const { page, problems } = await openPage(env.browser);
    await page.goto(env.stack.baseUrl);
    expect(await page.locator('header').count()).toBe(1);
    expect(await page.locator('main').count()).toBe(1);
    expect(await page.locator('h1').textContent()).toBe('MailKit');
    expect(await page.locator('h2').allTextContents()).toEqual([
      'Your API key',
      '1. Subscribe to MailKit ($19/mo, 5,000 emails)',
      '2. Check your balance',
      '3. Send a transactional email',
      '4. Run low? Buy a top-up pack',
      'Recent emails',
      'Suppression list',
    ]);
    const unlabelled = await page
      .locator('input, textarea')
      .evaluateAll((els) => els.filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label')).map((el) => el.id));
    expect(unlabelled).toEqual([]);
    for (const id of ['key-result', 'subscribe-result', 'send-result', 'topup-result']) {
      expect(await page.locator(`#${id}`).getAttribute('aria-live')).toBe('polite');
    }
    expect(await page.locator('#balance').evaluate((el) => el.closest('[aria-live]')?.getAttribute('aria-live'))).toBe('polite');
    expect(await page.locator('#api-key').getAttribute('type')).toBe('password');
    expect(problems).toEqual(NO_PROBLEMS);
  });

  it('signs in and sends with the keyboard only (Tab, typing, Enter), with a visible focus ring', async () => {
    const { key } = await subscribe(env.stack, 'keyboard@example.com', 'Keys');
    const { page, problems } = await openPage(env.browser);
    await page.goto(env.stack.baseUrl);
    await page.locator('#sandboxNav').waitFor();

    // The first Tab reaches the skip link, which shows itself.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.className)).toBe('skip-link');
    expect(await page.locator('.skip-link').boundingBox()).toMatchObject({ y: expect.any(Number) });
    expect((await page.locator('.skip-link').boundingBox())!.y).toBeGreaterThanOrEqual(0);

    const tabTo = async (id: string) => {
      for (let i = 0; i < 40; i++) {
        if ((await page.evaluate(() => document.activeElement?.id)) === id) return;
        await page.keyboard.press('Tab');
      }
      throw new Error(`Tab never reached #${id}`);
    };
    await tabTo('api-key');
    await page.keyboard.type(key);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,000');

    await tabTo('sendTo');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    expect(outline).toBe('solid');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('sendSubj');
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('Typed with the keyboard');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('sendBody');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('send-button');
    await snap(page, '30-keyboard-focus-send');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent\. Message id: /);
    await expect.poll(() => page.locator('#balance').textContent()).toBe('4,999');
    expect(outboxTo(env.stack, 'delivered@resend.dev').some((m) => m.subject === 'Typed with the keyboard')).toBe(true);
    expect(problems).toEqual(NO_PROBLEMS);
  });

  it('fits a 375 px phone with no horizontal scrolling, banner and table open', async () => {
    const { key, customerId } = await subscribe(env.stack, 'phone@example.com', 'Phone');
    await env.stack.sandbox.dodo.adjustBalance(customerId, env.stack.catalog.creditEntitlementId, -4200, 'low on a phone');
    const { page, problems } = await openPage(env.browser, {
      viewport: { width: 375, height: 740 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
    });
    await signIn(page, env.stack.baseUrl, key);
    await page.locator('#low-balance-banner').waitFor();
    await page.locator('#usage-chart canvas').waitFor();
    await page.locator('#send-button').tap();
    await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent/);
    await page.locator('#usage-details summary').tap();
    await snap(page, '40-phone-375');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: 'test-artifacts/e2e/41-phone-375-first-screen.png' });

    const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
    expect(widths.scroll).toBeLessThanOrEqual(widths.inner);
    // Every column of the usage table in view, Balance included, without scrolling it sideways.
    const table = await page.locator('#usage-details .table-wrap').evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
    expect(table.scroll).toBeLessThanOrEqual(table.client);
    // The chart is drawn to the width it has, not wider.
    const chart = await page.locator('#usage-chart canvas').boundingBox();
    expect(chart!.x + chart!.width).toBeLessThanOrEqual(375);
    // The one-click top-up is a comfortable touch target.
    const button = await page.locator('#topup-button').boundingBox();
    expect(button!.height).toBeGreaterThanOrEqual(40);
    expect(problems).toEqual(NO_PROBLEMS);
  });
});
