import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DodoState } from '../../../src/sandbox/dodo/state';
import { provision, startHarness, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

const newSession = async (returnUrl?: string) => {
  const { plan } = await provision(h.client);
  return h.client.checkoutSessions.create({
    product_cart: [{ product_id: plan.product_id, quantity: 1 }],
    customer: { email: 'ada@example.com', name: 'Ada' },
    ...(returnUrl ? { return_url: returnUrl } : {}),
  });
};

const press = (checkoutUrl: string, action: 'pay' | 'decline', headers: Record<string, string> = {}) =>
  fetch(`${checkoutUrl}/${action}`, { method: 'POST', redirect: 'manual', headers });

describe('checkout return_url', () => {
  it.each(['javascript:alert(document.domain)', 'JavaScript://%0aalert(1)', 'data:text/html,<script>alert(1)</script>', 'ftp://example.com/x'])(
    '%s is refused with 422 when the session is created',
    async (returnUrl) => {
      await expect(newSession(returnUrl)).rejects.toMatchObject({ status: 422, error: { code: 'INVALID_REQUEST_BODY' } });
    },
  );

  it('http and https return URLs are followed after paying', async () => {
    const session = await newSession('https://mailkit.test/done');
    const paid = await press(session.checkout_url!, 'pay');
    expect(paid.status).toBe(303);
    expect(paid.headers.get('location')).toMatch(/^https:\/\/mailkit\.test\/done\?status=succeeded&/);
  });

  it('a javascript: URL stored before the check is never redirected to: the session page instead', async () => {
    const session = await newSession('https://mailkit.test/done');
    (h.sb.state() as DodoState).sessions[session.session_id]!.return_url = 'javascript:alert(1)';
    const paid = await press(session.checkout_url!, 'pay');
    expect(paid.status).toBe(303);
    expect(paid.headers.get('location')).toBe(`/sandbox/checkout/${session.session_id}`);
  });
});

describe('a cross-site post to the checkout page', () => {
  it.each([
    ['Sec-Fetch-Site: cross-site', { 'Sec-Fetch-Site': 'cross-site' }],
    ['Sec-Fetch-Site: same-site', { 'Sec-Fetch-Site': 'same-site' }],
    ['an Origin of another site', { Origin: 'http://evil.example' }],
    ['Origin: null', { Origin: 'null' }],
  ])('(%s) is refused with 403, and nothing is paid or declined', async (_name, headers) => {
    const session = await newSession('https://mailkit.test/done');
    for (const action of ['pay', 'decline'] as const) {
      const res = await press(session.checkout_url!, action, headers);
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('Cross-site request refused');
    }
    const status = await h.client.checkoutSessions.retrieve(session.session_id);
    expect(status).toMatchObject({ payment_status: null, payment_id: null });
    await h.sb.webhooks.idle();
    expect(h.received).toEqual([]);
  });

  it.each([
    ['Sec-Fetch-Site: same-origin', () => ({ 'Sec-Fetch-Site': 'same-origin' })],
    ['its own Origin', () => ({ Origin: h.baseUrl })],
    ['no browser headers (curl)', () => ({})],
  ])('(%s) pays', async (_name, headers) => {
    const session = await newSession('https://mailkit.test/done');
    const res = await press(session.checkout_url!, 'pay', headers());
    expect(res.status).toBe(303);
    expect((await h.client.checkoutSessions.retrieve(session.session_id)).payment_status).toBe('succeeded');
  });
});
