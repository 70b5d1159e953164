import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { errorMiddleware } from '../src/errors';
import { clientAddressKey, createRateLimiters } from '../src/rate-limits';

/** An app whose only route is behind the per-customer limiter, on a clock the test moves. */
function limitedApp(limit: number) {
  const clock = { now: Date.UTC(2026, 0, 1, 12, 0, 10) };
  const limiters = createRateLimiters({ perKey: limit, publicPerIp: limit, authFailuresPerIp: limit }, () => clock.now);
  const app = express();
  app.get('/', (req, _res, next) => {
    req.customerId = String(req.query.customer);
    next();
  }, limiters.perKey, (_req, res) => {
    res.json({ ok: true });
  });
  app.use(errorMiddleware(() => undefined));
  return { app, clock };
}

describe('createRateLimiters', () => {
  describe('per customer', () => {
    it('lets `limit` requests through in a minute, then answers 429 with Retry-After until the minute ends', async () => {
      const { app, clock } = limitedApp(3);
      for (let i = 0; i < 3; i++) {
        const ok = await request(app).get('/?customer=cus_a').expect(200);
        expect(ok.headers['ratelimit']).toBe(`"customer"; r=${2 - i}; t=50`);
        expect(ok.headers['ratelimit-policy']).toBe('"customer"; q=3; w=60');
      }
      const over = await request(app).get('/?customer=cus_a').expect(429);
      expect(over.body.error.code).toBe('rate_limited');
      expect(over.headers['retry-after']).toBe('50');
      // Another customer has a budget of its own.
      await request(app).get('/?customer=cus_b').expect(200);
      clock.now += 49_000;
      expect((await request(app).get('/?customer=cus_a').expect(429)).headers['retry-after']).toBe('1');
      clock.now += 1_000; // the next minute starts
      await request(app).get('/?customer=cus_a').expect(200);
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
});
