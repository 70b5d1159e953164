import request from 'supertest';
import { expect } from 'vitest';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { openDatabase, type Database } from '../../src/db/index';
import { acceptRoomFor, startStack, type Stack, type StackOptions } from '../../src/stack';
import { createDispatcher } from '../../src/sending/dispatcher';
import { createSender, newOwner, type Sender } from '../../src/sending/sender';
import { dropSchemas, openTestDatabase, postgresUrl } from './database';

/**
 * A fresh, empty database on `engine`: in-memory SQLite, or a new schema of its own on
 * TEST_DATABASE_URL, dropped when the database is closed (the stack closes it).
 */
export async function freshDatabase(engine: 'sqlite' | 'postgres'): Promise<Database> {
  if (engine === 'sqlite') return openDatabase({ file: ':memory:' });
  const schema = `stack_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const database = await openTestDatabase({ url: postgresUrl!, schema, poolSize: 4 });
  return {
    ...database,
    close: async () => {
      await database.close();
      await dropSchemas([schema]);
    },
  };
}

/** A fresh in-memory MailKit on the sandbox, on an ephemeral loopback port. */
export async function startTestStack(
  env: Record<string, string> = {},
  opts: StackOptions & { engine?: 'sqlite' | 'postgres' } = {},
): Promise<Stack & { sandbox: NonNullable<Stack['sandbox']> }> {
  const { engine, ...stackOpts } = opts;
  const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', MAILKIT_DATA_DIR: '/nonexistent-mailkit-test-dir', ...env });
  const stack = await startStack(config, {
    inMemory: true,
    log: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
    webhookRetryDelaysMs: [20, 50, 100],
    mailer: { timeoutMs: 2_000, maxBackoffMs: 200 },
    ...(engine ? { database: await freshDatabase(engine) } : {}),
    ...stackOpts,
  });
  if (!stack.sandbox) throw new Error('test stack is not in sandbox mode');
  return stack as Stack & { sandbox: NonNullable<Stack['sandbox']> };
}

/** Waits until every webhook the sandbox queued has been delivered (and what they triggered). */
export async function settle(stack: Stack): Promise<void> {
  await stack.sandbox!.dodo.webhooks.idle();
}

/**
 * The tutorial's click-through, over HTTP: get a checkout link, press "Pay with test card"
 * on the hosted page, wait for the webhooks, read the API key from the email in the outbox.
 */
export async function subscribe(stack: Stack, email: string, name = 'Test Customer'): Promise<{ key: string; customerId: string }> {
  const res = await request(stack.url).post('/checkout/subscribe').send({ email, name }).expect(200);
  const checkoutUrl: string = res.body.checkout_url;
  await payCheckout(stack, checkoutUrl);
  const mail = stack.sandbox!.resend.messages().find((m) => m.to.includes(email) && m.subject === 'Your MailKit API key');
  expect(mail, `no API key email for ${email} in the outbox`).toBeDefined();
  const key = /mk_test_[A-Za-z0-9_.-]+/.exec(mail!.text ?? mail!.html ?? '')?.[0];
  expect(key).toBeTruthy();
  const account = await request(stack.url).get('/account').set('Authorization', `Bearer ${key}`).expect(200);
  return { key: key!, customerId: account.body.customer_id };
}

/** Presses "Pay with test card" on the hosted checkout page (its real form), then waits for webhooks. */
export async function payCheckout(stack: Stack, checkoutUrl: string): Promise<string> {
  const page = await fetch(checkoutUrl);
  expect(page.status).toBe(200);
  const html = await page.text();
  const action = /<form[^>]*action="([^"]*\/pay)"/.exec(html)?.[1];
  expect(action, 'checkout page has no pay form').toBeTruthy();
  const paid = await fetch(new URL(action!.replace(/&amp;/g, '&'), checkoutUrl), { method: 'POST', redirect: 'manual' });
  expect(paid.status).toBe(303);
  await settle(stack);
  return paid.headers.get('location') ?? '';
}

/** Authorization header for a key. */
export const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

/** Current balance as Dodo reports it (through MailKit's own route). */
export async function balanceOf(stack: Stack, key: string): Promise<number> {
  const res = await request(stack.url).get('/credits').set(bearer(key)).expect(200);
  return Number(res.body.balance);
}

/** A new subscribed customer holding exactly `credits` credits (the plan's 5,000 adjusted in the sandbox). */
export async function customerWith(stack: Stack, credits: number): Promise<{ key: string; customerId: string }> {
  const c = await subscribe(stack, `c${Math.random().toString(36).slice(2)}@example.com`);
  if (credits !== 5000) await stack.sandbox!.dodo.adjustBalance(c.customerId, stack.catalog.creditEntitlementId, credits - 5000, 'test setup');
  await settle(stack);
  expect(await balanceOf(stack, c.key)).toBe(credits);
  return c;
}

/** Emails in the outbox sent to `to`. */
export function outboxTo(stack: Stack, to: string) {
  return stack.sandbox!.resend.messages().filter((m) => m.to.includes(to));
}

/** A complete live-mode environment whose upstreams are unreachable (port 9): for tests of what live mode does without them. */
export const LIVE_ENV = {
  PORT: '0',
  LOG_LEVEL: 'silent',
  DODO_PAYMENTS_API_KEY: 'dodo_test_key',
  DODO_PAYMENTS_BASE_URL: 'http://127.0.0.1:9/unreachable',
  DODO_WEBHOOK_KEY: `whsec_${Buffer.alloc(32, 1).toString('base64')}`,
  CREDIT_ENTITLEMENT_ID: 'cde_live',
  PLAN_PRODUCT_ID: 'pdt_plan',
  TOPUP_PRODUCT_ID: 'pdt_topup',
  RESEND_API_KEY: 're_live',
  RESEND_BASE_URL: 'http://127.0.0.1:9/unreachable',
  RESEND_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 2).toString('base64')}`,
  MAILKIT_KEY_SECRET: 'live-secret-'.repeat(4),
};

/** The secrets the stack generated for itself (sandbox mode), as stored in its database. */
export async function storedSecrets(
  stack: Stack,
): Promise<{ keySecret?: string; sandboxWebhookSecret?: string; sandboxResendWebhookSecret?: string }> {
  const rows = await stack.database.db.selectFrom('secrets').selectAll().execute();
  return Object.fromEntries(rows.map((r) => [r.name, r.value]));
}

/** The engines a suite runs on (see test/support/database.ts: forEachEngine also reports a skipped PostgreSQL half). */
export { engines as ENGINES } from './database';

/**
 * Waits for the next clock minute when the current one is past `latestSecond`: the shared rate
 * limits count in whole clock minutes, so a test counting against one must not straddle two.
 */
export async function earlyInClockMinute(latestSecond: number): Promise<void> {
  const second = new Date().getSeconds();
  if (second > latestSecond) await new Promise((r) => setTimeout(r, (61 - second) * 1000));
}

/** Polls `check` every 50 ms until it holds; throws after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Another sender on the stack's database, as another instance (or a clock of the test's) would
 * run it: its own owner, dispatcher and room, the stack's billing, credits and mailer unless
 * `opts` says otherwise.
 */
export function senderOn(stack: Stack, opts: Partial<Parameters<typeof createSender>[0]> = {}): Sender {
  const owner = opts.instanceId ?? newOwner();
  const mailer = opts.mailer ?? stack.mailer;
  return createSender({
    billing: stack.billing,
    credits: stack.credits,
    database: stack.database,
    dispatcher: createDispatcher({ database: stack.database, mailer, owner }),
    room: acceptRoomFor(0),
    ...opts,
    mailer,
    instanceId: owner,
  });
}
