import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config';
import { LIVE_ENV, startTestStack } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * The rate limits count by client address. Who may name that address in X-Forwarded-For is
 * TRUST_PROXY: with it off, a client forging the header is still one client.
 */
describe('TRUST_PROXY', () => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  /** `n` failed authentications, each with its own forged X-Forwarded-For; their statuses. */
  const forgedFailures = async (n: number) => {
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await request(stack!.url)
        .get('/credits')
        .set('Authorization', `Bearer mk_test_guess${i}.1.x.y`)
        .set('X-Forwarded-For', `198.51.100.${i}`);
      statuses.push(r.status);
    }
    return statuses;
  };

  it('is off by default in sandbox mode: 200 forged X-Forwarded-For headers share one bucket and meet a 429', async () => {
    stack = await startTestStack({ RATE_LIMIT_AUTH_FAILURES_PER_IP: '60' });
    const statuses = await forgedFailures(200);
    expect(statuses.slice(0, 60).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(60).every((s) => s === 429)).toBe(true);
  });

  it('TRUST_PROXY=false: the same', async () => {
    stack = await startTestStack({ TRUST_PROXY: 'false', RATE_LIMIT_AUTH_FAILURES_PER_IP: '3' });
    expect(await forgedFailures(5)).toEqual([401, 401, 401, 429, 429]);
  });

  it('TRUST_PROXY=loopback (ngrok, or a reverse proxy on this machine): each forwarded client has its own bucket', async () => {
    stack = await startTestStack({ TRUST_PROXY: 'loopback', RATE_LIMIT_AUTH_FAILURES_PER_IP: '3' });
    expect(await forgedFailures(5)).toEqual([401, 401, 401, 401, 401]);
    // The proxy appends the address it saw: the client's own claim before it is not believed.
    const behindProxy = (claimed: string) =>
      request(stack!.url).get('/credits').set('Authorization', 'Bearer mk_test_x.1.x.y').set('X-Forwarded-For', `${claimed}, 203.0.113.9`);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await behindProxy(`10.0.0.${i}`)).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
  });

  describe('parsing', () => {
    const sandbox = (v?: string) => loadConfig(v === undefined ? {} : { TRUST_PROXY: v }).trustProxy;
    it('defaults to off in sandbox mode and to loopback live', () => {
      expect(sandbox()).toBe(false);
      expect(sandbox('')).toBe(false);
      expect(loadConfig(LIVE_ENV).trustProxy).toEqual(['loopback']);
      expect(loadConfig({ ...LIVE_ENV, TRUST_PROXY: 'off' }).trustProxy).toBe(false);
    });
    it('takes off, a number of proxies, or addresses, subnets and presets', () => {
      expect(sandbox('false')).toBe(false);
      expect(sandbox('0')).toBe(false);
      expect(sandbox('1')).toBe(1);
      expect(sandbox('loopback')).toEqual(['loopback']);
      expect(sandbox('10.0.0.5, 192.168.0.0/16,fd00::/8 , uniquelocal')).toEqual(['10.0.0.5', '192.168.0.0/16', 'fd00::/8', 'uniquelocal']);
    });
    it('refuses true and anything that is not an address, naming the variable', () => {
      expect(() => sandbox('true')).toThrow(ConfigError);
      expect(() => sandbox('true')).toThrow(/TRUST_PROXY=true/);
      expect(() => sandbox('10.0.0.300')).toThrow(/TRUST_PROXY: "10\.0\.0\.300"/);
      expect(() => sandbox('10.0.0.0/33')).toThrow(/TRUST_PROXY/);
      expect(() => sandbox('proxy.internal')).toThrow(/TRUST_PROXY/);
    });
  });
});
