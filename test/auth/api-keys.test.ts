import { describe, expect, it } from 'vitest';
import { createApiKeys } from '../../src/auth/api-keys';
import { createAppStore } from '../../src/state';

const setup = (secret = 's'.repeat(32), env: 'test' | 'live' = 'test') => {
  const store = createAppStore(null);
  return { store, keys: createApiKeys({ store, secret, env }) };
};

describe('API keys', () => {
  it('a minted key verifies to its customer', () => {
    const { keys } = setup();
    const key = keys.mint('cus_abc123');
    expect(key).toMatch(/^mk_test_/);
    expect(keys.verify(key)).toBe('cus_abc123');
  });

  it('a key with any character changed does not verify', () => {
    const { keys } = setup();
    const key = keys.mint('cus_abc123');
    for (const i of [10, key.length - 1, key.indexOf('.') - 1]) {
      const c = key[i] === 'A' ? 'B' : 'A';
      expect(keys.verify(key.slice(0, i) + c + key.slice(i + 1))).toBeNull();
    }
  });

  it("cannot be forged to name another customer: swapping the customer part breaks the mac", () => {
    const { keys } = setup();
    const key = keys.mint('cus_alice');
    const other = Buffer.from('cus_bob').toString('base64url');
    const forged = key.replace(Buffer.from('cus_alice').toString('base64url'), other);
    expect(keys.verify(forged)).toBeNull();
  });

  it('a key minted under another server secret does not verify (rotating the secret revokes all)', () => {
    const a = setup('a'.repeat(32));
    const b = setup('b'.repeat(32));
    expect(b.keys.verify(a.keys.mint('cus_x'))).toBeNull();
  });

  it('a test key is refused by a live deployment', () => {
    const secret = 'k'.repeat(32);
    const testKey = setup(secret, 'test').keys.mint('cus_x');
    expect(setup(secret, 'live').keys.verify(testKey)).toBeNull();
  });

  it('rotating revokes every earlier key of that customer only', () => {
    const { keys } = setup();
    const old1 = keys.mint('cus_a');
    const old2 = keys.mint('cus_a');
    const other = keys.mint('cus_b');
    const fresh = keys.rotate('cus_a');
    expect(keys.verify(old1)).toBeNull();
    expect(keys.verify(old2)).toBeNull();
    expect(keys.verify(fresh)).toBe('cus_a');
    expect(keys.verify(other)).toBe('cus_b');
  });

  it('the subscription key is stable for redeliveries and withheld after a rotation', () => {
    const { keys } = setup();
    const k1 = keys.forSubscription('cus_a', 'sub_1');
    expect(keys.forSubscription('cus_a', 'sub_1')).toBe(k1);
    expect(keys.verify(k1!)).toBe('cus_a');
    keys.rotate('cus_a');
    expect(keys.forSubscription('cus_a', 'sub_1')).toBeNull();
    expect(keys.verify(k1!)).toBeNull();
  });

  it('garbage is refused without throwing', () => {
    const { keys } = setup();
    for (const junk of ['', 'mk_test_', 'Bearer x', 'mk_test_a.b.c.d', 'x'.repeat(5000), 'mk_live_' + 'a'.repeat(80)]) {
      expect(keys.verify(junk)).toBeNull();
    }
  });
});
