import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTrigger } from '../../src/cli/trigger';
import { TRIGGER_EVENTS } from '../../src/sandbox/contracts';
import { assertWebhookMatchesSpec } from '../support/openapi';
import { outboxTo, settle, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const cwd = mkdtempSync(join(tmpdir(), 'mailkit-trigger-'));

async function trigger(argv: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runTrigger({ argv, env, cwd, out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('npm run trigger', () => {
  let stack: TestStack;
  let customerId: string;
  const email = 'trig@example.com';

  beforeAll(async () => {
    stack = await startTestStack();
    ({ customerId } = await subscribe(stack, email, 'Trig'));
  });
  afterAll(async () => {
    await stack?.close();
  });

  it.each(TRIGGER_EVENTS.map((e) => [e]))('%s: the app receives a real signed event of that type, answered 2xx', async (event) => {
    const r = await trigger([event, '--customer', customerId, '--base-url', stack.url]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const ids = [...r.out.matchAll(/(msg_\w+)\s+(\S+)\s+delivered \(HTTP 200\)/g)].map((m) => ({ id: m[1]!, type: m[2]! }));
    expect(ids.map((i) => i.type)).toContain(event);
    await settle(stack);
    const delivery = stack.sandbox.dodo.webhooks.list().find((d) => d.id === ids.find((i) => i.type === event)!.id)!;
    expect(delivery).toMatchObject({ type: event, state: 'delivered' });
    expect(delivery.attempts.at(-1)!.status).toBe(200);
    assertWebhookMatchesSpec(event, delivery.payload);
  });

  it('credit.balance_low: the customer got the low-balance email', () => {
    expect(outboxTo(stack, email).filter((m) => m.subject === 'Your Email Credits balance is running low')).toHaveLength(1);
  });

  it('--json prints the API answer', async () => {
    const r = await trigger(['credit.added', `--customer=${customerId}`, '--amount', '5', '--json'], { BASE_URL: stack.url });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ event: 'credit.added', customer_id: customerId, events: [{ type: 'credit.added' }] });
    await settle(stack);
  });

  it('reports an unknown customer with exit code 1', async () => {
    const r = await trigger(['credit.added', '--customer', 'cus_nope', '--base-url', stack.url]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/404 not_found: No customer cus_nope/);
  });

  it('refuses an unknown event or a missing customer with usage and exit code 2', async () => {
    expect((await trigger(['payment.succeeded', '--customer', customerId])).code).toBe(2);
    const r = await trigger(['credit.added']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--customer <cus_…> is required');
  });

  it('says clearly when the server is not running', async () => {
    const r = await trigger(['credit.added', '--customer', customerId, '--base-url', 'http://127.0.0.1:9']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/MailKit is not running at http:\/\/127\.0\.0\.1:9/);
  });

  it('--help lists the five events (spawned, as npm runs it)', async () => {
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'src/cli/trigger.ts', '--help'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    expect(stdout).toMatch(/^Usage: npm run trigger/);
    for (const event of TRIGGER_EVENTS) expect(stdout).toContain(event);
  });
});
