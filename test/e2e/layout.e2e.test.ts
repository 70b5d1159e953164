import type { Page } from 'playwright-core';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { bearer, settle, subscribe } from '../support/stack';
import { useBrowserStack, NO_PROBLEMS, openPage, signIn, snap, unexpected, type BrowserStack } from './support/browser';

/** The dashboard's own state (public/app.js), read in the page for the chart. */
declare const state: { chart: any; days: Array<{ date: string; balance: string | null }> };

/** An address long enough to overflow a table cell at either width, with hyphens a line could break at. */
const LONG_EMAIL = 'a.rather.long.mailbox-name.for-layout@subdomain.example-company.com';
/** Bounces (Resend's test address with a label), so a long address lands on the suppression list. */
const LONG_BOUNCE = 'bounced+a-long-label-for-the-layout-check@resend.dev';
const WIDTHS = [1280, 375];
/** What is checked for broken words: table cells, badges, buttons, statuses, the chart's legend. */
const CHECKED = 'td, th, button, .badge, .status';

/**
 * What the pages are checked with: a customer with a long address who sent five emails (one
 * delivered, one bounced, one complained, two to long addresses), two of them now on the
 * suppression list with a Remove button each, and a balance adjusted by 4,000 the same day.
 */
async function seed(stack: BrowserStack): Promise<{ key: string; customerId: string; other: string }> {
  const customer = await subscribe(stack, LONG_EMAIL, 'Layout Reader With A Long Name');
  const other = await subscribe(stack, 'short@example.com', 'Short');
  const sends = [
    ['delivered@resend.dev', 'Your top-up receipt, with a subject long enough to wrap'],
    ['bounced@resend.dev', 'A one-off notice that bounces'],
    ['complained@resend.dev', 'Weekly digest: what changed in your account this week'],
    [LONG_EMAIL, 'Sign-in link for your account'],
    [LONG_BOUNCE, 'Re: follow-up'],
  ];
  for (const [to, subject] of sends) {
    await request(stack.url).post('/send').set(bearer(customer.key)).send({ to, subject, html: '<p>Hello: a top-up pack is $9.</p>' }).expect(200);
  }
  await stack.sandbox.dodo.adjustBalance(customer.customerId, stack.catalog.creditEntitlementId, -4000, 'layout check: a big adjustment');
  await settle(stack);
  await stack.sandbox.resend.webhooks.idle();
  return { ...customer, other: other.key };
}

/**
 * Every word (a run of non-space characters) in the visible text of the elements `selector`
 * matches that the browser laid out on more than one line: "delivere|d" is one, "mailbox-|name"
 * another. Each word is wrapped in a Range, whose boxes tell the lines it sits on.
 */
function brokenWords(page: Page, selector: string): Promise<string[]> {
  return page.evaluate((sel) => {
    const seen = new Set<Node>();
    const broken: string[] = [];
    for (const el of Array.from(document.querySelectorAll(sel))) {
      if (!el.getClientRects().length) continue;
      const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode() as Text | null; node; node = walker.nextNode() as Text | null) {
        if (seen.has(node)) continue;
        seen.add(node);
        for (const match of node.data.matchAll(/\S+/g)) {
          const range = document.createRange();
          range.setStart(node, match.index);
          range.setEnd(node, match.index + match[0].length);
          const lines = new Set(
            Array.from(range.getClientRects())
              .filter((r) => r.width > 0)
              .map((r) => Math.round(r.top)),
          );
          if (lines.size > 1) broken.push(`"${match[0]}" in <${el.tagName.toLowerCase()} class="${el.className}">`);
        }
      }
    }
    return broken;
  }, selector);
}

/**
 * Statuses, badges, buttons and headings that could break or be cut: any whose CSS lets a word
 * break anywhere, or whose text is wider than the box inside its padding ("complain…").
 */
function cutLabels(page: Page, selector: string): Promise<string[]> {
  return page.evaluate((sel) => {
    const cut: string[] = [];
    for (const el of Array.from(document.querySelectorAll<HTMLElement>(sel))) {
      if (!el.getClientRects().length || !el.textContent?.trim()) continue;
      // Out of sight, for screen readers only: inside a 1 px box that hides what overflows it (a phone's header row).
      let hidden = false;
      for (let up: HTMLElement | null = el; up && !hidden; up = up.parentElement) {
        const box = up.getBoundingClientRect();
        hidden = (box.width <= 1 || box.height <= 1) && getComputedStyle(up).overflow === 'hidden';
      }
      if (hidden) continue;
      const style = getComputedStyle(el);
      const breaks = style.wordBreak === 'break-all' || style.overflowWrap === 'anywhere' || style.overflowWrap === 'break-word';
      const range = document.createRange();
      range.selectNodeContents(el);
      const text = range.getBoundingClientRect().width;
      const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      if ((breaks && style.whiteSpace !== 'nowrap') || text > room + 0.5)
        cut.push(`<${el.tagName.toLowerCase()} class="${el.className}">${el.textContent} (${Math.round(text)} px in ${room})`);
    }
    return cut;
  }, selector);
}

/** Badges and buttons whose label takes more than one line ("Clear / outbox"): each is short enough for one. */
function twoLineLabels(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll('button, .badge')).flatMap((el) => {
      const range = document.createRange();
      range.selectNodeContents(el);
      const lines = new Set(
        Array.from(range.getClientRects())
          .filter((r) => r.width > 0)
          .map((r) => Math.round(r.top)),
      );
      return lines.size > 1 ? [el.textContent ?? ''] : [];
    }),
  );
}

/** The page's own width fits the window: what is wide scrolls inside its table's frame. */
const pageOverflow = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

async function expectWholeWords(page: Page, name: string, labels: string): Promise<void> {
  expect(await brokenWords(page, CHECKED), name).toEqual([]);
  expect(await cutLabels(page, labels), name).toEqual([]);
  expect(await twoLineLabels(page), name).toEqual([]);
  expect(await pageOverflow(page), name).toBeLessThanOrEqual(0);
}

describe('tables, badges and buttons at 1280 and 375 px: words wrap whole', () => {
  let customer: Awaited<ReturnType<typeof seed>>;
  const env = useBrowserStack({ setup: async (stack) => (customer = await seed(stack)) });

  for (const width of WIDTHS) {
    it(`the dashboard at ${width} px`, async () => {
      const { page, problems } = await openPage(env.browser, { viewport: { width, height: 900 } });
      await signIn(page, env.stack.baseUrl, customer.key);
      for (const status of ['delivered', 'bounced', 'complained'])
        await page.locator(`#email-rows .status-${status}`).first().waitFor({ timeout: 15_000 });
      await page.getByRole('button', { name: `Remove ${LONG_BOUNCE} from the suppression list` }).waitFor();
      await page.locator('#usage-chart canvas').waitFor();
      await page.locator('#usage-details summary').click();
      await snap(page, `layout-dashboard-${width}`);
      await expectWholeWords(
        page,
        `dashboard at ${width}`,
        '.left-table th, #email-rows .status, #email-rows .col-time, #email-rows .col-credits, .col-reason, button',
      );
      // On a phone each email is a card, and its credits say what they count.
      if (width === 375)
        expect(
          await page
            .locator('#email-rows .col-credits')
            .first()
            .evaluate((el) => getComputedStyle(el, '::after').content),
        ).toBe('" credit"');
      expect(problems).toEqual(NO_PROBLEMS);
    });

    it(`the sandbox console at ${width} px`, async () => {
      const { page, problems } = await openPage(env.browser, { viewport: { width, height: 900 } });
      await page.goto(`${env.stack.baseUrl}/sandbox?customer=${customer.customerId}`);
      await page.locator('#ledger').waitFor();
      await snap(page, `layout-console-${width}`);
      await expectWholeWords(page, `console at ${width}`, '.badge, button, th');
      // The customer select shows each name whole: names are told apart without their addresses.
      const select = await page.locator('#adjust-customer').evaluate((el: HTMLSelectElement) => {
        const probe = document.createElement('span');
        probe.style.font = getComputedStyle(el).font;
        probe.textContent = el.selectedOptions[0]!.text;
        document.body.append(probe);
        const text = probe.getBoundingClientRect().width;
        probe.remove();
        return { label: el.selectedOptions[0]!.text, text, room: el.clientWidth };
      });
      expect(select.label).toBe('Layout Reader With A Long Name');
      expect(select.text, `"${select.label}" in a ${select.room} px select`).toBeLessThan(select.room - 30);
      expect(problems).toEqual(NO_PROBLEMS);
    });

    it(`the outbox at ${width} px`, async () => {
      const { page, problems } = await openPage(env.browser, { viewport: { width, height: 900 } });
      await page.goto(`${env.stack.baseUrl}/sandbox/outbox`);
      await page.locator('#rows .badge-complained').waitFor();
      // A new email makes the page's own refresh (outbox.js) draw every row again: those are checked.
      const subject = `Drawn by the page at ${width} px`;
      await request(env.stack.url)
        .post('/send')
        .set(bearer(customer.other))
        .send({ to: 'delivered@resend.dev', subject, html: '<p>Hi</p>' })
        .expect(200);
      await page.locator('#rows tr.fresh', { hasText: subject }).waitFor({ timeout: 10_000 });
      await snap(page, `layout-outbox-${width}`);
      await expectWholeWords(page, `outbox at ${width}`, '.badge, button, th, .col-time');
      expect(problems).toEqual(NO_PROBLEMS);
    });
  }

  it('the chart: titled scales, emails beside a 4,000 adjustment, a legend with values, nothing before the customer existed', async () => {
    // The route answers null, not 0, for days before the customer's first movement.
    const usage = await request(env.stack.url).get('/credits/usage?days=30').set(bearer(customer.key)).expect(200);
    const days: Array<{ date: string; emails: number; adjusted: number; balance: string | null }> = usage.body.days;
    expect(days.slice(0, -1).every((d) => d.balance === null)).toBe(true);
    const today = days.at(-1)!;
    expect(today).toMatchObject({ emails: 5, adjusted: 4000 });

    for (const width of WIDTHS) {
      const { page, problems } = await openPage(env.browser, { viewport: { width, height: 900 } });
      await signIn(page, env.stack.baseUrl, customer.key);
      await page.locator('#usage-chart canvas').waitFor();
      await expect.poll(() => page.evaluate(() => state.days.at(-1)?.balance)).toBe(today.balance);
      const chart = await page.evaluate(() => {
        const u = state.chart;
        const index = (label: string) => u.series.findIndex((s: { label: string }) => s.label === label);
        const balance = index('Balance');
        return {
          titles: u.axes.slice(1).map((a: { label?: string; scale: string }) => ({ scale: a.scale, label: a.label })),
          emailScale: u.series[index('Emails sent')].scale,
          adjustedScale: u.series[index('Adjusted by hand')].scale,
          emails: u.data[index('Emails sent')],
          adjusted: u.data[index('Adjusted by hand')],
          balance: u.data[balance],
          threshold: u.data[index('Low-balance threshold')],
          // The height in px of today's emails bar, and the balance points drawn on their own.
          emailsBar: u.valToPos(0, 'emails') - u.valToPos(u.data[index('Emails sent')].at(-1), 'emails'),
          lonePoints: u.series[balance].points.filter(u, balance),
        };
      });
      expect(chart.titles).toEqual([
        { scale: 'emails', label: 'Emails per day' },
        { scale: 'credits', label: 'Credits: balance, adjustments' },
      ]);
      // Emails on a scale of their own: the 5 emails are a bar of their own height beside the 4,000.
      expect([chart.emailScale, chart.adjustedScale]).toEqual(['emails', 'credits']);
      expect(chart.emails.at(-1)).toBe(5);
      expect(chart.adjusted.at(-1)).toBe(4000);
      expect(chart.emailsBar).toBeGreaterThan(40);
      // Nothing at all before the customer's first day: no bar, no balance, no threshold.
      for (const series of [chart.emails, chart.adjusted, chart.balance, chart.threshold])
        expect(series.slice(0, -1).every((v: number | null) => v === null)).toBe(true);
      expect(chart.balance.at(-1)).toBe(Number(today.balance));
      // A balance of one day is a dot, not an invisible line.
      expect(chart.lonePoints).toEqual([days.length - 1]);

      // Before any hover, the legend reads the latest day; over a day before the customer, no balance; away again, the latest.
      const legend = () =>
        page
          .locator('.u-legend .u-series')
          .evaluateAll((rows) =>
            Object.fromEntries(rows.map((r) => [r.querySelector('.u-label')?.textContent, r.querySelector('.u-value')?.textContent])),
          );
      const latest = {
        Day: today.date,
        'Emails sent': '5',
        'Adjusted by hand': '4,000',
        'Expired (not usage)': '0',
        Balance: Number(today.balance).toLocaleString('en-US'),
        'Low-balance threshold': '1,000',
      };
      expect(await legend()).toEqual(latest);
      const plot = page.locator('#usage-chart .u-over');
      await plot.hover({ position: { x: 3, y: 40 } });
      await expect.poll(async () => (await legend()).Day).toBe(days[0]!.date);
      expect(await legend()).toMatchObject({ Balance: '—', 'Emails sent': '0', 'Low-balance threshold': '—' });
      await page.locator('#usage-summary').hover();
      await expect.poll(() => legend()).toEqual(latest);
      expect(await brokenWords(page, '.u-legend th, .u-legend td')).toEqual([]);
      await page.locator('#usage').screenshot({ path: `test-artifacts/e2e/layout-chart-${width}.png` });
      // The table lists the days the customer has: today alone.
      await page.locator('#usage-details summary').click();
      expect(await page.locator('#usage-rows tr').count()).toBe(1);
      expect(unexpected(problems)).toEqual(NO_PROBLEMS);
    }
  });
});
