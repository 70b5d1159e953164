import { afterEach, describe, expect, it } from 'vitest';
import { provision, settledWebhooks, startHarness, type Harness } from './harness';

let h: Harness;
afterEach(async () => {
  await h.close();
});

async function customerWithCredits(entitlementId: string, email: string) {
  const c = await h.client.customers.create({ email, name: email });
  await h.client.creditEntitlements.balances.createLedgerEntry(c.customer_id, {
    credit_entitlement_id: entitlementId,
    entry_type: 'credit',
    amount: '100',
  });
  return c.customer_id;
}

describe('webhook delivery', () => {
  it('retries a non-2xx with backoff, keeps per-customer order, and logs every attempt', async () => {
    h = await startHarness({ retryDelaysMs: Array.from({ length: 20 }, () => 30) });
    const { entitlement } = await provision(h.client);
    h.receiver.status = 503;
    const customerId = await customerWithCredits(entitlement.id, 'retry@example.com');
    for (const amount of ['1', '2', '3']) {
      await h.client.creditEntitlements.balances.createLedgerEntry(customerId, {
        credit_entitlement_id: entitlement.id,
        entry_type: 'debit',
        amount,
      });
    }
    await new Promise((r) => setTimeout(r, 80));
    expect(h.received).toHaveLength(0);
    const head = h.sb.webhooks.list().at(-1)!;
    expect(head.state).toBe('pending');
    expect(head.attempts.length).toBeGreaterThanOrEqual(2);
    expect(head.attempts[0]!.status).toBe(503);
    // Later events wait behind the failing head: nothing after it was attempted yet.
    expect(
      h.sb.webhooks
        .list()
        .slice(0, -1)
        .every((d) => d.attempts.length === 0),
    ).toBe(true);

    h.receiver.status = 200;
    const received = await settledWebhooks(h);
    expect(received.map((w) => [w.type, w.payload.data.amount])).toEqual([
      ['credit.added', '100'],
      ['credit.deducted', '1'],
      ['credit.deducted', '2'],
      ['credit.deducted', '3'],
    ]);
    const log = h.sb.webhooks.list();
    expect(log.every((d) => d.state === 'delivered')).toBe(true);
    expect(log.at(-1)!.attempts.at(-1)!.status).toBe(200);
    expect(log[0]!.url).toBe(`${h.baseUrl}/webhooks/dodo`);
  });

  it('marks a delivery failed after the last retry, then moves on', async () => {
    h = await startHarness({ retryDelaysMs: [10, 10] });
    const { entitlement } = await provision(h.client);
    h.receiver.status = 500;
    await customerWithCredits(entitlement.id, 'fail@example.com');
    await h.sb.webhooks.idle();
    const [delivery] = h.sb.webhooks.list();
    expect(delivery!.state).toBe('failed');
    expect(delivery!.attempts.map((a) => a.status)).toEqual([500, 500, 500]);
    expect(h.received).toHaveLength(0);

    // redeliver resends the same webhook-id with a fresh signature.
    h.receiver.status = 200;
    await h.sb.webhooks.redeliver(delivery!.id);
    expect(h.received).toHaveLength(1);
    expect(h.received[0]!.headers['webhook-id']).toBe(delivery!.id);
    expect(h.client.webhooks.unwrap(h.received[0]!.raw, { headers: h.received[0]!.headers }).type).toBe('credit.added');
    expect(h.sb.webhooks.list()[0]!.state).toBe('delivered');

    await new Promise((r) => setTimeout(r, 1_100));
    await h.sb.webhooks.redeliver(delivery!.id);
    expect(h.received).toHaveLength(2);
    expect(h.received[1]!.headers['webhook-id']).toBe(delivery!.id);
    expect(h.received[1]!.raw).toBe(h.received[0]!.raw);
    expect(h.received[1]!.headers['webhook-timestamp']).not.toBe(h.received[0]!.headers['webhook-timestamp']);
    expect(h.received[1]!.headers['webhook-signature']).not.toBe(h.received[0]!.headers['webhook-signature']);
  });

  it('records network errors as attempts with no status', async () => {
    h = await startHarness({ retryDelaysMs: [10], webhookUrl: 'http://127.0.0.1:9/unreachable' });
    const { entitlement } = await provision(h.client);
    await customerWithCredits(entitlement.id, 'net@example.com');
    await h.sb.webhooks.idle();
    const [delivery] = h.sb.webhooks.list();
    expect(delivery!.state).toBe('failed');
    expect(delivery!.attempts).toHaveLength(2);
    expect(delivery!.attempts[0]).toMatchObject({ status: null, error: expect.any(String) });
  });

  it('delivers after the request that caused the event has answered', async () => {
    h = await startHarness();
    const { entitlement } = await provision(h.client);
    const customerId = await customerWithCredits(entitlement.id, 'async@example.com');
    // The SDK call has resolved; the webhook may or may not have landed yet, but is never lost.
    await settledWebhooks(h);
    expect(h.received.map((w) => w.type)).toEqual(['credit.added']);
    expect(h.received[0]!.payload.data.customer_id).toBe(customerId);
    expect(h.received[0]!.payload.business_id).toBe((h.sb.state() as { businessId: string }).businessId);
  });
});
