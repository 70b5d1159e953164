import { describe, expect, it } from 'vitest';
import { balanceOf, outboxTo, subscribe } from '../support/stack';
import { useBrowserStack, NO_PROBLEMS, openPage, signIn, snap, unexpected } from './support/browser';

describe('recent emails and the suppression list, in Chromium', () => {
  const env = useBrowserStack();

  it('a bounce turns the row to "bounced" by itself; the next send to it is refused with nothing debited', async () => {
    const { key } = await subscribe(env.stack, 'history@example.com', 'History Reader');
    const { page, problems } = await openPage(env.browser);
    await signIn(page, env.stack.baseUrl, key);
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,000');
    await expect.poll(() => page.locator('#emails-empty').isVisible()).toBe(true);

    await page.getByLabel(/^To/).fill('bounced@resend.dev');
    await page.getByLabel('Subject').fill('Will bounce');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent\. Message id: \S+/);
    const id = (await page.locator('#send-result').textContent())!.replace('Sent. Message id: ', '');
    await expect.poll(() => page.locator('#balance').textContent()).toBe('4,999');

    // The row is there at once; the sandbox's email.bounced reaches MailKit and the dashboard's
    // own refresh shows it, with no click and no reload.
    const row = page.locator(`#email-rows tr[data-email-id="${id}"]`);
    await row.waitFor();
    expect(await row.locator('td').nth(1).textContent()).toBe('bounced@resend.dev');
    expect(await row.locator('td').nth(2).textContent()).toBe('Will bounce');
    expect(await row.locator('td').nth(4).textContent()).toBe('1');
    await expect.poll(() => row.locator('td').nth(3).textContent(), { timeout: 15_000 }).toBe('bounced');
    await expect.poll(() => page.locator('#emails-news').textContent()).toContain('bounced@resend.dev: bounced');
    await expect
      .poll(() => page.locator('#suppression-rows tr').first().locator('td').first().textContent(), { timeout: 15_000 })
      .toBe('bounced@resend.dev');
    expect(await page.locator('#suppression-rows tr').first().locator('td').nth(1).textContent()).toBe('bounced');
    await snap(page, 'history-01-bounced');

    // Try again: refused with the suppression message, nothing sent, nothing debited.
    const sent = outboxTo(env.stack, 'bounced@resend.dev').length;
    await page.getByLabel('Subject').fill('Second try');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect.poll(() => page.locator('#send-result').textContent()).toContain('bounced@resend.dev (bounced) is on your suppression list');
    expect(await page.locator('#send-result').textContent()).toContain('nothing was charged');
    expect(await page.locator('#balance').textContent()).toBe('4,999');
    expect(await balanceOf(env.stack, key)).toBe(4999);
    expect(outboxTo(env.stack, 'bounced@resend.dev')).toHaveLength(sent);
    expect(await page.locator('#email-rows tr').count()).toBe(1);
    await snap(page, 'history-02-refused');

    // Remove it from the list: the next send goes through again.
    await page.getByRole('button', { name: 'Remove bounced@resend.dev from the suppression list' }).click();
    await expect.poll(() => page.locator('#suppressions-result').textContent()).toContain('bounced@resend.dev removed');
    await expect.poll(() => page.locator('#suppressions-empty').isVisible()).toBe(true);

    expect(unexpected(problems, [422])).toEqual(NO_PROBLEMS);
  });
});
