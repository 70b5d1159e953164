import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database } from '../db/index';
import { bumpKeyEpoch, keyEpoch } from '../db/key-epochs';

/**
 * Customer API keys: `mk_<env>_<customer>.<epoch>.<nonce>.<mac>`.
 *
 * The mac is HMAC-SHA256(server secret, everything before it), so a key cannot be forged
 * without the secret and needs no stored record: the operator's `npm run key` can mint one
 * from another process without touching the server's state. Revocation:
 * - one customer: rotating bumps the customer's epoch; keys of older epochs stop working;
 * - everyone: rotating the server secret (MAILKIT_KEY_SECRET) invalidates every key.
 * The mac is compared in constant time; keys are never stored or logged. The epoch lives in
 * the database, read on every verification, so a rotation on one instance revokes the old key
 * on all of them at once.
 */
export interface ApiKeys {
  /** Mints a new key for the customer at its current epoch. */
  mint(customerId: string): Promise<string>;
  /**
   * The key for a subscription: the same subscription always yields the same key, so a
   * redelivered `subscription.active` re-sends it instead of minting another. Null once the
   * customer has rotated (the emailed key would be dead).
   */
  forSubscription(customerId: string, subscriptionId: string): Promise<string | null>;
  /** The customer a presented key belongs to, or null (malformed, forged, revoked). */
  verify(presented: string): Promise<string | null>;
  /** Revokes every key of the customer and returns a fresh one. */
  rotate(customerId: string): Promise<string>;
}

const KEY_PATTERN = /^mk_(test|live)_([A-Za-z0-9_-]{1,128})\.(\d{1,9})\.([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{43})$/;

/** Builds the key service. `env` is `test` (sandbox, Dodo test mode) or `live`; a test key never works live. */
export function createApiKeys(opts: { database: Database; secret: string; env: 'test' | 'live' }): ApiKeys {
  const { database, secret, env } = opts;

  const sign = (body: string) => createHmac('sha256', secret).update(body).digest('base64url');
  const build = (customerId: string, epoch: number, nonce: string) => {
    const body = `mk_${env}_${Buffer.from(customerId).toString('base64url')}.${epoch}.${nonce}`;
    return `${body}.${sign(body)}`;
  };

  return {
    mint: async (customerId) => build(customerId, await keyEpoch(database, customerId), randomBytes(16).toString('base64url')),
    async forSubscription(customerId, subscriptionId) {
      if ((await keyEpoch(database, customerId)) > 0) return null;
      // Derived, not random: every instance sharing the secret derives the same key.
      return build(customerId, 0, sign(`subscription:${subscriptionId}`).slice(0, 22));
    },
    async verify(presented) {
      const m = KEY_PATTERN.exec(presented);
      if (!m || m[1] !== env) return null;
      const body = presented.slice(0, presented.lastIndexOf('.'));
      const expected = Buffer.from(sign(body));
      const given = Buffer.from(m[5]!);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
      const customerId = Buffer.from(m[2]!, 'base64url').toString('utf8');
      // The mac is checked first: a forged key costs no database read.
      return Number(m[3]) === (await keyEpoch(database, customerId)) ? customerId : null;
    },
    async rotate(customerId) {
      const epoch = await bumpKeyEpoch(database, customerId);
      return build(customerId, epoch, randomBytes(16).toString('base64url'));
    },
  };
}
