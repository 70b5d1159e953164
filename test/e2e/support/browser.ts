import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { startTestStack } from '../../support/stack';

/** Where screenshots go: a CI artifact, git-ignored. */
export const ARTIFACTS = resolve('test-artifacts/e2e');

/** Flags that keep Debian's Chromium headless, offline and quiet in a container. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Debian's chromium (installed by .ci/run with apt-get); CHROMIUM_PATH overrides. Never downloads one. */
export function chromiumPath(): string {
  const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(path)) throw new Error(`No Chromium at ${path}: apt-get install chromium, or set CHROMIUM_PATH.`);
  return path;
}

export function launchBrowser(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS, headless: true });
}

/** Everything a page did that a user would call broken: console errors and warnings, uncaught errors, CSP violations, dialogs. */
export interface PageProblems {
  consoleErrors: string[];
  consoleWarnings: string[];
  pageErrors: string[];
  cspViolations: string[];
  dialogs: string[];
}

/**
 * A fresh page (own context, so its own sessionStorage) that records its problems, and
 * those of every tab it opens. CSP
 * violations are caught in the page itself with a `securitypolicyviolation` listener
 * installed before any script of the page runs, and reported through a binding.
 */
export async function openPage(browser: Browser, options: BrowserContextOptions = {}): Promise<{ page: Page; problems: PageProblems }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, ...options });
  const problems: PageProblems = { consoleErrors: [], consoleWarnings: [], pageErrors: [], cspViolations: [], dialogs: [] };
  await context.exposeBinding('__reportCsp', (_source, text: string) => {
    problems.cspViolations.push(text);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const report = (window as unknown as { __reportCsp?: (t: string) => void }).__reportCsp;
      report?.(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  // Every tab of the context is watched: the dashboard opens the outbox and the console in new ones.
  context.on('page', (tab) => {
    tab.on('console', (msg) => {
      if (msg.type() === 'error') problems.consoleErrors.push(`${msg.text()} (${msg.location().url})`);
      if (msg.type() === 'warning') problems.consoleWarnings.push(`${msg.text()} (${msg.location().url})`);
    });
    tab.on('pageerror', (err) => problems.pageErrors.push(String(err)));
    tab.on('dialog', (dialog) => {
      problems.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      void dialog.dismiss();
    });
  });
  const page = await context.newPage();
  return { page, problems };
}

/** Saves a full-page screenshot as test-artifacts/e2e/<name>.png. */
export async function snap(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: resolve(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * The problems that remain once the expected ones are set aside: Chromium logs every 4xx
 * answer as a console error, so a test that provokes, say, a 402 names that status here.
 */
export function unexpected(problems: PageProblems, expectedStatuses: number[] = []): PageProblems {
  const expected = (line: string) =>
    expectedStatuses.some((s) => line.startsWith(`Failed to load resource: the server responded with a status of ${s} `));
  return { ...problems, consoleErrors: problems.consoleErrors.filter((line) => !expected(line)) };
}

export const NO_PROBLEMS: PageProblems = { consoleErrors: [], consoleWarnings: [], pageErrors: [], cspViolations: [], dialogs: [] };

/** Opens the dashboard and signs in with `key` through the key form. */
export async function signIn(page: Page, baseUrl: string, key: string): Promise<void> {
  await page.goto(baseUrl);
  await page.locator('#api-key').fill(key);
  await page.locator('#use-key').click();
  await page.locator('#key-result.ok').waitFor();
}

/**
 * The stack and the browser a browser suite runs against, started before its tests (with the
 * `stack` options, such as its logger, then `setup`, when given) and closed after them:
 * `env.stack` and `env.browser` inside the tests.
 */
export function useBrowserStack(opts: { setup?: (stack: BrowserStack) => Promise<unknown>; stack?: Parameters<typeof startTestStack>[1] } = {}): {
  stack: BrowserStack;
  browser: Browser;
} {
  const env = {} as { stack: BrowserStack; browser: Browser };
  beforeAll(async () => {
    env.stack = await startTestStack({}, opts.stack);
    env.browser = await launchBrowser();
    await opts.setup?.(env.stack);
  });
  afterAll(async () => {
    await env.browser?.close();
    await env.stack?.close();
  });
  return env;
}
export type BrowserStack = Awaited<ReturnType<typeof startTestStack>>;
