import express, { type RequestHandler } from 'express';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import type { Database } from '../src/db';
import { errorMiddleware, HttpError } from '../src/errors';
import { clientAddressKey, createRateLimiters, customerGate, type RateLimits } from '../src/rate-limits';
import { forEachEngine } from './support/database';

/** A clock the test moves: 12:00:10, so 50 s are left in the minute. */
const startClock = () => ({ now: Date.UTC(2026, 0, 1, 12, 0, 10) });

/** Key verification as the database-backed one will be: asynchronous. `good_<customer>` is valid. */
const asyncRequireKey: RequestHandler = async (req, _res, next) => {
  await new Promise((resolve) => setImmediate(resolve));
  const key = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '')?.[1];
  if (!key?.startsWith('good_')) throw new HttpError(401, 'invalid_api_key', 'This API key is not valid.');
  req.customerId = key.slice('good_'.length);
  next();
};

/** The same, synchronous (today's requireCustomer): calls next or throws. */
const syncRequireKey: RequestHandler = (req, _res, next) => {
  const key = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '')?.[1];
  if (!key?.startsWith('good_')) throw new HttpError(401, 'invalid_api_key', 'This API key is not valid.');
  req.customerId = key.slice('good_'.length);
  next();
};

/**
 * One MailKit instance's limiters on `database`, behind three routes: `/customer?customer=`
 * (per customer), `/gated` (the customer gate) and `/public` (per address).
 */
function instance(limits: RateLimits, database: Database | undefined, clock: { now: number }, requireKey = asyncRequireKey) {
  const limiters = createRateLimiters(limits, database, { now: () => clock.now });
  const reached = { count: 0 };
  const app = express();
  app.get(
    '/customer',
    (req, _res, next) => {
      req.customerId = String(req.query.customer);
      next();
    },
    limiters.perKey,
    (_req, res) => {
      reached.count++;
      res.json({ ok: true });
    },
  );
  app.get('/gated', customerGate(requireKey, limiters), (req, res) => {
    reached.count++;
    res.json({ customer: req.customerId });
  });
  app.post('/public', limiters.publicPerIp, (_req, res) => {
    reached.count++;
    res.json({ ok: true });
  });
  app.use(errorMiddleware(() => undefined));
  return { app, reached };
}

const limitsOf = (n: number): RateLimits => ({ perKey: n, publicPerIp: n, authFailuresPerIp: n });

forEachEngine('createRateLimiters', ({ engine, open, openAnother }) => {
  describe('per customer', () => {
    it('lets `limit` requests through in a minute, then answers 429 with Retry-After until the minute ends', async () => {
      const clock = startClock();
      const { app, reached } = instance(limitsOf(3), await open(), clock);
      for (let i = 0; i < 3; i++) {
        const ok = await request(app).get('/customer?customer=cus_a').expect(200);
        expect(ok.headers['ratelimit']).toBe(`"customer"; r=${2 - i}; t=50`);
        expect(ok.headers['ratelimit-policy']).toBe('"customer"; q=3; w=60');
      }
      const over = await request(app).get('/customer?customer=cus_a').expect(429);
      expect(over.body).toEqual({ error: { code: 'rate_limited', message: expect.stringContaining('at most 3 per minute per API key') } });
      expect(over.headers['retry-after']).toBe('50');
      expect(over.headers['ratelimit']).toBe('"customer"; r=0; t=50');
      expect(over.headers['ratelimit-policy']).toBe('"customer"; q=3; w=60');
      // Another customer has a budget of its own.
      await request(app).get('/customer?customer=cus_b').expect(200);
      clock.now += 49_000;
      const last = await request(app).get('/customer?customer=cus_a').expect(429);
      expect(last.headers['retry-after']).toBe('1');
      expect(last.headers['ratelimit']).toBe('"customer"; r=0; t=1');
      clock.now += 1_000; // the next minute starts
      expect((await request(app).get('/customer?customer=cus_a').expect(200)).headers['ratelimit']).toBe('"customer"; r=2; t=60');
      expect(reached.count).toBe(3 + 1 + 1);
    });
  });

  describe('with two instances on one database', () => {
    it('allows the limit once in total, not once per instance', async () => {
      const clock = startClock();
      const database = await open();
      const a = instance(limitsOf(5), database, clock);
      const b = instance(limitsOf(5), await openAnother(database), clock);
      const remaining: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await request(i % 2 ? b.app : a.app)
          .get('/customer?customer=cus_shared')
          .expect(200);
        remaining.push(res.headers['ratelimit']!);
      }
      // One count: each instance sees the other's requests.
      expect(remaining).toEqual([4, 3, 2, 1, 0].map((r) => `"customer"; r=${r}; t=50`));
      for (const app of [a.app, b.app]) {
        const over = await request(app).get('/customer?customer=cus_shared').expect(429);
        expect(over.body.error.code).toBe('rate_limited');
        expect(over.headers['retry-after']).toBe('50');
      }
      expect(a.reached.count + b.reached.count).toBe(5);
    });

    it('allows exactly the limit when both take requests at the same moment', async () => {
      const clock = startClock();
      const database = await open();
      const a = instance(limitsOf(7), database, clock);
      const b = instance(limitsOf(7), await openAnother(database), clock);
      const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => request(i % 2 ? b.app : a.app).get('/customer?customer=cus_race')));
      const statuses = answers.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 200)).toHaveLength(7);
      expect(statuses.filter((s) => s === 429)).toHaveLength(17);
      expect(a.reached.count + b.reached.count).toBe(7);
    });

    it('shares the per-address limit of the public route', async () => {
      const clock = startClock();
      const database = await open();
      const a = instance(limitsOf(2), database, clock);
      const b = instance(limitsOf(2), await openAnother(database), clock);
      await request(a.app).post('/public').expect(200);
      expect((await request(b.app).post('/public').expect(200)).headers['ratelimit']).toBe('"address"; r=0; t=50');
      const over = await request(a.app).post('/public').expect(429);
      expect(over.body.error.message).toContain('from one address');
      expect(over.headers['ratelimit-policy']).toBe('"address"; q=2; w=60');
    });

    it('counts failed authentications from one address across instances, and never holds back a valid key', async () => {
      const clock = startClock();
      const database = await open();
      const a = instance(limitsOf(3), database, clock);
      const b = instance(limitsOf(3), await openAnother(database), clock);
      const bad = { Authorization: 'Bearer nope' };
      expect((await request(a.app).get('/gated').set(bad).expect(401)).body.error.code).toBe('invalid_api_key');
      await request(b.app).get('/gated').set(bad).expect(401);
      const third = await request(a.app).get('/gated').set(bad).expect(401);
      expect(third.headers['ratelimit']).toBe('"auth-failures"; r=0; t=50');
      const over = await request(b.app).get('/gated').expect(429);
      expect(over.body.error.code).toBe('rate_limited');
      expect(over.headers['retry-after']).toBe('50');
      // The same address with a valid key: counted against its customer only.
      const ok = await request(a.app).get('/gated').set({ Authorization: 'Bearer good_cus_x' }).expect(200);
      expect(ok.body).toEqual({ customer: 'cus_x' });
      expect(ok.headers['ratelimit']).toBe('"customer"; r=2; t=50');
      await request(b.app).get('/gated').set({ Authorization: 'Bearer good_cus_x' }).expect(200);
    });
  });

  describe('when the database fails', () => {
    it('answers 503 database_unavailable with Retry-After, and neither passes the request nor crashes', async () => {
      const clock = startClock();
      const database = await open();
      const { app, reached } = instance(limitsOf(100), database, clock);
      await request(app).get('/customer?customer=cus_a').expect(200);
      await database.close();
      for (const path of ['/customer?customer=cus_a', '/public']) {
        const res = await request(app)[path === '/public' ? 'post' : 'get'](path).expect(503);
        expect(res.body.error.code).toBe('database_unavailable');
        expect(res.headers['retry-after']).toBe('5');
        expect(res.headers['ratelimit-policy']).toMatch(/q=100; w=60$/);
        expect(res.headers['ratelimit']).toBeUndefined();
      }
      // A failed authentication cannot be counted either: 503, not an uncounted 401.
      expect((await request(app).get('/gated').set({ Authorization: 'Bearer nope' }).expect(503)).body.error.code).toBe('database_unavailable');
      expect(reached.count).toBe(1);
    });
  });

  describe('pruning', () => {
    it('deletes the rows of past minutes once a new minute starts', async () => {
      // The library stamps rows with Date.now(): move the real clock, not only the window's.
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.UTC(2026, 0, 1, 12, 0, 10));
        const database = await open();
        const clock = {
          get now() {
            return Date.now();
          },
        };
        const { app } = instance(limitsOf(10), database, clock);
        await request(app).get('/customer?customer=cus_old').expect(200);
        await request(app).post('/public').expect(200);
        const keys = async () => (await database.db.selectFrom('rateLimits').select('key').orderBy('key').execute()).map((r) => r.key);
        expect(await keys()).toHaveLength(2);
        // Rows expire a minute after their first count (12:01:10) and are deleted a minute after that.
        vi.setSystemTime(Date.UTC(2026, 0, 1, 12, 2, 0));
        await request(app).get('/customer?customer=cus_mid').expect(200);
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(await keys()).toHaveLength(3);
        vi.setSystemTime(Date.UTC(2026, 0, 1, 12, 3, 0));
        await request(app).get('/customer?customer=cus_new').expect(200);
        await vi.waitFor(async () =>
          expect(await keys()).toEqual([
            `customer:${Math.floor(Date.now() / 60_000) - 1}:cus_mid`,
            `customer:${Math.floor(Date.now() / 60_000)}:cus_new`,
          ]),
        );
      } finally {
        vi.useRealTimers();
      }
    });
  });

  describe.runIf(engine === 'sqlite')('on the one SQLite connection the data layer uses', () => {
    it("leaves the connection's durability setting (synchronous=FULL) as it was", async () => {
      const database = await open();
      if (database.native.engine !== 'sqlite') throw new Error('not sqlite');
      const { app } = instance(limitsOf(10), database, startClock());
      await request(app).get('/customer?customer=cus_a').expect(200);
      await request(app).post('/public').expect(200);
      expect(database.native.sqlite.pragma('synchronous', { simple: true })).toBe(2);
    });

    it('counts while a transaction is open on the connection, and the count commits with it', async () => {
      const database = await open();
      const clock = startClock();
      const { app } = instance(limitsOf(10), database, clock);
      await database.db.transaction().execute(async (trx) => {
        await trx.insertInto('secrets').values({ name: 'during', value: 'x' }).execute();
        await request(app).get('/customer?customer=cus_tx').expect(200);
      });
      const row = await database.db
        .selectFrom('rateLimits')
        .select('points')
        .where('key', '=', `customer:${Math.floor(clock.now / 60_000)}:cus_tx`)
        .executeTakeFirst();
      expect(row).toEqual({ points: 1 });
      expect(database.native.engine === 'sqlite' && database.native.sqlite.pragma('synchronous', { simple: true })).toBe(2);
    });
  });

  it(`keeps its counts in the ${engine} database`, async () => {
    const clock = startClock();
    const database = await open();
    const { app } = instance(limitsOf(10), database, clock);
    await request(app).get('/customer?customer=cus_a').expect(200);
    await request(app).get('/customer?customer=cus_a').expect(200);
    const rows = await database.db.selectFrom('rateLimits').selectAll().execute();
    expect(rows).toEqual([{ key: `customer:${Math.floor(clock.now / 60_000)}:cus_a`, points: 2, expire: expect.any(Number) }]);
  });
});

describe('customerGate', () => {
  for (const [style, requireKey] of [
    ['synchronous', syncRequireKey],
    ['asynchronous', asyncRequireKey],
  ] as const) {
    describe(`with a ${style} requireKey`, () => {
      it('answers 401 for a bad key until the address failed too often, then 429; a good key still passes', async () => {
        const { app, reached } = instance(limitsOf(2), undefined, startClock(), requireKey);
        await request(app).get('/gated').expect(401);
        await request(app).get('/gated').set({ Authorization: 'Bearer bad' }).expect(401);
        await request(app).get('/gated').set({ Authorization: 'Bearer bad' }).expect(429);
        expect((await request(app).get('/gated').set({ Authorization: 'Bearer good_cus_a' }).expect(200)).body).toEqual({ customer: 'cus_a' });
        expect(reached.count).toBe(1);
      });
    });
  }

  it('passes any other error of requireKey through untouched', async () => {
    const failing: RequestHandler = async () => {
      throw new HttpError(503, 'database_unavailable', 'down');
    };
    const { app, reached } = instance(limitsOf(2), undefined, startClock(), failing);
    for (let i = 0; i < 3; i++) expect((await request(app).get('/gated').expect(503)).body.error.code).toBe('database_unavailable');
    expect(reached.count).toBe(0);
  });
});

describe('clientAddressKey', () => {
  it('keeps IPv4 addresses whole, also when IPv4-mapped', () => {
    expect(clientAddressKey('203.0.113.7')).toBe('203.0.113.7');
    expect(clientAddressKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
  });
  it('groups IPv6 addresses by /56, however they are written', () => {
    const a = clientAddressKey('2001:db8:85a3:12ab:0:8a2e:370:7334');
    expect(a).toBe('2001:db8:85a3:1200::/56');
    expect(clientAddressKey('2001:db8:85a3:12ff::1')).toBe(a);
    expect(clientAddressKey('2001:db8:85a3:1300::1')).not.toBe(a);
    expect(clientAddressKey('2001:db8::1')).toBe('2001:db8:0:0::/56');
    expect(clientAddressKey('::1')).toBe('0:0:0:0::/56');
    expect(clientAddressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/56');
  });
  it('has a key for a request with no address', () => {
    expect(clientAddressKey(undefined)).toBe('unknown');
  });
});
