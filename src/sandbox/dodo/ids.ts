import { randomInt } from 'node:crypto';

const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Dodo-style id: a resource prefix, `_`, then 21 random base62 characters (e.g. `cus_8VbC6JDZzPEqfBPUdpj0K`);
 * `length` changes the count (Svix message ids have 27).
 */
export function newId(prefix: string, length = 21): string {
  let out = '';
  // randomInt is unbiased, unlike `bytes[i] % 62`.
  for (let i = 0; i < length; i += 1) out += alphabet[randomInt(alphabet.length)];
  return `${prefix}_${out}`;
}
