import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config';

const live = {
  DODO_PAYMENTS_API_KEY: 'dodo_test_abc',
  DODO_WEBHOOK_KEY: 'whsec_abc',
  CREDIT_ENTITLEMENT_ID: 'cde_abc',
  PLAN_PRODUCT_ID: 'pdt_plan',
  TOPUP_PRODUCT_ID: 'pdt_topup',
  RESEND_API_KEY: 're_abc',
  RESEND_WEBHOOK_SECRET: 'whsec_resend',
  MAILKIT_KEY_SECRET: 'a'.repeat(40),
};

describe('loadConfig', () => {
  describe('with an empty environment', () => {
    it('runs on the sandbox, on loopback, port 3000', () => {
      const c = loadConfig({});
      expect(c).toMatchObject({ mode: 'sandbox', port: 3000, host: '127.0.0.1', baseUrl: 'http://localhost:3000', dataDir: '.data' });
      expect(Object.isFrozen(c)).toBe(true);
    });
  });

  describe('with a Dodo key', () => {
    it('runs live when every variable is present, listening on all interfaces', () => {
      const c = loadConfig(live);
      expect(c.mode).toBe('live');
      expect(c.host).toBe('0.0.0.0');
      expect(c.dodo).toMatchObject({ environment: 'test_mode', creditEntitlementId: 'cde_abc' });
    });

    it('names every missing variable at once', () => {
      let message = '';
      try {
        loadConfig({ DODO_PAYMENTS_API_KEY: 'dodo_test_abc', RESEND_API_KEY: 're_abc' });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = (err as Error).message;
      }
      for (const name of ['DODO_WEBHOOK_KEY', 'CREDIT_ENTITLEMENT_ID', 'PLAN_PRODUCT_ID', 'TOPUP_PRODUCT_ID']) {
        expect(message).toContain(`${name} is missing`);
      }
      // Not the tutorial's: optional live (a Resend webhook is off without its secret; the key
      // secret is generated into the database).
      for (const name of ['RESEND_API_KEY', 'RESEND_WEBHOOK_SECRET', 'MAILKIT_KEY_SECRET']) expect(message).not.toContain(`${name} is missing`);
    });

    it('refuses a short key secret', () => {
      expect(() => loadConfig({ ...live, MAILKIT_KEY_SECRET: 'short' })).toThrow(/MAILKIT_KEY_SECRET must be at least 32/);
    });
  });

  it("refuses the tutorial's placeholders, naming the variable", () => {
    expect(() => loadConfig({ CREDIT_ENTITLEMENT_ID: 'cent_xxxxxxxxxxxx' })).toThrow(/CREDIT_ENTITLEMENT_ID still holds the placeholder/);
    expect(() => loadConfig({ DODO_PAYMENTS_API_KEY: 'your_dodo_test_api_key' })).toThrow(/DODO_PAYMENTS_API_KEY/);
  });

  it('refuses a malformed PORT or BASE_URL', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ BASE_URL: 'ftp://x' })).toThrow(/BASE_URL/);
  });

  describe('sandbox quotas', () => {
    it("are off by default (the burst is Dodo tier 0's, used once a rate is set)", () => {
      expect(loadConfig({}).sandbox).toMatchObject({ resendRateLimit: 0, dodoRateLimit: { perMinute: 0, burst: 40 } });
    });

    it('take the real quotas from SANDBOX_RESEND_RATE_LIMIT, SANDBOX_DODO_RATE_LIMIT and SANDBOX_DODO_BURST', () => {
      const c = loadConfig({ SANDBOX_RESEND_RATE_LIMIT: '2', SANDBOX_DODO_RATE_LIMIT: '240', SANDBOX_DODO_BURST: '40' });
      expect(c.sandbox).toMatchObject({ resendRateLimit: 2, dodoRateLimit: { perMinute: 240, burst: 40 } });
      expect(Object.isFrozen(c.sandbox.dodoRateLimit)).toBe(true);
    });

    it('read an empty SANDBOX_DODO_BURST as unset', () => {
      expect(loadConfig({ SANDBOX_DODO_RATE_LIMIT: '60', SANDBOX_DODO_BURST: '' }).sandbox.dodoRateLimit).toEqual({ perMinute: 60, burst: 40 });
    });

    it('refuse a negative rate, a burst under 1 and non-numbers, naming the variable', () => {
      expect(() => loadConfig({ SANDBOX_DODO_RATE_LIMIT: '-1' })).toThrow(/SANDBOX_DODO_RATE_LIMIT/);
      expect(() => loadConfig({ SANDBOX_DODO_BURST: '0' })).toThrow(/SANDBOX_DODO_BURST/);
      expect(() => loadConfig({ SANDBOX_DODO_RATE_LIMIT: 'tier0' })).toThrow(/SANDBOX_DODO_RATE_LIMIT/);
    });
  });

  it('treats empty values (a copied .env.example) as unset', () => {
    expect(loadConfig({ DODO_PAYMENTS_API_KEY: '', RESEND_API_KEY: '', BASE_URL: '' }).mode).toBe('sandbox');
  });
});
