import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import DodoPayments from 'dodopayments';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBilling } from '../../src/billing/billing';
import { ensureCatalog } from '../../src/billing/catalog';
import { specsDir } from '../support/openapi';

/**
 * The requests MailKit's own billing code makes, checked against Dodo's official spec by
 * Steady (the mock server Dodo's SDKs are tested against): Steady answers 400 to any request
 * whose path, query or body drifts from the spec, which makes these calls throw.
 */
const spec = resolve(specsDir, 'dodo-openapi-1.113.0.mailkit-subset.json');

async function freePort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

describe("MailKit's Dodo requests, validated by Steady against the official spec", () => {
  let steady: ChildProcess;
  let dodo: DodoPayments;
  let output = '';

  beforeAll(async () => {
    const port = await freePort();
    steady = spawn(resolve('node_modules/.bin/steady'), ['-p', String(port), '--host', '127.0.0.1', '--no-color', spec], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    steady.stdout!.on('data', (d) => (output += d));
    steady.stderr!.on('data', (d) => (output += d));
    dodo = new DodoPayments({ bearerToken: 'steady', baseURL: `http://127.0.0.1:${port}`, maxRetries: 0, timeout: 5000 });
    for (let i = 0; i < 100; i++) {
      try {
        await fetch(`http://127.0.0.1:${port}/products`, { headers: { Authorization: 'Bearer x' } });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`Steady did not start:\n${output}`);
  }, 20_000);

  afterAll(() => {
    steady?.kill();
  });

  const billing = () =>
    createBilling({
      dodo,
      catalog: { creditEntitlementId: 'cde_test', planProductId: 'pdt_plan', topupProductId: 'pdt_topup' },
      baseUrl: 'http://localhost:3000',
    });

  it('provisioning the catalog (list + create entitlement and products) is valid', async () => {
    const result = await ensureCatalog(dodo);
    expect(result.creditEntitlementId).toBeTruthy();
  });

  it('creating subscribe and top-up checkouts is valid', async () => {
    // Steady's mock may omit the optional checkout_url; what matters is that the request passed.
    const accepted = (p: Promise<string>) =>
      p.then(
        () => 'ok',
        (e: Error) => (/without a checkout URL/.test(e.message) ? 'ok' : e.message),
      );
    expect(await accepted(billing().subscribeCheckout({ email: 'a@example.com', name: 'A' }))).toBe('ok');
    expect(await accepted(billing().topupCheckout('cus_123'))).toBe('ok');
  });

  it('reading the balance, the customer and the grants is valid', async () => {
    expect(typeof (await billing().balance('cus_123'))).toBe('string');
    expect(await billing().customer('cus_123')).toHaveProperty('email');
    expect(Array.isArray(await billing().grants('cus_123'))).toBe(true);
  });

  it('a settlement’s debit, and the debit and refund of a send paid on its own (before balances), are valid', async () => {
    // A request Steady rejects comes back 400, which debit() and reserve() would report as insufficient credits.
    expect(await billing().debit('cus_123', 12, 'stl_x', '12 email credits spent (settlement stl_x)', { mailkit_settlement: 'stl_x' })).toMatchObject(
      { balanceAfter: expect.any(String) },
    );
    expect(await billing().reserve('cus_123', 1, 'snd_x:debit:0', 'email send snd_x')).toBe('reserved');
    await expect(billing().refund('cus_123', 1, 'snd_x:refund:0', 'refund: email send snd_x')).resolves.toBeUndefined();
  });

  it('Steady does reject a malformed request (the check can fail)', async () => {
    await expect(
      dodo.creditEntitlements.balances.createLedgerEntry('cus_123', { credit_entitlement_id: 'cde_x', entry_type: 'sideways' } as never),
    ).rejects.toBeInstanceOf(DodoPayments.BadRequestError);
  });
});
