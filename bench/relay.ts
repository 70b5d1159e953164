/**
 * The benchmark's bare relay: an HTTP server with none of MailKit in it. POST /send reads the
 * JSON body, makes the same two upstream calls MailKit makes (a Dodo debit, a Resend send) with
 * the same SDK clients MailKit builds (Dodo over src/lib/http-fetch.ts, Resend on its own
 * fetch), and answers { id }. No auth, validation, records, rate limits, logging or Express.
 *
 * Its latency less the direct calls' is what any HTTP service in between costs on this machine
 * (one more hop, one more process); MailKit's less the relay's is what MailKit itself adds.
 *
 *   tsx bench/relay.ts   (env: RELAY_UPSTREAM, RELAY_CUSTOMER, RELAY_ENTITLEMENT)
 *
 * Prints its port on stdout when listening. Started by bench/send.ts; not for anything else.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import DodoPayments from 'dodopayments';
import { Resend } from 'resend';
import { createHttpFetch } from '../src/lib/http-fetch';

const upstream = process.env.RELAY_UPSTREAM!;
const customerId = process.env.RELAY_CUSTOMER!;
const entitlementId = process.env.RELAY_ENTITLEMENT!;
const dodo = new DodoPayments({ bearerToken: 'bench', baseURL: `${upstream}/sandbox/dodo`, fetch: createHttpFetch() });
const resend = new Resend('re_bench', { baseUrl: `${upstream}/sandbox/resend` });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', async () => {
    try {
      const email = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { to: string; subject: string; html: string };
      const key = randomUUID();
      await dodo.creditEntitlements.balances.createLedgerEntry(customerId, {
        credit_entitlement_id: entitlementId,
        amount: '1',
        entry_type: 'debit',
        idempotency_key: key,
      });
      const { data, error } = await resend.emails.send({ from: 'MailKit <onboarding@resend.dev>', ...email }, { idempotencyKey: key });
      if (error) throw new Error(error.message);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: data!.id }));
    } catch (err) {
      res.writeHead(500, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
    }
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => process.exit(0));
