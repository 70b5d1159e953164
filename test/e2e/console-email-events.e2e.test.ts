import { describe, expect, it } from 'vitest';
import { subscribe } from '../support/stack';
import { useBrowserStack, NO_PROBLEMS, openPage, snap } from './support/browser';

/** The console's email events (the Resend sandbox's webhooks), clicked in Chromium. */
describe('the sandbox console: email events', () => {
  const env = useBrowserStack({ setup: (stack) => subscribe(stack, 'eve@example.com', 'Eve') }); // the API key email: email.sent, email.delivered

  it('lists each event with Redeliver, which resends it and shows the new attempt', async () => {
    const sent = () => env.stack.sandbox.resend.webhooks.list().find((d) => d.type === 'email.sent')!;
    await expect.poll(() => sent()?.attempts.length ?? 0).toBeGreaterThan(0);
    const before = sent().attempts.length;

    const { page, problems } = await openPage(env.browser);
    await page.goto(`${env.stack.baseUrl}/sandbox`);
    const item = page.locator(`#resend-webhooks li[data-webhook-id="${sent().id}"]`);
    await expect.poll(() => item.locator('.webhook-type').textContent()).toBe('email.sent');
    await item.locator('button[data-redeliver]').click();
    // MailKit's /webhooks/resend acknowledges the redelivery (200, a duplicate of an event it has).
    await page
      .locator('#console-status')
      .filter({ hasText: `Redelivered ${sent().id}` })
      .waitFor({ timeout: 15_000 });
    expect(sent().attempts.length).toBeGreaterThan(before);
    expect(sent().attempts.at(-1)!.status).toBe(200);
    await snap(page, 'console-email-events');
    expect(problems).toEqual(NO_PROBLEMS);
  });

  it('turns email events off and on', async () => {
    const { page, problems } = await openPage(env.browser);
    await page.goto(`${env.stack.baseUrl}/sandbox`);
    await page.locator('#resend-events-toggle').click();
    await page.locator('#console-status').filter({ hasText: 'Email events are off.' }).waitFor();
    expect(await page.locator('#resend-events-state').textContent()).toBe('off');
    expect(env.stack.sandbox.resend.webhooks.enabled()).toBe(false);
    await page.locator('#resend-events-toggle').click();
    await page.locator('#console-status').filter({ hasText: 'Email events are on.' }).waitFor();
    expect(env.stack.sandbox.resend.webhooks.enabled()).toBe(true);
    expect(problems).toEqual(NO_PROBLEMS);
  });
});
