import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureCatalog } from '../../src/billing/catalog';
import { startTestStack } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe('ensureCatalog', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('finds the existing catalog by name instead of duplicating it, even past the first page', async () => {
    // 120 newer products push the plan and the top-up onto the second page of the list.
    for (let i = 0; i < 120; i++) {
      await stack.dodo.products.create({
        name: `Other product ${i}`,
        tax_category: 'saas',
        price: { type: 'one_time_price', price: 100, currency: 'USD', discount: 0, purchasing_power_parity: false },
      });
    }
    const again = await ensureCatalog(stack.dodo);
    expect(again.created).toEqual([]);
    const { creditEntitlementId, planProductId, topupProductId } = stack.catalog;
    expect(again).toMatchObject({ creditEntitlementId, planProductId, topupProductId });
    const names: string[] = [];
    for await (const p of stack.dodo.products.list({ page_number: 0, page_size: 100 })) names.push(p.name ?? '');
    expect(names.filter((n) => n === 'MailKit Plan')).toHaveLength(1);
  });
});
