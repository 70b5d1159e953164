import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookDelivery } from '../../src/sandbox/contracts';
import type { Stack } from '../../src/stack';
import { forEachEngine } from '../support/database';
import { fleetKey, startInstance, type Upstream } from '../support/fleet';
import { bearer, settle, startTestStack, storedSecrets, subscribe } from '../support/stack';

/**
 * The balance cache as a client and Dodo see it. MailKit runs here as a live-mode instance
 * against a sandbox upstream (test/support/fleet.ts): Dodo's webhooks reach it only when a test
 * forwards them, signed as Dodo signs them, so a test chooses when (and in which order) the
 * instance hears of a change. Dodo's side is counted at the upstream: each balance read is one
 * `GET …/balances/cus_…` there.
 */
const BALANCE_READS = /^GET \/credit-entitlements\/[^/]+\/balances\/[^/]+$/;
const LEDGER_READS = /^GET \/credit-entitlements\/[^/]+\/balances\/[^/]+\/ledger$/;
const BOUND_MS = 30_000;

/** A clock that moves 1 ms per reading and jumps when told: the bound is crossed only on purpose. */
function testClock() {
  let t = Date.parse('2026-01-01T00:00:00Z');
  return { now: () => (t += 1), advance: (ms: number) => void (t += ms) };
}

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

const dodoReads = () => upstream.sandbox.dodo.faults.requestCount(BALANCE_READS);
const ledgerReads = () => upstream.sandbox.dodo.faults.requestCount(LEDGER_READS);

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

  async function setup(opts: { clock?: ReturnType<typeof testClock> } = {}) {
    const clock = opts.clock ?? testClock();
    const database = await under.open();
    const instance = await startInstance(upstream, database, { balanceClock: clock.now });
    instances.push(instance);
    const { customerId } = await subscribe(upstream, `c${Math.random().toString(36).slice(2)}@example.com`);
    const key = await fleetKey(database, customerId);
    const get = (path = '/credits') => request(instance.url).get(path).set(bearer(key));
    return { clock, database, instance, customerId, key, get };
  }

  describe('when a dashboard polls within the bound', () => {
    it('answers every poll with one Dodo read between them, and says how old the balance is', async () => {
      const { get, customerId } = await setup();
      const before = dodoReads();
      const first = await get().expect(200);
      expect(first.body).toEqual({ customer_id: customerId, balance: '5000' });
      expect(first.headers['cache-status']).toMatch(/^MailKit; fwd=miss; stored; ttl=30$/);
      expect(first.headers.age).toBe('0');
      for (let i = 0; i < 20; i++) {
        const poll = await get(i % 2 ? '/credits' : `/credits/${customerId}`).expect(200);
        expect(poll.body.balance).toBe('5000');
        expect(poll.headers['cache-status']).toMatch(/^MailKit; hit; ttl=(29|30)$/);
        expect(poll.headers['cache-control']).toBe('no-store');
      }
      expect(dodoReads() - before).toBe(1);
    });

    it('answers concurrent requests for a stale balance with one Dodo read', async () => {
      const { get, clock } = await setup();
      await get().expect(200);
      clock.advance(BOUND_MS);
      const before = dodoReads();
      const answers = await Promise.all(Array.from({ length: 12 }, () => get()));
      for (const a of answers) expect([a.status, a.body.balance]).toEqual([200, '5000']);
      expect(dodoReads() - before).toBe(1);
    });
  });

  describe("under Dodo's tier-0 quota (240 a minute, bursts of 40)", () => {
    it('twenty dashboards polling every 5 s for a minute all get their balance, for 2 reads each', async () => {
      const { clock, instance, database } = await setup();
      const keys: string[] = [];
      for (let i = 0; i < 20; i++) {
        const { customerId } = await subscribe(upstream, `q${i}${Math.random().toString(36).slice(2)}@example.com`);
        keys.push(await fleetKey(database, customerId));
      }
      upstream.sandbox.dodo.setRateLimit({ perMinute: 240, burst: 40 });
      try {
        const before = dodoReads();
        for (let round = 0; round < 12; round++) {
          const polls = await Promise.all(keys.map((key) => request(instance.url).get('/credits').set(bearer(key))));
          for (const p of polls) expect([p.status, p.body.balance, p.headers['cache-status']]).toEqual([200, '5000', expect.not.stringMatching(/stale/)]);
          clock.advance(5_000);
        }
        expect(dodoReads() - before).toBe(40);
        expect(upstream.sandbox.dodo.rateLimit()?.limited).toBe(0);
      } finally {
        upstream.sandbox.dodo.setRateLimit({ perMinute: 0 });
      }
    });
  });

  describe('when MailKit itself debits or a credit webhook arrives', () => {
    it('serves the new balance without reading Dodo', async () => {
      const { get, key, instance, customerId } = await setup();
      await get().expect(200);
      const before = dodoReads();

      const sent = await request(instance.url)
        .post('/send')
        .set(bearer(key))
        .send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' });
      expect(sent.status, JSON.stringify(sent.body)).toBe(200);
      expect((await get().expect(200)).body.balance).toBe('4999');

      await adjust(customerId, -4000); // Dodo's dashboard: the instance hears of it only by webhook
      expect((await get().expect(200)).body.balance).toBe('4999');
      await deliver(instance, webhooksOf(customerId, 'credit.manual_adjustment').at(-1)!);
      const after = await get().expect(200);
      expect(after.body.balance).toBe('999');
      expect(after.headers['cache-status']).toMatch(/^MailKit; hit;/);
      expect(dodoReads() - before).toBe(0);
    });

    it('never lets an older webhook overwrite a newer balance', async () => {
      const { get, instance, customerId } = await setup();
      await get().expect(200);
      await adjust(customerId, -100); // 4,900
      await adjust(customerId, -200); // 4,700
      const [older, newer] = webhooksOf(customerId, 'credit.manual_adjustment');
      expect((older!.payload as { data: { balance_after: string } }).data.balance_after).toBe('4900');

      // Dodo retries the first one late: it arrives after the second.
      await deliver(instance, newer!);
      await deliver(instance, older!);
      expect((await get().expect(200)).body.balance).toBe('4700');
    });

    it('ignores a webhook for another credit entitlement', async () => {
      const { get, instance, customerId } = await setup();
      await get().expect(200);
      await adjust(customerId, -100);
      const real = webhooksOf(customerId, 'credit.manual_adjustment').at(-1)!;
      const payload = real.payload as { data: Record<string, unknown> };
      const other = { ...real, id: `${real.id}_other`, payload: { ...payload, data: { ...payload.data, credit_entitlement_id: 'cde_other', balance_after: '1' } } };
      await deliver(instance, other);
      expect((await get().expect(200)).body.balance).toBe('5000');
    });
  });

  describe('when Dodo refuses a debit the cached balance would have covered', () => {
    it('reads Dodo for the next balance instead of serving the cached one', async () => {
      const { get, key, instance, customerId } = await setup();
      await get().expect(200);
      await adjust(customerId, -5000); // no webhook reaches the instance: it still holds 5,000
      const sent = await request(instance.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' });
      expect(sent.status, JSON.stringify(sent.body)).toBe(402);
      const before = dodoReads();
      expect((await get().expect(200)).body.balance).toBe('0');
      expect(dodoReads() - before).toBe(1);
    });
  });

  describe('past the bound', () => {
    it('reads Dodo once, then serves that until the bound passes again', async () => {
      const { get, clock, customerId } = await setup();
      await get().expect(200);
      await adjust(customerId, -4000); // no webhook reaches the instance
      clock.advance(BOUND_MS - 100);
      expect((await get().expect(200)).body.balance).toBe('5000');

      clock.advance(100);
      const before = dodoReads();
      const refreshed = await get().expect(200);
      expect(refreshed.body.balance).toBe('1000');
      expect(refreshed.headers['cache-status']).toMatch(/fwd=miss/);
      expect((await get().expect(200)).headers['cache-status']).toMatch(/^MailKit; hit;/);
      expect(dodoReads() - before).toBe(1);
    });

    it('a balance only a webhook brought (never confirmed by Dodo) is read once', async () => {
      const { get, instance, customerId } = await setup();
      await adjust(customerId, -10);
      await deliver(instance, webhooksOf(customerId, 'credit.manual_adjustment').at(-1)!);
      const before = dodoReads();
      expect((await get().expect(200)).body.balance).toBe('4990');
      expect((await get().expect(200)).body.balance).toBe('4990');
      expect(dodoReads() - before).toBe(1);
    });
  });

  describe('when Dodo answers 429', () => {
    it('serves the cached balance with its age', async () => {
      const { get, clock } = await setup();
      await get().expect(200);
      clock.advance(BOUND_MS + 15_000);
      upstream.sandbox.dodo.faults.inject({ status: 429, match: BALANCE_READS, count: 10 });
      try {
        const res = await get().expect(200);
        expect(res.body.balance).toBe('5000');
        expect(Number(res.headers.age)).toBeGreaterThanOrEqual(45);
        expect(res.headers['cache-status']).toMatch(/^MailKit; fwd=stale; fwd-status=429; ttl=-1[56]$/);
      } finally {
        upstream.sandbox.dodo.faults.clear();
      }
    });

    it('answers 429 with Retry-After when nothing is cached', async () => {
      const { get } = await setup();
      upstream.sandbox.dodo.faults.inject({ status: 429, match: BALANCE_READS, count: 10 });
      try {
        const res = await get();
        expect(res.status).toBe(429);
        expect(res.body.error.code).toBe('billing_rate_limited');
        expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      } finally {
        upstream.sandbox.dodo.faults.clear();
      }
    });
  });

  describe('on two instances sharing one database', () => {
    it('a read by one serves the other, and a debit on one is seen by the other', async () => {
      const { get, database, key, clock, customerId } = await setup();
      const second = await startInstance(upstream, await under.openAnother(database), { balanceClock: clock.now });
      instances.push(second);
      const getSecond = () => request(second.url).get('/credits').set(bearer(key));

      const before = dodoReads();
      await get().expect(200);
      const other = await getSecond().expect(200);
      expect(other.body).toEqual({ customer_id: customerId, balance: '5000' });
      expect(other.headers['cache-status']).toMatch(/^MailKit; hit;/);

      await request(second.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' }).expect(200);
      expect((await get().expect(200)).body.balance).toBe('4999');
      expect(dodoReads() - before).toBe(1);
    });
  });
});

forEachEngine('GET /credits/usage', (under) => {
  const instances: Stack[] = [];
  afterEach(async () => {
    await Promise.all(instances.splice(0).map((s) => s.close()));
  });

  async function setup() {
    const clock = testClock();
    const database = await under.open();
    const instance = await startInstance(upstream, database, { balanceClock: clock.now });
    instances.push(instance);
    const { customerId } = await subscribe(upstream, `u${Math.random().toString(36).slice(2)}@example.com`);
    const key = await fleetKey(database, customerId);
    const usage = () => request(instance.url).get('/credits/usage?days=30').set(bearer(key));
    return { clock, instance, customerId, key, usage };
  }

  it('redraws within the bound without reading the ledger again', async () => {
    const { usage } = await setup();
    const before = ledgerReads();
    const first = await usage().expect(200);
    const oneRead = ledgerReads();
    expect(oneRead).toBeGreaterThan(before); // the ledger's pages
    for (let i = 0; i < 5; i++) {
      const again = await usage().expect(200);
      expect(again.body).toEqual(first.body);
      expect(again.headers['cache-status']).toMatch(/^MailKit; hit; ttl=\d+; key="balance", MailKit; hit; ttl=\d+; key="usage"$/);
    }
    expect(ledgerReads()).toBe(oneRead);
  });

  it('reads the ledger again once the balance moved (a send), and past the bound', async () => {
    const { usage, instance, key, clock } = await setup();
    const first = await usage().expect(200);
    const today = first.body.days.length - 1;
    await request(instance.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Hi', html: '<p>Hi</p>' }).expect(200);
    let before = ledgerReads();
    const afterSend = await usage().expect(200);
    expect(afterSend.body.balance).toBe('4999');
    expect(afterSend.body.days[today].emails).toBe(first.body.days[today].emails + 1);
    expect(afterSend.body.days[today].balance).toBe('4999');
    expect(ledgerReads()).toBeGreaterThan(before);

    before = ledgerReads();
    await usage().expect(200);
    expect(ledgerReads()).toBe(before);
    clock.advance(BOUND_MS);
    await usage().expect(200);
    expect(ledgerReads()).toBeGreaterThan(before);
  });

  it('serves the cached chart when Dodo answers 429', async () => {
    const { usage, clock } = await setup();
    const first = await usage().expect(200);
    clock.advance(BOUND_MS + 1_000);
    upstream.sandbox.dodo.faults.inject({ status: 429, count: 20 });
    try {
      const res = await usage().expect(200);
      expect(res.body).toEqual(first.body);
      expect(res.headers['cache-status']).toMatch(/fwd=stale; fwd-status=429/);
    } finally {
      upstream.sandbox.dodo.faults.clear();
    }
  });
});
