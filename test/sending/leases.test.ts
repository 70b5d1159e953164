import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { CreditLedgerEntry } from 'dodopayments/resources/credit-entitlements/balances';
import type { Database } from '../../src/db/index';
import { findSend } from '../../src/db/sends';
import { sendIdFor } from '../../src/sending/records';
import type { Stack } from '../../src/stack';
import { forEachEngine } from '../support/database';
import { dodoBalance, fleetKey, fleetStore, instanceEnv, settleFleet, spawnInstance, startInstance, startUpstream, type Upstream } from '../support/fleet';
import { balanceOf, bearer, customerWith, outboxTo, settle, startTestStack, subscribe, waitFor } from '../support/stack';

/**
 * Credit leases (issue 13), through the real SDKs against the sandbox, on every engine: what a
 * lease holds, when it goes back, and the doubts of its own Dodo calls, settled only by a
 * definite answer for the lease's own key. The invariants: never an email without a credit
 * debited for it; after settling, net credits debited equal emails sent, per customer.
 */
type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const email = { to: 'delivered@resend.dev', subject: 'Lease', html: '<p>x</p>' };
const QUICK = { reconcile: { intervalMs: 0, graceMs: 0 }, mailer: { timeoutMs: 300, maxBackoffMs: 50 }, dodoMaxRetries: 0 };

const send = (stack: Stack, key: string, idempotencyKey: string, body: object = email) =>
  request(stack.url).post('/send').set(bearer(key)).set('Idempotency-Key', idempotencyKey).send(body);

async function ledgerOf(stack: Stack, customerId: string): Promise<CreditLedgerEntry[]> {
  const out: CreditLedgerEntry[] = [];
  for await (const e of stack.dodo.creditEntitlements.balances.listLedger(customerId, { credit_entitlement_id: stack.catalog.creditEntitlementId })) out.push(e);
  return out;
}
const leaseRows = (database: Database, customerId: string) => database.db.selectFrom('leases').selectAll().where('customerId', '=', customerId).orderBy('createdAt').execute();
const dodoOf = (stack: TestStack, customerId: string) => Number(stack.sandbox.dodo.customers().find((c) => c.customer_id === customerId)!.balance);

/** `n` sends one after another, fast enough for the customer's rate to call for credits ahead. */
async function sendInARow(stack: Stack, key: string, n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i++) await send(stack, key, `${prefix}-${i}`, { ...email, subject: `${prefix}-${i}` }).expect(200);
}

forEachEngine('credit leases', ({ engine }) => {
  let stack: TestStack | undefined;
  let upstream: Upstream | undefined;
  afterEach(async () => {
    await stack?.close();
    await upstream?.close();
    stack = upstream = undefined;
  });

  describe('what a lease holds', () => {
    it('a customer sending steadily gets its next lease before the current one runs out', async () => {
      // A short horizon: leases of about 6 s of sending, the next taken with 2 s left.
      stack = await startTestStack({}, { ...QUICK, engine, leaseOptions: { horizonMs: 6_000 } });
      const c = await customerWith(stack, 3000);
      // 50 a second for 7 s: steady, and within the per-key limit (1,200 a minute).
      const start = Date.now();
      for (let i = 0; Date.now() < start + 7_000; i++) {
        const r = await send(stack, c.key, `steady-${i}`, { ...email, subject: `steady-${i}` });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        await new Promise((ok) => setTimeout(ok, Math.max(0, start + (i + 1) * 20 - Date.now())));
      }
      const leases = await leaseRows(stack.database, c.customerId);
      // Taken ahead, with no email waiting for it: its whole debit is credits ahead.
      expect(leases.some((l) => l.credits > 0 && l.emailsAhead === l.credits)).toBe(true);
      await stack.sender.returnLeases();
      const sent = stack.sandbox.resend.messages().filter((m) => m.subject.startsWith('steady-')).length;
      expect(dodoOf(stack, c.customerId)).toBe(3000 - sent);
    });

    it('a fast sender gets credits ahead: Dodo is asked far less than once per email, GET /credits shows Dodo\'s balance plus the unspent credits, and the usage chart counts emails', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 3000);
      await sendInARow(stack, c.key, 40, 'fast');

      const leases = await leaseRows(stack.database, c.customerId);
      expect(leases.length).toBeLessThan(10);
      const held = leases.filter((l) => l.state === 'active').reduce((n, l) => n + l.credits - l.spent, 0);
      expect(held).toBeGreaterThan(0); // credits taken ahead, not spent yet
      expect(dodoOf(stack, c.customerId)).toBe(3000 - 40 - held);
      expect(await balanceOf(stack, c.key)).toBe(2960);

      // The chart counts the 40 emails, not the blocks Dodo's ledger shows.
      const usage = await request(stack.url).get('/credits/usage?days=1').set(bearer(c.key)).expect(200);
      // (credits: the plan's 5,000 granted today; the lease blocks are not credits either.)
      expect(usage.body.days.at(-1)).toMatchObject({ emails: 40, credits: 5000, balance: '2960' });
      expect(usage.body.balance).toBe('2960');

      // Every ledger entry says what it covers.
      const debits = (await ledgerOf(stack, c.customerId)).filter((e) => e.transaction_type === 'credit_deducted');
      expect(debits.length).toBe(leases.length);
      for (const e of debits) expect(e.description).toMatch(/^(emails: \d+ credits? for the emails being sent \(lease lse_|lease lse_\S+: \d+ credits, \d+ for the emails being sent and \d+ ahead; unspent credits are returned)/);

      // Returned: Dodo's own balance is exactly what was spent; the chart still says 40 emails.
      await stack.sender.returnLeases();
      expect(dodoOf(stack, c.customerId)).toBe(2960);
      const returns = (await ledgerOf(stack, c.customerId)).filter((e) => e.is_credit && e.metadata?.mailkit_entry === 'lease_return');
      expect(returns.length).toBeGreaterThan(0);
      for (const e of returns) expect(e.description).toMatch(/^lease lse_\S+ returned: \d+ of \d+ credits unspent$/);
      const after = await request(stack.url).get('/credits/usage?days=1').set(bearer(c.key)).expect(200);
      expect(after.body.days.at(-1)).toMatchObject({ emails: 40, credits: 5000, balance: '2960' });
    });

    it('never takes more than the balance: 30 concurrent sends for 12 credits send 12 emails, 18 × 402', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 12);
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => send(stack!, c.key, `all-${i}`)));
      const statuses = answers.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 200)).toHaveLength(12);
      expect(statuses.filter((s) => s === 402)).toHaveLength(18);
      expect(outboxTo(stack, email.to)).toHaveLength(12);
      await stack.sender.returnLeases();
      expect(dodoOf(stack, c.customerId)).toBe(0);
    });

    it('a rejected item of a batch gives its credit back into the lease that paid it: no Dodo call, and the net debit is the emails sent', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      // (Through the sender: the route would refuse the bad address itself, before any credit.)
      const mail = { to: [email.to], subject: email.subject, html: email.html };
      const items = [mail, { ...mail, to: ['not an address'] }, mail];
      const before = (await ledgerOf(stack, c.customerId)).length;
      const r = await stack.sender.sendBatch(c.customerId, items, 'partly');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ sent: 2, failed: 1 });
      expect(await ledgerOf(stack, c.customerId)).toHaveLength(before + 1); // the lease's debit only
      expect(await balanceOf(stack, c.key)).toBe(8);
      await stack.sender.returnLeases();
      expect(dodoOf(stack, c.customerId)).toBe(8);
    });
  });

  describe('when a lease goes back', () => {
    it('after the customer goes idle, by the sweep', async () => {
      stack = await startTestStack({}, { ...QUICK, engine, leaseOptions: { idleMs: 300 } });
      // (3,000: credits are taken ahead only above the low-balance threshold, 1,000.)
      const c = await customerWith(stack, 3000);
      await sendInARow(stack, c.key, 20, 'idle');
      expect(dodoOf(stack, c.customerId)).toBeLessThan(2980); // credits held ahead
      // Every lease closed (a fully spent one too, once idle), and Dodo holds exactly the rest.
      await waitFor(async () => (await leaseRows(stack!.database, c.customerId)).every((l) => l.state === 'closed'));
      expect(dodoOf(stack, c.customerId)).toBe(2980);
      const leases = await leaseRows(stack.database, c.customerId);
      expect(leases.reduce((n, l) => n + l.credits - (l.returnCredits ?? 0), 0)).toBe(20);
    });

    it('at shutdown', async () => {
      upstream = await startUpstream();
      const store = await fleetStore(engine);
      const database = await store.open();
      try {
        const c = await customerWith(upstream, 3000);
        const instance = await startInstance(upstream, database);
        const key = await fleetKey(database, c.customerId);
        await sendInARow(instance, key, 20, 'shutdown');
        expect(await dodoBalance(upstream, c.customerId)).toBeLessThan(2980);
        await instance.close();
        expect(await dodoBalance(upstream, c.customerId)).toBe(2980);
        expect((await leaseRows(database, c.customerId)).every((l) => l.state === 'closed')).toBe(true);
      } finally {
        await database.close();
        await store.drop();
      }
    });
  });

  describe('a lease whose debit was answered by nobody', () => {
    it('holds nothing for the send (503, no row), and the next send settles the lease by its own key (409) and spends it: one debit, one email', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      stack.sandbox.dodo.faults.inject({ dropAfterProcessing: true, count: 1, match: /ledger-entries$/ });
      const lost = await send(stack, c.key, 'lost');
      expect(lost.status).toBe(503);
      expect(lost.body.error.code).toBe('billing_unavailable');
      expect(await findSend(stack.database, sendIdFor(c.customerId, 'lost'))).toBeUndefined();
      expect(dodoOf(stack, c.customerId)).toBe(9); // Dodo made the lease's debit
      expect((await leaseRows(stack.database, c.customerId)).map((l) => [l.state, l.inDoubt])).toEqual([['reserving', 1]]);

      await send(stack, c.key, 'lost').expect(200);
      expect(outboxTo(stack, email.to)).toHaveLength(1);
      expect((await ledgerOf(stack, c.customerId)).filter((e) => e.transaction_type === 'credit_deducted' && e.metadata?.mailkit_lease)).toHaveLength(1);
      await stack.sender.returnLeases();
      expect(dodoOf(stack, c.customerId)).toBe(9);
    });

    it('a refusal (429) of the same key afterwards proves nothing: the lease stays in doubt until a definite answer, then goes back', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      stack.sandbox.dodo.faults.inject({ dropAfterProcessing: true, count: 1, match: /ledger-entries$/ });
      expect((await send(stack, c.key, 'doubt')).status).toBe(503);
      stack.sandbox.dodo.faults.inject({ status: 429, count: 1, match: /ledger-entries$/ });
      await stack.sender.reconcile(); // the sweep asks the same key: refused
      expect((await leaseRows(stack.database, c.customerId)).map((l) => [l.state, l.inDoubt])).toEqual([['reserving', 1]]);
      expect(dodoOf(stack, c.customerId)).toBe(9);

      await stack.sender.reconcile(); // asked again: 409, it exists; it is now a lease to return
      await stack.sender.returnLeases();
      expect(dodoOf(stack, c.customerId)).toBe(10);
      expect(outboxTo(stack, email.to)).toHaveLength(0);
    });

    it('a lease whose process died asking (found reserving, never marked in doubt): a 429 to the sweep\'s ask proves nothing, and the lease is kept until its key answers', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      // The dead instance recorded its lease and its debit landed at Dodo; the answer died with it.
      const t = Date.now();
      const lease = { id: 'lse_dead', customerId: c.customerId, nonce: 'n0', state: 'reserving', credits: 3, spent: 0, returnCredits: null, returnExpiresAt: null, emailsAhead: 0, inDoubt: 0, owner: 'dead', claimedUntil: t - 1, createdAt: t, updatedAt: t, lastUsedAt: t };
      await stack.database.db.insertInto('leases').values(lease).execute();
      await stack.billing.reserve(c.customerId, 3, 'lse_dead.n0:debit', 'emails: 3 credits for the emails being sent (lease lse_dead)');
      expect(dodoOf(stack, c.customerId)).toBe(7);

      stack.sandbox.dodo.faults.inject({ status: 429, count: 1, match: /ledger-entries$/ });
      await stack.sender.reconcile();
      expect((await leaseRows(stack.database, c.customerId)).map((l) => [l.id, l.state, l.inDoubt])).toEqual([['lse_dead', 'reserving', 1]]);

      await stack.sender.reconcile(); // 409: it exists; it is now a lease to return
      await stack.sender.returnLeases();
      expect(dodoOf(stack, c.customerId)).toBe(10);
    });

    it('a debit that never happened (503 before Dodo did anything) is asked again by the sweep and returned: the balance is as it was', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const c = await customerWith(stack, 10);
      stack.sandbox.dodo.faults.inject({ status: 503, count: 1, match: /ledger-entries$/ });
      expect((await send(stack, c.key, 'never')).status).toBe(503);
      expect(dodoOf(stack, c.customerId)).toBe(10);
      await stack.sender.reconcile();
      await stack.sender.returnLeases();
      expect(dodoOf(stack, c.customerId)).toBe(10);
      expect(await leaseRows(stack.database, c.customerId)).toEqual([expect.objectContaining({ state: 'closed', credits: 1, returnCredits: 1 })]);
    });
  });

  describe('the low-balance alert', () => {
    it('fires once, when the emails cross the threshold, never when a lease takes credits ahead', async () => {
      stack = await startTestStack({}, { ...QUICK, engine });
      const who = `low-${engine}@example.com`;
      const c = await subscribe(stack, who); // 5,000 credits, threshold 20 %: 1,000
      await stack.sandbox.dodo.adjustBalance(c.customerId, stack.catalog.creditEntitlementId, -3950, 'test setup');
      await settle(stack);
      const alerts = () => outboxTo(stack!, who).filter((m) => /running low/.test(m.subject));

      await sendInARow(stack, c.key, 50, 'above'); // 1,050 → 1,000: not under the threshold
      await settle(stack);
      expect(alerts()).toHaveLength(0);
      expect(dodoOf(stack, c.customerId)).toBeGreaterThanOrEqual(1000); // leases stop at the threshold

      await sendInARow(stack, c.key, 10, 'below'); // the 51st email crosses it
      await settle(stack);
      expect(alerts()).toHaveLength(1);
      expect(alerts()[0]!.text).toMatch(/You have 999 emails left/);
      await stack.sender.returnLeases();
      await settle(stack);
      expect(alerts()).toHaveLength(1);
      expect(dodoOf(stack, c.customerId)).toBe(990);
    });
  });

  describe('a crash', () => {
    it('SIGKILL with leases held and a batch in flight: after restart and the reconciler, net debits equal emails per customer, no email twice', async () => {
      upstream = await startUpstream();
      const store = await fleetStore(engine);
      const database = await store.open();
      try {
        const customers = await Promise.all([customerWith(upstream, 2000), customerWith(upstream, 2000), customerWith(upstream, 2000)]);
        const keys = await Promise.all(customers.map((c) => fleetKey(database, c.customerId)));
        const doomed = await spawnInstance({ ...(await instanceEnv(upstream)), ...store.env });
        upstream.sandbox.dodo.faults.setLatency(15);
        upstream.sandbox.resend.faults.setLatency(15);
        let killed = false;
        let n = 0;
        const post = (path: string, key: string, body: object, idem: string) =>
          fetch(`${doomed.url}${path}`, { method: 'POST', headers: { ...bearer(key), 'Content-Type': 'application/json', 'Idempotency-Key': idem }, body: JSON.stringify(body) }).catch(() => null);
        const load = async (ci: number, batch: boolean) => {
          while (!killed) {
            const k = `c${ci}-${n++}`;
            const to = `crash-${ci}@example.com`;
            await (batch
              ? post('/send/batch', keys[ci]!, [1, 2, 3].map((j) => ({ to, subject: `${k}-${j}`, html: '<p>b</p>' })), k)
              : post('/send', keys[ci]!, { to, subject: k, html: '<p>s</p>' }, k));
          }
        };
        const running = customers.flatMap((_, ci) => [load(ci, false), load(ci, false), load(ci, true)]);
        await waitFor(async () => (await database.db.selectFrom('leases').select('id').where('state', '=', 'active').execute()).length > 0);
        await new Promise((r) => setTimeout(r, 1_000));
        await doomed.kill();
        killed = true;
        await Promise.all(running);
        upstream.sandbox.dodo.faults.setLatency(0);
        upstream.sandbox.resend.faults.setLatency(0);
        expect((await database.db.selectFrom('leases').select('id').where('state', '=', 'active').execute()).length).toBeGreaterThan(0);

        const restarted = await startInstance(upstream, database);
        try {
          await settleFleet(restarted, database, 90_000);
          await upstream.sandbox.dodo.webhooks.idle();
          for (const [ci, c] of customers.entries()) {
            const emails = outboxTo(upstream, `crash-${ci}@example.com`);
            expect(2000 - (await dodoBalance(upstream, c.customerId)), `customer ${ci}`).toBe(emails.length);
            const subjects = emails.map((m) => m.subject);
            expect(new Set(subjects).size).toBe(subjects.length);
          }
        } finally {
          await restarted.close();
        }
      } finally {
        await database.close();
        await store.drop();
      }
    }, 150_000);
  });
});
