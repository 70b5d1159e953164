/**
 * The benchmark's stand-in for Dodo and Resend: the sandbox alone, in its own process (as the
 * real vendors are on their own machines), with a fixed latency on every API call. Started by
 * bench/send.ts; not for anything else.
 *
 *   tsx bench/upstream.ts --latency MS --webhook-url URL
 *
 * Prints one JSON line on stdout when listening: { port, webhookSecret }.
 * GET /stats answers the API calls counted so far and the webhooks still pending.
 */
import express from 'express';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createSandbox } from '../src/sandbox';
import { newWebhookSecret } from '../src/lib/webhook-secret';

const { values } = parseArgs({ options: { latency: { type: 'string', default: '20' }, 'webhook-url': { type: 'string' } } });
const webhookSecret = newWebhookSecret();
const app = express();
const server = createServer(app);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as AddressInfo).port;

const sandbox = createSandbox({
  dataDir: null,
  webhookSecret,
  webhookUrl: values['webhook-url']!,
  publicUrl: `http://127.0.0.1:${port}`,
});
sandbox.dodo.faults.setLatency(Number(values.latency));
sandbox.resend.faults.setLatency(Number(values.latency));

app.get('/stats', (_req, res) => {
  res.json({
    debits: sandbox.dodo.faults.requestCount(/^POST .*ledger-entries$/),
    sends: sandbox.resend.faults.requestCount(/^POST \/emails(\/batch)?$/),
    pendingWebhooks: sandbox.dodo.webhooks.list().filter((d) => d.state === 'pending').length,
  });
});
app.use('/sandbox', sandbox.router);
server.keepAliveTimeout = 65_000;

process.stdout.write(`${JSON.stringify({ port, webhookSecret })}\n`);
process.on('SIGTERM', () => {
  void sandbox.close().then(() => process.exit(0));
});
