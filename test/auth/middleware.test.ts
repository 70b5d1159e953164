import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, startTestStack, subscribe } from '../support/stack';

/** What a customer is told when its key is refused (src/auth/middleware.ts). */
describe('a refused API key', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  let key: string;
  beforeAll(async () => {
    stack = await startTestStack();
    ({ key } = await subscribe(stack, 'cut@example.com', 'Cut'));
  });
  afterAll(async () => {
    await stack?.close();
  });
  const refusal = async (presented: string) => {
    const res = await request(stack.url).get('/credits').set(bearer(presented)).expect(401);
    expect(res.body.error.code).toBe('invalid_api_key');
    return res.body.error.message as string;
  };

  it('cut at its first dot (what a double-click selects), or short of its end: says it looks cut', async () => {
    expect(await refusal(key.slice(0, key.indexOf('.')))).toMatch(/looks cut short.*Copy key/);
    expect(await refusal(key.slice(0, -5))).toMatch(/looks cut short/);
  });

  it('whole but wrong (a character changed, rotated): not valid', async () => {
    const changed = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
    expect(await refusal(changed)).toBe('This API key is not valid (mistyped, rotated or revoked).');
    expect(await refusal('not-a-mailkit-key')).toBe('This API key is not valid (mistyped, rotated or revoked).');
  });
});
