/**
 * `npm run bench`: MailKit on the sandbox with an injected upstream latency, driven by
 * concurrent clients over loopback HTTP. Prints sends per second, p50/p99 latency and
 * upstream calls per email for /send and /send/batch, beside a baseline of the same two
 * upstream calls made directly through the SDKs, so MailKit's own overhead is visible.
 *
 * Options: --latency MS (default 20) --clients N (16) --sends N (1600) --batches N (48)
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { startStack } from '../src/stack';

const { values } = parseArgs({
  options: {
    latency: { type: 'string', default: '20' },
    clients: { type: 'string', default: '16' },
    sends: { type: 'string', default: '1600' },
    batches: { type: 'string', default: '48' },
  },
});
const latency = Number(values.latency);
const clients = Number(values.clients);
const sends = Number(values.sends);
const batches = Number(values.batches);

const stack = await startStack(loadConfig({ PORT: '0', LOG_LEVEL: 'silent' }), { inMemory: true, log: createLogger('silent') });
const sandbox = stack.sandbox!;
const { creditEntitlementId } = stack.catalog;

// One customer per client, each with plenty of credits.
const keys: string[] = [];
for (let i = 0; i < clients; i++) {
  const session = await stack.dodo.checkoutSessions.create({
    product_cart: [{ product_id: stack.catalog.planProductId, quantity: 1 }],
    customer: { email: `bench${i}@example.com`, name: `Bench ${i}` },
    return_url: `${stack.url}/`,
  });
  await sandbox.dodo.payCheckout(session.session_id);
  const customer = (await stack.dodo.customers.list({ email: `bench${i}@example.com` })).items[0]!;
  await sandbox.dodo.adjustBalance(customer.customer_id, creditEntitlementId, 1_000_000, 'bench');
  keys.push(stack.apiKeys.mint(customer.customer_id));
}
await sandbox.dodo.webhooks.idle();

sandbox.dodo.faults.setLatency(latency);
sandbox.resend.faults.setLatency(latency);

const email = { to: 'delivered@resend.dev', subject: 'Bench', html: '<p>bench</p>' };
const upstreamCalls = () =>
  sandbox.dodo.faults.requestCount(/^POST .*ledger-entries$/) + sandbox.resend.faults.requestCount(/^POST \/emails(\/batch)?$/);

/** Runs `total` operations over `clients` concurrent loops; returns per-operation latencies in ms. */
async function drive(total: number, op: (client: number, i: number) => Promise<void>): Promise<{ ms: number[]; wall: number }> {
  const ms: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = next++; i < total; i = next++) {
        const t = performance.now();
        await op(client, i);
        ms.push(performance.now() - t);
      }
    }),
  );
  return { ms, wall: performance.now() - start };
}

async function post(path: string, client: number, body: unknown): Promise<void> {
  const r = await fetch(`${stack.url}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${keys[client]}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${path} answered ${r.status}: ${await r.text()}`);
  await r.arrayBuffer();
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const rows: string[][] = [];
function report(name: string, ops: number, emailsPerOp: number, r: { ms: number[]; wall: number }, calls: number | null) {
  rows.push([
    name,
    String(ops),
    ((ops * emailsPerOp) / (r.wall / 1000)).toFixed(0),
    pct(r.ms, 50).toFixed(1),
    pct(r.ms, 99).toFixed(1),
    calls === null ? '-' : (calls / (ops * emailsPerOp)).toFixed(2),
  ]);
}

// Baseline: the same two upstream calls, made directly through the SDKs (no MailKit in between).
const customers = await Promise.all(keys.map((k) => stack.apiKeys.verify(k)!));
const baseline = await drive(sends, async (client, i) => {
  await stack.dodo.creditEntitlements.balances.createLedgerEntry(customers[client]!, {
    credit_entitlement_id: creditEntitlementId,
    amount: '1',
    entry_type: 'debit',
    idempotency_key: `bench-baseline-${i}`,
  });
  const { error } = await stack.resend.emails.send({ from: 'MailKit <onboarding@resend.dev>', ...email }, { idempotencyKey: `bench-baseline-${i}` });
  if (error) throw new Error(error.message);
});
report('baseline: debit + Resend send via SDKs', sends, 1, baseline, null);

let before = upstreamCalls();
const single = await drive(sends, (client) => post('/send', client, email));
report('POST /send', sends, 1, single, upstreamCalls() - before);

before = upstreamCalls();
const batch = Array.from({ length: 100 }, (_, i) => ({ ...email, subject: `Bench ${i}` }));
const batched = await drive(batches, (client) => post('/send/batch', client, { emails: batch }));
report('POST /send/batch (100 emails)', batches, 100, batched, upstreamCalls() - before);

await sandbox.dodo.webhooks.idle();
await stack.close();

const header = ['scenario', 'requests', 'emails/s', 'p50 ms', 'p99 ms', 'upstream calls/email'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(`npm run bench -- --latency ${latency} --clients ${clients} --sends ${sends} --batches ${batches}`);
console.log(`node ${process.version}, injected upstream latency ${latency} ms per call, ${clients} concurrent clients, loopback HTTP\n`);
console.log(line(header));
for (const r of rows) console.log(line(r));
const overhead = pct(single.ms, 50) - pct(baseline.ms, 50);
console.log(`\n/send p50 overhead over the two upstream calls themselves: ${overhead.toFixed(1)} ms`);
