import { describe, expect, it } from 'vitest';
import { subscribe } from '../support/stack';
import { useBrowserStack, NO_PROBLEMS, openPage, signIn, snap, unexpected } from './support/browser';

describe("a newcomer's key, in Chromium", () => {
  const env = useBrowserStack();

  it('the key email\'s "Copy key" puts the whole key on the clipboard; pasted, it works', async () => {
    await subscribe(env.stack, 'copy@example.com', 'Copy Reader');
    const { page, problems } = await openPage(env.browser, { permissions: ['clipboard-read', 'clipboard-write'] });
    await page.goto(`${env.stack.baseUrl}/sandbox/outbox`);
    await page.getByRole('link', { name: 'Your MailKit API key' }).click();
    const shown = (await page.locator('#api-key-value').textContent())!;
    expect(shown).toMatch(/^mk_test_\S+\.\d+\.\S+\.\S+$/);
    await page.getByRole('button', { name: 'Copy key' }).click();
    await expect.poll(() => page.locator('#copy-key-result').textContent()).toContain('Copied');
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied).toBe(shown);
    await snap(page, 'first-run-01-copy-key');

    await page.goto(env.stack.baseUrl);
    await page.locator('#api-key').focus();
    await page.keyboard.press('ControlOrMeta+V');
    expect(await page.locator('#api-key').inputValue()).toBe(shown);
    await page.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,000');
    expect(unexpected(problems)).toEqual(NO_PROBLEMS);
  });

  it('a key cut at its first dot is named as such; a wrong key leaves the working one in use', async () => {
    const { key } = await subscribe(env.stack, 'cut@example.com', 'Cut Reader');
    const { page, problems } = await openPage(env.browser);
    await signIn(page, env.stack.baseUrl, key);
    await expect.poll(() => page.locator('#balance').textContent()).toBe('5,000');

    // What a double-click selects: the key up to its first dot.
    await page.locator('#api-key').fill(key.split('.')[0]!);
    await page.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => page.locator('#key-result').textContent()).toContain('looks cut short');
    expect(await page.locator('#key-result').textContent()).toContain('The key you were using is still in use.');
    expect(await page.evaluate(() => sessionStorage.getItem('mailkit.apiKey'))).toBe(key);
    expect(await page.locator('#balance').textContent()).toBe('5,000');
    await snap(page, 'first-run-02-cut-key');

    // The working key still sends.
    await page.getByLabel('Subject').fill('Still signed in');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect.poll(() => page.locator('#send-result').textContent()).toMatch(/^Sent\. Message id: \S+/);
    await expect.poll(() => page.locator('#balance').textContent()).toBe('4,999');
    expect(unexpected(problems, [401])).toEqual(NO_PROBLEMS);
  });
});
