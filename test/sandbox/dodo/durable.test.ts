import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buyWithCard, provision, settledWebhooks, startHarness, type Harness } from './harness';

const DAY = 86_400_000;
let dir: string;
let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
  rmSync(dir, { recursive: true, force: true });
});

describe('durable state', () => {
  it('survives re-creating the sandbox from the same file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'dodo-sandbox-'));
    const dataFile = join(dir, 'nested', 'dodo.json');
    h = await startHarness({ dataFile, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' });
    const { entitlement, plan } = await provision(h.client);
    const { location } = await buyWithCard(h, plan.product_id, { email: 'durable@example.com' });
    const customerId = location.searchParams.get('customer_id')!;
    await h.client.creditEntitlements.balances.createLedgerEntry(customerId, {
      credit_entitlement_id: entitlement.id,
      entry_type: 'debit',
      amount: '42',
      idempotency_key: 'once',
    });
    await h.sb.advanceClock(3 * DAY);
    const clockBefore = h.sb.now().getTime();
    await settledWebhooks(h);
    // Leave one event undelivered: the receiver is down when the sandbox closes.
    h.receiver.status = 503;
    await h.sb.adjustBalance(customerId, entitlement.id, 8, 'gift');
    await new Promise((r) => setTimeout(r, 50));
    await h.close();
    h = null;

    const onDisk = JSON.parse(readFileSync(dataFile, 'utf8'));
    expect(Object.keys(onDisk.customers)).toEqual([customerId]);
    expect(onDisk.clockOffsetMs).toBeGreaterThanOrEqual(3 * DAY - 1_000);

    h = await startHarness({ dataFile, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' });
    expect(h.sb.now().getTime()).toBeGreaterThanOrEqual(clockBefore);
    expect(h.sb.now().getTime() - clockBefore).toBeLessThan(60_000);
    const balance = await h.client.creditEntitlements.balances.retrieve(customerId, { credit_entitlement_id: entitlement.id });
    expect(balance.balance).toBe(String(5000 - 42 + 8));
    expect((await h.client.products.retrieve(plan.product_id)).credit_entitlements[0]!.credits_amount).toBe('5000');
    await expect(
      h.client.creditEntitlements.balances.createLedgerEntry(customerId, {
        credit_entitlement_id: entitlement.id,
        entry_type: 'debit',
        amount: '1',
        idempotency_key: 'once',
      }),
    ).rejects.toMatchObject({ status: 409 });

    // The pending credit.manual_adjustment resumes and reaches the new receiver, verifiably signed.
    const received = await settledWebhooks(h);
    expect(received.map((w) => w.type)).toEqual(['credit.manual_adjustment']);
    expect(received[0]!.payload.data).toMatchObject({ transaction_type: 'manual_adjustment', amount: '8', is_credit: true, description: 'gift' });
    expect(h.client.webhooks.unwrap(received[0]!.raw, { headers: received[0]!.headers }).type).toBe('credit.manual_adjustment');
    expect(h.sb.webhooks.list().filter((d) => d.state === 'delivered').length).toBeGreaterThanOrEqual(4);

    // Renewal still happens on the persisted schedule.
    await h.sb.advanceClock(28 * DAY);
    const renewed = (await settledWebhooks(h)).filter((w) => w.type === 'subscription.renewed');
    expect(renewed).toHaveLength(1);
  });
});
