import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { settle } from '../support/stack';
import { useBrowserStack, NO_PROBLEMS, openPage, snap } from './support/browser';

/** How much of the terminal a reader takes in at a glance after the banner shows. */
const TAIL = 20;
/** pino's number for info: what the terminal shows at the default level, and above. */
const INFO = 30;

/** One line of the server's JSON log, as much of it as the test reads. */
interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** Clicks something that opens a new tab (target=_blank) and returns that tab, loaded. */
async function newTab(page: Page, click: () => Promise<void>): Promise<Page> {
  const [tab] = await Promise.all([page.context().waitForEvent('page'), click()]);
  await tab.waitForLoadState();
  return tab;
}

/** A line as a reader of the terminal would quote it. */
const quoted = (l: LogLine) => {
  const req = l.req as { method?: string; url?: string } | undefined;
  return [l.level, l.msg, req ? `${req.method} ${req.url}` : '', l.component ? `(${String(l.component)})` : ''].filter(Boolean).join(' ');
};

describe("the terminal during the quick start, at the server's default log level", () => {
  const lines: LogLine[] = [];
  // The level a newcomer's `npm start` logs at: the config's default, not the tests' silence.
  const level = loadConfig({}).logLevel;
  const log = createLogger(level, { write: (chunk: string) => void lines.push(JSON.parse(chunk) as LogLine) });
  const env = useBrowserStack({ stack: { log } });

  it('still shows the low-balance alert among its last lines once the dashboard shows the banner', async () => {
    expect(level).toBe('info');
    const { page, problems } = await openPage(env.browser);
    await page.goto(env.stack.baseUrl);

    // Subscribe, pay with the test card, back on the dashboard.
    await page.getByLabel('Email', { exact: true }).fill('terminal@example.com');
    await page.getByLabel('Name', { exact: true }).fill('Terminal Reader');
    await page.getByRole('button', { name: 'Get checkout link' }).click();
    await page.getByRole('link', { name: 'Open checkout →' }).click();
    await page.getByRole('button', { name: 'Pay with test card' }).click();
    await expect.poll(() => page.locator('#notice').textContent()).toContain('Payment received');
    await settle(env.stack);

    // The key from its email in the outbox, then a send from the dashboard.
    const outbox = await newTab(page, () => page.locator('#sandboxNav').getByRole('link', { name: 'Outbox' }).click());
    await outbox.getByRole('link', { name: 'Your MailKit API key' }).click();
    const key = /mk_test_[A-Za-z0-9_.-]+/.exec((await outbox.locator('pre.text-body').textContent()) ?? '')?.[0];
    expect(key, 'no key in the email').toBeTruthy();
    await outbox.close();
    await page.locator('#api-key').fill(key!);
    await page.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,000');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect.poll(() => page.locator('#balance').textContent()).toBe('4,999');
    // The send is settled with Dodo in arrears (seconds later, as a person reaches the console):
    // the console's "now 999" is Dodo's balance after the adjustment.
    const customerId = /customer (cus_\w+)/.exec((await page.locator('#key-result').textContent()) ?? '')?.[1];
    expect(customerId, 'no customer id on the dashboard').toBeTruthy();
    await expect.poll(() => env.stack.billing.balance(customerId!), { timeout: 15_000 }).toBe('4999');

    // The console's prefilled −4,000: under the threshold, the banner on the dashboard.
    const console_ = await newTab(page, () => page.locator('#sandboxNav').getByRole('link', { name: 'Sandbox console' }).click());
    await console_.getByRole('button', { name: 'Adjust balance' }).click();
    await console_.locator('#console-status').filter({ hasText: 'now 999' }).waitFor({ timeout: 15_000 });
    await console_.close();
    await page.locator('#low-balance-banner').waitFor({ state: 'visible', timeout: 15_000 });
    await settle(env.stack);
    // A reader turns to the terminal while the dashboard keeps polling: two polls' worth.
    await page.waitForTimeout(11_000);
    await snap(page, 'terminal-banner');

    const shown = lines.filter((l) => l.level >= INFO);
    const tail = shown.slice(-TAIL);
    expect(
      tail.some((l) => l.msg.includes('[low-balance]')),
      `the last ${TAIL} lines of the terminal:\n${tail.map(quoted).join('\n')}`,
    ).toBe(true);
    // Nothing the click-through did is a warning or an error.
    expect(shown.filter((l) => l.level > INFO).map(quoted)).toEqual([]);
    expect(problems).toEqual(NO_PROBLEMS);
  });
});
