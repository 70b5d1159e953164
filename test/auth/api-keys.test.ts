import { describe, expect, it } from 'vitest';
import { createApiKeys } from '../../src/auth/api-keys';
import { openDatabase } from '../../src/db/index';

const setup = async (secret = 's'.repeat(32), env: 'test' | 'live' = 'test') => {
  const database = await openDatabase({ file: ':memory:' });
  return { database, keys: createApiKeys({ database, secret, env }) };
};

describe('API keys', () => {
  it('a minted key verifies to its customer', async () => {
    const { keys } = await setup();
    const key = await keys.mint('cus_abc123');
    expect(key).toMatch(/^mk_test_/);
    expect(await keys.verify(key)).toBe('cus_abc123');
  });

  it('a key with any character changed does not verify', async () => {
    const { keys } = await setup();
    const key = await keys.mint('cus_abc123');
    for (const i of [10, key.length - 1, key.indexOf('.') - 1]) {
      const c = key[i] === 'A' ? 'B' : 'A';
      expect(await keys.verify(key.slice(0, i) + c + key.slice(i + 1))).toBeNull();
    }
  });

  it('cannot be forged to name another customer: swapping the customer part breaks the mac', async () => {
    const { keys } = await setup();
    const key = await keys.mint('cus_alice');
    const other = Buffer.from('cus_bob').toString('base64url');
    const forged = key.replace(Buffer.from('cus_alice').toString('base64url'), other);
    expect(await keys.verify(forged)).toBeNull();
  });

  it('a key minted under another server secret does not verify (rotating the secret revokes all)', async () => {
    const a = await setup('a'.repeat(32));
    const b = await setup('b'.repeat(32));
    expect(await b.keys.verify(await a.keys.mint('cus_x'))).toBeNull();
  });

  it('a test key is refused by a live deployment', async () => {
    const secret = 'k'.repeat(32);
    const testKey = await (await setup(secret, 'test')).keys.mint('cus_x');
    expect(await (await setup(secret, 'live')).keys.verify(testKey)).toBeNull();
  });

  it('rotating revokes every earlier key of that customer only', async () => {
    const { keys } = await setup();
    const old1 = await keys.mint('cus_a');
    const old2 = await keys.mint('cus_a');
    const other = await keys.mint('cus_b');
    const fresh = await keys.rotate('cus_a');
    expect(await keys.verify(old1)).toBeNull();
    expect(await keys.verify(old2)).toBeNull();
    expect(await keys.verify(fresh)).toBe('cus_a');
    expect(await keys.verify(other)).toBe('cus_b');
  });

  it('the subscription key is stable for redeliveries and withheld after a rotation', async () => {
    const { keys } = await setup();
    const k1 = await keys.forSubscription('cus_a', 'sub_1');
    expect(await keys.forSubscription('cus_a', 'sub_1')).toBe(k1);
    expect(await keys.verify(k1!)).toBe('cus_a');
    await keys.rotate('cus_a');
    expect(await keys.forSubscription('cus_a', 'sub_1')).toBeNull();
    expect(await keys.verify(k1!)).toBeNull();
  });

  it('a rotation is seen at once by another instance on the same database', async () => {
    const { database, keys } = await setup();
    const other = createApiKeys({ database, secret: 's'.repeat(32), env: 'test' });
    const old = await keys.mint('cus_a');
    expect(await other.verify(old)).toBe('cus_a');
    const fresh = await other.rotate('cus_a');
    expect(await keys.verify(old)).toBeNull();
    expect(await keys.verify(fresh)).toBe('cus_a');
  });

  it('garbage is refused without throwing', async () => {
    const { keys } = await setup();
    for (const junk of ['', 'mk_test_', 'Bearer x', 'mk_test_a.b.c.d', 'x'.repeat(5000), 'mk_live_' + 'a'.repeat(80)]) {
      expect(await keys.verify(junk)).toBeNull();
    }
  });
});
