import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseDotenv } from 'dotenv';
import { TRIGGER_EVENTS, type TriggerResult, type WebhookDelivery } from '../sandbox/contracts';
import { baseUrlProblem, CUSTOMER_ID, io, optionAt, serverOrigin, type CommandContext } from './options';

/**
 * `npm run trigger -- <event> --customer cus_…`: asks the running sandbox to emit a real event
 * (like `stripe trigger`): the sandbox changes its state, and the webhook is signed and
 * delivered to the app the normal way. Then waits for the deliveries and prints their outcome.
 */
export const TRIGGER_USAGE = `Usage: npm run trigger -- <event> --customer <cus_…> [--amount <n>] [--base-url <url>] [--json]

Makes the MailKit sandbox emit a real, signed Dodo webhook by changing its state:

  credit.balance_low    debits the customer to one credit under the plan's low-balance threshold
                        (topping up to the threshold first if already low, to re-arm the alert);
                        MailKit then emails the customer. Needs an active subscription.
  credit.added          grants --amount credits (default 100) through the API.
  credit.expired        grants --amount credits (default 100) that expire at once.
  credit.rolled_over    grants --amount credits (default 100) with a 100 % rollover rule that
                        expire at once, rolling into a new grant (which is forfeited at its own
                        expiry: max_rollover_count 1).
  subscription.renewed  renews the customer's subscription now (payment + new credits).

Options:
  --customer <id>   The Dodo customer (cus_…); see the console at /sandbox.
  --amount <n>      Whole credits for credit.added / credit.expired / credit.rolled_over.
  --base-url <url>  The MailKit server (default BASE_URL from .env, else http://localhost:$PORT).
  --json            Print the API's JSON answer instead of the summary.
  -h, --help        This help.

Works only against a server in sandbox mode (live Dodo has no such thing).`;

export interface TriggerOptions extends CommandContext {
  /** How long to wait for the deliveries to settle before printing them as pending. */
  waitMs?: number;
}

/** Runs the trigger command; resolves to the exit code (0 ok, 1 failed, 2 usage). */
export async function runTrigger(o: TriggerOptions): Promise<number> {
  const { out, err, fetch: f } = io(o);
  const args = parseArgs(o.argv);
  if (args === 'help') {
    out(TRIGGER_USAGE);
    return 0;
  }
  if (typeof args === 'string') {
    err(`trigger: ${args}\n\n${TRIGGER_USAGE}`);
    return 2;
  }

  const fileEnv = existsSync(join(o.cwd, '.env')) ? parseDotenv(readFileSync(join(o.cwd, '.env'))) : {};
  const pick = (k: string) => o.env[k]?.trim() || fileEnv[k]?.trim() || undefined;
  const base = serverOrigin(args.baseUrl, () => pick('BASE_URL') ?? `http://localhost:${pick('PORT') ?? '3000'}`);

  let res: Response;
  try {
    res = await f(`${base}/sandbox/api/trigger`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ event: args.event, customer_id: args.customer, ...(args.amount !== undefined ? { amount: args.amount } : {}) }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (e) {
    err(`trigger: MailKit is not running at ${base} (${(e as Error).message}). Start it with \`npm start\`, or pass --base-url.`);
    return 1;
  }
  const body = (await res.json().catch(() => null)) as (TriggerResult & { error?: { code: string; message: string } }) | null;
  if (res.status === 404 && body?.error?.code === 'not_found' && !/customer/i.test(body.error.message)) {
    err(`trigger: ${base} has no sandbox (is it running in live mode?). Triggers exist only in sandbox mode.`);
    return 1;
  }
  if (res.status !== 202 || !body || body.error) {
    err(`trigger: ${res.status} ${body?.error ? `${body.error.code}: ${body.error.message}` : 'unexpected answer'}`);
    return 1;
  }
  if (args.json) {
    out(JSON.stringify(body, null, 2));
    return 0;
  }

  out(`${body.event} for ${body.customer_id}: ${body.events.length} ${body.events.length === 1 ? 'event' : 'events'}`);
  const settled = await waitForDeliveries(f, base, body.webhook_ids, o.waitMs ?? 10_000);
  for (const e of body.events) {
    const d = settled.get(e.id);
    const last = d?.attempts.at(-1);
    const outcome = !d
      ? 'unknown'
      : d.state === 'pending'
        ? 'pending'
        : `${d.state}${last?.status ? ` (HTTP ${last.status})` : last?.error ? ` (${last.error})` : ''}`;
    out(`  ${e.id}  ${e.type.padEnd(26)} ${outcome}`);
  }
  out(`See them in ${base}/sandbox`);
  return 0;
}

/** Polls the delivery log until none of `ids` is pending (or the time is up). */
async function waitForDeliveries(f: typeof fetch, base: string, ids: string[], waitMs: number): Promise<Map<string, WebhookDelivery>> {
  const deadline = Date.now() + waitMs;
  let found = new Map<string, WebhookDelivery>();
  for (;;) {
    try {
      const res = await f(`${base}/sandbox/api/webhooks`, { headers: { accept: 'application/json' } });
      const list = ((await res.json()) as { data: WebhookDelivery[] }).data;
      found = new Map(list.filter((d) => ids.includes(d.id)).map((d) => [d.id, d]));
    } catch {
      return found;
    }
    const pending = ids.some((id) => found.get(id)?.state === 'pending');
    if (!pending || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 200));
  }
}

type Args = { event: string; customer: string; amount?: number; baseUrl: string | null; json: boolean };

function parseArgs(argv: string[]): Args | 'help' | string {
  let event: string | undefined;
  let customer: string | undefined;
  let amount: number | undefined;
  let baseUrl: string | null = null;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const customerOpt = optionAt(argv, i, '--customer');
    const baseUrlOpt = optionAt(argv, i, '--base-url');
    const amountOpt = optionAt(argv, i, '--amount');
    if (a === '-h' || a === '--help') return 'help';
    else if (a === '--json') json = true;
    else if (customerOpt) [customer, i] = [customerOpt.value, customerOpt.end];
    else if (baseUrlOpt) {
      const problem = baseUrlProblem(baseUrlOpt.value);
      if (problem) return problem;
      [baseUrl, i] = [baseUrlOpt.value!, baseUrlOpt.end];
    } else if (amountOpt) [amount, i] = [Number(amountOpt.value), amountOpt.end];
    else if (a.startsWith('-')) return `unknown option "${a}"`;
    else if (!event) event = a;
    else return `unexpected argument "${a}"`;
  }
  if (!event) return 'which event? One of: ' + TRIGGER_EVENTS.join(', ');
  if (!(TRIGGER_EVENTS as readonly string[]).includes(event)) return `unknown event "${event}"; one of: ${TRIGGER_EVENTS.join(', ')}`;
  if (!customer || !CUSTOMER_ID.test(customer)) return '--customer <cus_…> is required';
  if (amount !== undefined && (!Number.isSafeInteger(amount) || amount <= 0)) return '--amount must be a positive whole number';
  return { event, customer, amount, baseUrl, json };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runTrigger({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd() }).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(`trigger: ${(e as Error).message}`);
      process.exitCode = 1;
    },
  );
}
