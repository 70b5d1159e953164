import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Database } from '../../src/db/index';
import type { Stack } from '../../src/stack';
import {
  dodoBalance,
  fleetKey,
  fleetStore,
  instanceEnv,
  settleFleet,
  spawnInstance,
  startInstance,
  startUpstream,
  type FleetStore,
  type Upstream,
} from '../support/fleet';
import { forEachEngine } from '../support/database';
import { customerWith } from '../support/stack';

/**
 * The balance MailKit keeps, on two instances sharing one database against one upstream under
 * Dodo's tier-0 quota (240 a minute, bursts of 40), as the fleet cases ask: customers
 * running dry cost no Dodo call per send, and a crash in the middle of a settlement loses
 * nothing (its key is asked again).
 */
const TIER_0 = { DODO_RATE_LIMIT: '240', DODO_BURST: '40' };
const CREDIT_CALLS = /^(GET|POST) \/credit-entitlements\/[^/]+\/balances\/(cus_[^/]+)/;

forEachEngine('the balance MailKit keeps, on two instances', ({ engine }) => {
  let upstream: Upstream;
  let store: FleetStore;
  let dbA: Database;
  let dbB: Database;
  let a: Stack;
  let b: Stack;

  beforeAll(async () => {
    upstream = await startUpstream();
    upstream.sandbox.dodo.setRateLimit({ perMinute: 240, burst: 40 });
    store = await fleetStore(engine);
    dbA = await store.open();
    dbB = engine === 'postgres' ? await store.open() : dbA; // (see test/fleet.test.ts)
    // Settled when a test says (settleFleet), so that a crash test's doomed instance is the one settling.
    a = await startInstance(upstream, dbA, { credits: { intervalMs: 0 } }, TIER_0);
    b = await startInstance(upstream, dbB, { credits: { intervalMs: 0 } }, TIER_0);
  }, 60_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await dbA?.close();
    if (dbB !== dbA) await dbB?.close();
    upstream?.sandbox.dodo.setRateLimit({ perMinute: 0 });
    await upstream?.close();
    await store?.drop();
  });

  const post = (instance: Stack | string, key: string, body: object, idempotencyKey?: string) =>
    fetch(`${typeof instance === 'string' ? instance : instance.url}/send`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${key}`,
        'Content-Type': 'application/json',
        ...(idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {}),
      },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json().catch(() => null)) as any }));
  /** Dodo calls about one customer's credits, counted at the upstream. */
  const callsFor = (customerId: string) =>
    upstream.sandbox.dodo.faults.requestCount(new RegExp(CREDIT_CALLS.source.replace('(cus_[^/]+)', customerId)));

  it(
    'running dry: 200 concurrent sends on 50 credits (5 customers) send exactly 50 emails and answer 150 × 402; ' +
      'a few Dodo calls a customer; a sixth customer sends on',
    async () => {
      const dry = await Promise.all(Array.from({ length: 5 }, () => customerWith(upstream, 10)));
      const rich = await customerWith(upstream, 1000);
      const keys = await Promise.all(dry.map((c) => fleetKey(dbA, c.customerId)));
      const richKey = await fleetKey(dbA, rich.customerId);
      const before = dry.map((c) => callsFor(c.customerId));
      const to = `dry-${engine}@example.com`;
      const started = Date.now();
      const timed = (p: Promise<{ status: number }>) => p.then((r) => ({ ...r, ms: Date.now() - started }));
      const [answers, richAnswers] = await Promise.all([
        Promise.all(Array.from({ length: 200 }, (_, i) => timed(post(i % 2 ? a : b, keys[i % 5]!, { to, subject: `dry ${i}`, html: '<p>d</p>' })))),
        (async () => {
          const out: Array<{ status: number; ms: number }> = [];
          for (let i = 0; i < 20; i++) {
            const t = Date.now();
            const r = await post(i % 2 ? a : b, richKey, { to: `rich-${engine}@example.com`, subject: `rich ${i}`, html: '<p>r</p>' });
            out.push({ status: r.status, ms: Date.now() - t });
          }
          return out;
        })(),
      ]);
      expect(answers.filter((r) => r.status !== 200 && r.status !== 402).map((r) => r.status)).toEqual([]);
      expect(answers.filter((r) => r.status === 200)).toHaveLength(50);
      expect(answers.filter((r) => r.status === 402)).toHaveLength(150);
      expect(upstream.sandbox.resend.messages().filter((m) => m.to.includes(to))).toHaveLength(50);
      expect(richAnswers.map((r) => r.status)).toEqual(Array(20).fill(200));
      // Latencies are the benchmark's to judge (npm run bench -- --quotas, scenario e); printed here.
      console.log(
        `running dry (${engine}): slowest answer ${Math.max(...answers.map((r) => r.ms))} ms; ` +
          `the sixth customer's slowest ${Math.max(...richAnswers.map((r) => r.ms))} ms`,
      );

      await settleFleet(a, dbA);
      for (const c of dry) expect(await dodoBalance(upstream, c.customerId)).toBe(0);
      expect(await dodoBalance(upstream, rich.customerId)).toBe(980);
      // Per customer: its grants read (once per instance at most) and its settlements, never a call per send.
      for (const [i, c] of dry.entries()) expect(callsFor(c.customerId) - before[i]!).toBeLessThanOrEqual(4);
    },
    120_000,
  );

  it(
    'an instance SIGKILLed while its settlement is being asked: ' + 'the survivor asks the same key again, Dodo’s net debit equals the emails',
    async () => {
      const c = await customerWith(upstream, 100);
      const key = await fleetKey(dbA, c.customerId);
      const doomed = await spawnInstance({ ...(await instanceEnv(upstream, { SETTLE_EVERY_SECONDS: '1' })), ...store.env });
      const to = `settle-crash-${engine}@example.com`;
      for (let i = 0; i < 7; i++) expect((await post(doomed.url, key, { to, subject: `s ${i}`, html: '<p>s</p>' })).status).toBe(200);
      // Dodo applies the settlement's debit and holds its answer: the instance dies waiting for it.
      const asked = upstream.sandbox.dodo.faults.requestCount(/ledger-entries$/);
      upstream.sandbox.dodo.faults.inject({ holdAnswerMs: 5_000, count: 1, match: /ledger-entries$/ });
      const deadline = Date.now() + 20_000;
      while (upstream.sandbox.dodo.faults.requestCount(/ledger-entries$/) === asked && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(upstream.sandbox.dodo.faults.requestCount(/ledger-entries$/)).toBeGreaterThan(asked);
      await doomed.kill();
      expect(await dodoBalance(upstream, c.customerId)).toBe(93); // made, though nobody heard the answer

      // The dead instance's claim expires (30 s); the survivor asks the same settlement again.
      await settleFleet(a, dbA, 90_000);
      expect(upstream.sandbox.resend.messages().filter((m) => m.to.includes(to))).toHaveLength(7);
      expect(await dodoBalance(upstream, c.customerId)).toBe(93);
      const rows = await dbA.db.selectFrom('settlements').selectAll().where('customerId', '=', c.customerId).execute();
      expect(rows.map((r) => [r.credits, r.paid, r.state])).toEqual([[7, 7, 'done']]);
    },
    150_000,
  );
});
