import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookDelivery } from '../../src/sandbox/contracts';
import type { Stack } from '../../src/stack';
import { forEachEngine } from '../support/database';
import { dodoBalance, fleetKey, settleFleet, startInstance, type Upstream } from '../support/fleet';
import { bearer, settle, startTestStack, storedSecrets, subscribe } from '../support/stack';

/**
 * GET /credits as a client and Dodo see it: the balance MailKit keeps. MailKit runs here as a
 * live-mode instance against a sandbox upstream (test/support/fleet.ts): Dodo's webhooks reach
 * it only when a test forwards them, signed as Dodo signs them, so a test chooses when the
 * instance hears of a change. Dodo's side is counted at the upstream: every call MailKit makes
 * to Dodo's credit ledger is one request there.
 */
const DODO_CREDIT_CALLS = /^(GET|POST) \/credit-entitlements\//;

let upstream: Upstream;
let signer: Webhook;
beforeAll(async () => {
  // Every test subscribes customers through the upstream's public checkout route: lift its per-address limit.
  upstream = await startTestStack({ RATE_LIMIT_PUBLIC_PER_IP: '100000' }, { reconcile: { intervalMs: 0 } });
  signer = new Webhook((await storedSecrets(upstream)).sandboxWebhookSecret!);
});
afterAll(async () => {
  await upstream?.close();
});

const dodoCalls = () => upstream.sandbox.dodo.faults.requestCount(DODO_CREDIT_CALLS);

/** Delivers one of Dodo's webhooks (as the upstream made and signed it) to `instance`, now. */
async function deliver(instance: Stack, delivery: WebhookDelivery) {
  const body = JSON.stringify(delivery.payload);
  const at = new Date();
  const res = await request(instance.url)
    .post('/webhooks/dodo')
    .set('Content-Type', 'application/json')
    .set('webhook-id', delivery.id)
    .set('webhook-timestamp', String(Math.floor(at.getTime() / 1000)))
    .set('webhook-signature', signer.sign(delivery.id, at, body))
    .send(body);
  expect(res.status).toBe(200);
}

/** The upstream's webhooks of `type` for a customer, oldest first. */
function webhooksOf(customerId: string, type: string): WebhookDelivery[] {
  return upstream.sandbox.dodo.webhooks
    .list()
    .filter((d) => d.type === type && (d.payload as { data: { customer_id?: string } }).data.customer_id === customerId)
    .reverse();
}

/** The sandbox console's "Adjust balance" (Dodo's dashboard), then its webhooks delivered to the upstream only. */
async function adjust(customerId: string, amount: number) {
  await upstream.sandbox.dodo.adjustBalance(customerId, upstream.catalog.creditEntitlementId, amount, 'test');
  await settle(upstream);
}

forEachEngine('GET /credits', (under) => {
  const instances: Stack[] = [];
  afterEach(async () => {
    await Promise.all(instances.splice(0).map((s) => s.close()));
  });

  async function setup() {
    const database = await under.open();
    const instance = await startInstance(upstream, database, { credits: { intervalMs: 0 } });
    instances.push(instance);
    const { customerId } = await subscribe(upstream, `c${Math.random().toString(36).slice(2)}@example.com`);
    const key = await fleetKey(database, customerId);
    const get = (path = '/credits') => request(instance.url).get(path).set(bearer(key));
    const send = () => request(instance.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' });
    return { database, instance, customerId, key, get, send };
  }

  it('reads Dodo’s grants once, then answers every poll and every send from the balance MailKit keeps', async () => {
    const { get, send, customerId } = await setup();
    const before = dodoCalls();
    expect((await get().expect(200)).body).toEqual({ customer_id: customerId, balance: '5000', pending: '0' });
    expect(dodoCalls() - before).toBe(1); // the grants, once
    for (let i = 0; i < 5; i++) await send().expect(200);
    for (let i = 0; i < 10; i++) expect((await get().expect(200)).body.balance).toBe('4995');
    expect((await get(`/credits/${customerId}`).expect(200)).body).toEqual({ balance: '4995' });
    expect(dodoCalls() - before).toBe(1);
  });

  it('is what Dodo holds once settled: one debit for what was spent', async () => {
    const { get, send, customerId, instance } = await setup();
    for (let i = 0; i < 3; i++) await send().expect(200);
    expect(await dodoBalance(upstream, customerId)).toBe(5000);
    const before = dodoCalls();
    await instance.credits.settleNow();
    expect(dodoCalls() - before).toBe(1);
    expect(await dodoBalance(upstream, customerId)).toBe(4997);
    expect((await get().expect(200)).body.balance).toBe('4997');
  });

  it('a change made in Dodo’s dashboard lowers it through its webhook, even with spends unsettled', async () => {
    const { get, send, customerId, instance } = await setup();
    await send().expect(200);
    await get().expect(200);
    await adjust(customerId, -4000);
    const [webhook] = webhooksOf(customerId, 'credit.manual_adjustment');
    await deliver(instance, webhook!);
    expect((await get().expect(200)).body.balance).toBe('999');
    await instance.credits.settleNow();
    expect(await dodoBalance(upstream, customerId)).toBe(999);
  });

  it('a key for a customer Dodo holds nothing for: a balance of 0, and a send is 402', async () => {
    const database = await under.open();
    const instance = await startInstance(upstream, database, { credits: { intervalMs: 0 } });
    instances.push(instance);
    const key = await fleetKey(database, 'cus_nobody');
    expect((await request(instance.url).get('/credits').set(bearer(key)).expect(200)).body.balance).toBe('0');
    expect((await request(instance.url).get('/credits/usage').set(bearer(key)).expect(200)).body.balance).toBe('0');
    const sent = await request(instance.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' });
    expect(sent.status).toBe(402);
    const topup = await request(instance.url).post('/checkout/topup').set(bearer(key)).send({});
    expect([topup.status, topup.body.error?.code]).toEqual([404, 'unknown_customer']);
  });

  it('ignores a webhook for another credit entitlement', async () => {
    const { get, customerId, instance } = await setup();
    await get().expect(200);
    const other = {
      id: 'msg_other',
      type: 'credit.added',
      url: '',
      createdAt: new Date().toISOString(),
      attempts: [],
      state: 'delivered' as const,
      payload: {
        business_id: 'bus_x',
        type: 'credit.added',
        timestamp: new Date().toISOString(),
        data: {
          id: 'cle_x',
          customer_id: customerId,
          credit_entitlement_id: 'cde_other',
          amount: '100',
          balance_after: '100',
          balance_before: '0',
          is_credit: true,
          transaction_type: 'credit_added',
          created_at: new Date().toISOString(),
          metadata: {},
          brand_id: 'b',
          business_id: 'bus_x',
          overage_after: '0',
          overage_before: '0',
        },
      },
    };
    const before = dodoCalls();
    await deliver(instance, other);
    expect((await get().expect(200)).body.balance).toBe('5000');
    expect(dodoCalls()).toBe(before);
  });

  it(
    'the bound: a change in Dodo MailKit never hears of is caught by the next settlement; ' + 'what was spent past it is unpaid, and measured',
    async () => {
      // Settled every second here (5 s by default): the bound is about one settlement interval of sends.
      const database = await under.open();
      const instance = await startInstance(upstream, database, { credits: { intervalMs: 100, settleEveryMs: 1_000 } });
      instances.push(instance);
      const { customerId } = await subscribe(upstream, `b${Math.random().toString(36).slice(2)}@example.com`);
      await adjust(customerId, -4000); // 1,000 left
      const key = await fleetKey(database, customerId);
      const send = () =>
        request(instance.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'steady', html: '<p>s</p>' });
      let deductedAt = 0;
      let firstRefusal = 0;
      let sent = 0;
      let sentAfter = 0;
      let deducted = 0;
      const started = Date.now();
      while (!firstRefusal && Date.now() - started < 20_000) {
        // Ten at a time: faster than the settlements, so the change is overtaken before it is caught.
        for (const res of await Promise.all(Array.from({ length: 10 }, send))) {
          if (res.status === 200) {
            sent++;
            if (deductedAt) sentAfter++;
          } else if (res.status === 402) firstRefusal ||= Date.now();
          else throw new Error(`unexpected ${res.status}`);
        }
        if (!deductedAt && sent >= 20) {
          // Dodo's dashboard takes all but 5 of what it holds; this instance never gets the webhook.
          deducted = (await dodoBalance(upstream, customerId)) - 5;
          await upstream.sandbox.dodo.adjustBalance(customerId, upstream.catalog.creditEntitlementId, -deducted, 'unheard of');
          deductedAt = Date.now();
        }
      }
      expect(firstRefusal).toBeGreaterThan(0);
      await settleFleet(instance, database);
      const rows = await database.db.selectFrom('settlements').selectAll().where('customerId', '=', customerId).execute();
      const paid = rows.reduce((n, r) => n + (r.paid ?? 0), 0);
      const unpaid = rows.reduce((n, r) => n + (r.credits - (r.paid ?? 0)), 0);
      console.log(
        `the bound (${under.engine}): refused ${firstRefusal - deductedAt} ms after the change; ` +
          `${sentAfter} sends paid past it, ${unpaid} credits unpaid`,
      );
      // Every email is accounted for: paid by Dodo (all its 1,000 credits but what the change took),
      // or unpaid; never more.
      expect(paid).toBe(1000 - deducted);
      expect(unpaid).toBe(sent - paid);
      // Dodo holds nothing it was not paid for, and the balance MailKit keeps is never below zero.
      expect(await dodoBalance(upstream, customerId)).toBe(0);
      expect((await request(instance.url).get('/credits').set(bearer(key)).expect(200)).body.balance).toBe('0');
    },
  );

  describe('on two instances sharing one database', () => {
    it('a send on one is seen by the other at once, and one settlement debits both', async () => {
      const { get, database, key, customerId, instance } = await setup();
      const second = await startInstance(upstream, await under.openAnother(database), { credits: { intervalMs: 0 } });
      instances.push(second);
      await get().expect(200);
      await request(second.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' }).expect(200);
      await request(instance.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' }).expect(200);
      expect((await request(second.url).get('/credits').set(bearer(key)).expect(200)).body.balance).toBe('4998');
      await Promise.all([instance.credits.settleNow(), second.credits.settleNow()]);
      expect(await dodoBalance(upstream, customerId)).toBe(4998);
    });
  });
});
