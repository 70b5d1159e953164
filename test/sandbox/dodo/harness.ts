import express from 'express';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import DodoPayments from 'dodopayments';
import type { CreditEntitlement } from 'dodopayments/resources/credit-entitlements/credit-entitlements';
import type { Product } from 'dodopayments/resources/products/products';
import { createDodoSandbox } from '../../../src/sandbox/dodo/index';
import type { DodoRateLimit, DodoSandbox } from '../../../src/sandbox/contracts';
import { assertResponseMatchesSpec, assertWebhookMatchesSpec } from '../../support/openapi';

/** One webhook exactly as the receiver got it: raw bytes and the signature headers. */
export interface ReceivedWebhook {
  raw: string;
  headers: { 'webhook-id': string; 'webhook-timestamp': string; 'webhook-signature': string };
  type: string;
  payload: any;
}

export interface Harness {
  sb: DodoSandbox;
  client: DodoPayments;
  baseUrl: string;
  apiUrl: string;
  secret: string;
  received: ReceivedWebhook[];
  /** Status the webhook receiver answers with (change it to simulate an outage). */
  receiver: { status: number };
  close(): Promise<void>;
}

/**
 * A tiny app that mounts the sandbox routers plus a webhook receiver on 127.0.0.1:0, and the real
 * `dodopayments` SDK pointed at it. The server listens first so the sandbox can be told its URLs.
 */
export async function startHarness(
  opts: {
    dataFile?: string | null;
    retryDelaysMs?: number[];
    secret?: string;
    webhookUrl?: string;
    rateLimit?: DodoRateLimit;
    wallClock?: () => number;
  } = {},
): Promise<Harness> {
  const secret = opts.secret ?? `whsec_${randomBytes(24).toString('base64')}`;
  const received: ReceivedWebhook[] = [];
  const receiver = { status: 200 };
  let sb: DodoSandbox | null = null;

  const app = express();
  app.post('/webhooks/dodo', express.raw({ type: '*/*' }), (req, res) => {
    if (receiver.status >= 200 && receiver.status < 300) {
      const raw = (req.body as Buffer).toString('utf8');
      const payload = JSON.parse(raw);
      received.push({
        raw,
        headers: {
          'webhook-id': String(req.headers['webhook-id']),
          'webhook-timestamp': String(req.headers['webhook-timestamp']),
          'webhook-signature': String(req.headers['webhook-signature']),
        },
        type: payload.type,
        payload,
      });
    }
    res.status(receiver.status).end();
  });
  app.use('/sandbox/assets', express.static(new URL('../../../src/sandbox/assets', import.meta.url).pathname));
  app.use('/sandbox/dodo', (req, res, next) => sb!.api(req, res, next));
  app.use('/sandbox/checkout', (req, res, next) => sb!.checkout(req, res, next));

  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;
  sb = createDodoSandbox({
    dataFile: opts.dataFile ?? null,
    webhookSecret: secret,
    webhookUrl: opts.webhookUrl ?? `${baseUrl}/webhooks/dodo`,
    publicUrl: baseUrl,
    apiPath: '/sandbox/dodo',
    checkoutPath: '/sandbox/checkout',
    webhookRetryDelaysMs: opts.retryDelaysMs ?? [20, 40, 80],
    rateLimit: opts.rateLimit,
    wallClock: opts.wallClock,
  });
  const apiUrl = `${baseUrl}/sandbox/dodo`;
  const client = new DodoPayments({ bearerToken: 'test', baseURL: apiUrl, webhookKey: secret, maxRetries: 0 });
  return {
    sb,
    client,
    baseUrl,
    apiUrl,
    secret,
    received,
    receiver,
    async close() {
      await sb!.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The tutorial's catalogue: Email Credits, the $19 plan (5,000/cycle, 20% threshold) and the $9 top-up. */
export async function provision(client: DodoPayments): Promise<{ entitlement: CreditEntitlement; plan: Product; topUp: Product }> {
  const entitlement = await client.creditEntitlements.create({
    name: 'Email Credits',
    unit: 'email',
    precision: 0,
    expires_after_days: 30,
    rollover_enabled: false,
    overage_enabled: false,
  });
  assertResponseMatchesSpec('dodo', 'post', '/credit-entitlements', 201, entitlement);
  const plan = await client.products.create({
    name: 'MailKit Plan',
    description: '5,000 transactional emails per month.',
    tax_category: 'saas',
    price: {
      type: 'recurring_price',
      price: 1900,
      currency: 'USD',
      discount: 0,
      purchasing_power_parity: false,
      payment_frequency_count: 1,
      payment_frequency_interval: 'Month',
      subscription_period_count: 1,
      subscription_period_interval: 'Year',
    },
    credit_entitlements: [{ credit_entitlement_id: entitlement.id, credits_amount: '5000', low_balance_threshold_percent: 20 }],
  });
  assertResponseMatchesSpec('dodo', 'post', '/products', 200, plan);
  const topUp = await client.products.create({
    name: 'Email Top-Up Pack',
    description: 'Add 5,000 emails to your MailKit balance instantly.',
    tax_category: 'saas',
    price: { type: 'one_time_price', price: 900, currency: 'USD', discount: 0, purchasing_power_parity: false },
    credit_entitlements: [{ credit_entitlement_id: entitlement.id, credits_amount: '5000' }],
  });
  assertResponseMatchesSpec('dodo', 'post', '/products', 200, topUp);
  return { entitlement, plan, topUp };
}

/** Creates a session with the SDK, then presses "Pay with test card" (or Decline) on the hosted page. */
export async function buyWithCard(
  h: Harness,
  productId: string,
  customer: { email: string; name?: string } | { customer_id: string },
  action: 'pay' | 'decline' = 'pay',
): Promise<{ sessionId: string; location: URL }> {
  const session = await h.client.checkoutSessions.create({
    product_cart: [{ product_id: productId, quantity: 1 }],
    customer,
    return_url: 'http://mailkit.test/done?from=checkout',
  });
  assertResponseMatchesSpec('dodo', 'post', '/checkouts', 200, session);
  const res = await fetch(`${session.checkout_url}/${action}`, { method: 'POST', redirect: 'manual' });
  if (res.status !== 303) throw new Error(`expected 303 from ${action}, got ${res.status}`);
  return { sessionId: session.session_id, location: new URL(res.headers.get('location')!) };
}

/** Waits for every delivery, then checks each received payload against the spec's webhook schema. */
export async function settledWebhooks(h: Harness): Promise<ReceivedWebhook[]> {
  await h.sb.webhooks.idle();
  for (const w of h.received) assertWebhookMatchesSpec(w.type, w.payload);
  return h.received;
}

/** A raw API call (for what the SDK will not send: no auth, bad JSON). */
export async function rawApi(h: Harness, method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${h.apiUrl}${path}`, { method, body: init.body, headers: init.headers });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
