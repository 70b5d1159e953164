import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startStack, type Stack } from '../../src/stack';
import { LIVE_ENV } from '../support/stack';
import { launchBrowser, NO_PROBLEMS, openPage, snap, useBrowserStack } from './support/browser';

/** What only the sandbox may say: its name, Resend's test address, test keys. */
const SANDBOX_WORDS = /sandbox|delivered@resend\.dev|mk_test_/i;

/** All a reader sees of the dashboard's words: its visible text, and every field's value and placeholder. */
async function shownText(page: Page): Promise<{ text: string; fields: string[] }> {
  const text = await page.locator('body').innerText();
  const fields = await page
    .locator('input, textarea')
    .evaluateAll((els) =>
      (els as HTMLInputElement[]).filter((el) => el.getClientRects().length).flatMap((el) => [el.value, el.placeholder].filter(Boolean)),
    );
  return { text, fields };
}

describe('the dashboard in live mode, in Chromium', () => {
  let stack: Stack;
  let browser: Browser;
  beforeAll(async () => {
    // Live against unreachable vendors: the dashboard itself needs neither to load.
    stack = await startStack(loadConfig(LIVE_ENV), { inMemory: true, log: createLogger('silent') });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  for (const width of [1280, 375]) {
    it(`says nothing of the sandbox, its test address or test keys (${width} px)`, async () => {
      const { page, problems } = await openPage(browser, { viewport: { width, height: 900 } });
      await page.goto(stack.url);
      await page.locator('html[data-mode="live"]').waitFor();
      const { text, fields } = await shownText(page);
      expect(text).not.toMatch(SANDBOX_WORDS);
      for (const field of fields) expect(field).not.toMatch(SANDBOX_WORDS);
      expect(await page.locator('#api-key').getAttribute('placeholder')).toBe('mk_…');
      expect(await page.getByRole('textbox', { name: 'To', exact: true }).inputValue()).toBe('');
      expect(await page.locator('#sandboxNav').isVisible()).toBe(false);
      await snap(page, `live-dashboard-${width}`);
      expect(problems).toEqual(NO_PROBLEMS);
    });
  }
});

describe('the dashboard in sandbox mode keeps its hints', () => {
  const env = useBrowserStack();

  it("names the outbox, Resend's test address and test keys", async () => {
    const { page, problems } = await openPage(env.browser);
    await page.goto(env.stack.baseUrl);
    await page.locator('html[data-mode="sandbox"]').waitFor();
    expect(await page.locator('#sandboxNav').isVisible()).toBe(true);
    expect(await page.locator('#keyHint').innerText()).toContain('in the sandbox, it lands in the outbox');
    expect(await page.getByLabel("To (Resend's sandbox accepts delivered@resend.dev)").inputValue()).toBe('delivered@resend.dev');
    expect(await page.locator('#api-key').getAttribute('placeholder')).toBe('mk_test_…');
    expect(problems).toEqual(NO_PROBLEMS);
  });
});
