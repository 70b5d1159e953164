import { describe, expect, it } from 'vitest';
import { cachedBalance, dodoTimeUs, recordBalance, recordUndatedBalance, unconfirmBalanceOf, type BalanceFact } from '../../src/db/balances';
import { forEachEngine } from '../support/database';

const T = dodoTimeUs('2026-05-14T09:00:00.000000Z');
const webhook = (balance: string, asOfUs: number): BalanceFact => ({ customerId: 'cus_1', balance, asOfUs, source: 'webhook:credit.deducted', issuedAt: null });
const debit = (balance: string, asOfUs: number, issuedAt: number): BalanceFact => ({ customerId: 'cus_1', balance, asOfUs, source: 'debit', issuedAt });
const read = (balance: string, asOfUs: number, issuedAt: number): BalanceFact => ({ customerId: 'cus_1', balance, asOfUs, source: 'read', issuedAt, isRead: true });

describe('dodoTimeUs', () => {
  it('keeps the microseconds Dodo writes, and reads offsets', () => {
    expect(dodoTimeUs('2026-05-14T09:00:00.123456Z') - dodoTimeUs('2026-05-14T09:00:00.123Z')).toBe(456);
    expect(dodoTimeUs('2026-05-14T11:00:00+02:00')).toBe(dodoTimeUs('2026-05-14T09:00:00Z'));
    expect(dodoTimeUs(null)).toBe(0);
    expect(dodoTimeUs('yesterday')).toBe(0);
  });
});

forEachEngine('balance cache rows', (under) => {
  it('a webhook older than the stored balance changes nothing, a newer one replaces it', async () => {
    const db = await under.open();
    await recordBalance(db, read('5000', T, 1_000), 1_001);
    await recordBalance(db, webhook('4700', T + 2), 1_002);
    await recordBalance(db, webhook('4900', T + 1), 1_003); // late
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '4700', asOfUs: T + 2, source: 'webhook:credit.deducted', confirmedAt: 1_001 });
  });

  it('the same fact twice (a debit answer and its webhook, either order) stays confirmed', async () => {
    const db = await under.open();
    await recordBalance(db, webhook('4999', T), 1_000);
    expect((await cachedBalance(db, 'cus_1'))?.confirmedAt).toBeNull();
    await recordBalance(db, debit('4999', T, 999), 1_001);
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '4999', confirmedAt: 1_001 });
    await recordBalance(db, webhook('4999', T), 1_002);
    expect((await cachedBalance(db, 'cus_1'))?.confirmedAt).toBe(1_001);
  });

  it('two entries of one instant that disagree leave the value unconfirmed, so the next request reads Dodo', async () => {
    const db = await under.open();
    await recordBalance(db, debit('98', T, 1_000), 1_010);
    await recordBalance(db, debit('99', T, 1_005), 1_011); // sent before the first answer was written
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '98', confirmedAt: null });
  });

  it('a read at the same instant wins: it sums every entry of that instant', async () => {
    const db = await under.open();
    await recordBalance(db, webhook('99', T), 1_000);
    await recordBalance(db, read('98', T, 999), 1_001);
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '98', source: 'read', confirmedAt: 1_001 });
  });

  it('a read sent after the stored value was written replaces it even when Dodo dates it earlier', async () => {
    const db = await under.open();
    await recordBalance(db, webhook('4000', T + 10), 1_000);
    await recordBalance(db, read('3000', T + 5, 1_001), 1_002);
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '3000', source: 'read', confirmedAt: 1_002 });
  });

  it('a read sent before a newer fact was written, and answered after it, changes nothing', async () => {
    const db = await under.open();
    await recordBalance(db, read('5000', T, 900), 950);
    await recordBalance(db, debit('4999', T + 1, 1_000), 1_010);
    await recordBalance(db, read('5000', T, 1_005), 1_020); // in flight across the debit
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '4999', source: 'debit', confirmedAt: 1_010 });
  });

  it('many facts recorded at once from two connections end on the newest', async () => {
    const db = await under.open();
    const other = await under.openAnother(db);
    const order = Array.from({ length: 40 }, (_, i) => i).sort(() => Math.random() - 0.5);
    await Promise.all(order.map((i) => recordBalance(i % 2 ? db : other, webhook(String(5000 - i), T + i), 1_000 + i)));
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '4961', asOfUs: T + 39 });
  });

  it('credit.balance_low never replaces a balance: agreeing changes nothing, disagreeing has it read again', async () => {
    const db = await under.open();
    await recordUndatedBalance(db, 'cus_1', '999', 'webhook:credit.balance_low', 1_000);
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '999', asOfUs: 0, confirmedAt: null });
    await recordBalance(db, webhook('998', T), 1_001); // any dated fact replaces it
    await recordBalance(db, debit('998', T, 1_002), 1_003);
    await recordUndatedBalance(db, 'cus_1', '998', 'webhook:credit.balance_low', 1_004);
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '998', confirmedAt: 1_003 });
    await recordUndatedBalance(db, 'cus_1', '999', 'webhook:credit.balance_low', 1_005); // late
    expect(await cachedBalance(db, 'cus_1')).toMatchObject({ balance: '998', confirmedAt: null });
  });

  it('a refused debit unconfirms a cached balance that claimed enough credits', async () => {
    const db = await under.open();
    await recordBalance(db, read('5', T, 1_000), 1_001);
    await unconfirmBalanceOf(db, 'cus_1', 10);
    expect((await cachedBalance(db, 'cus_1'))?.confirmedAt).toBe(1_001);
    await unconfirmBalanceOf(db, 'cus_1', 5);
    expect((await cachedBalance(db, 'cus_1'))?.confirmedAt).toBeNull();
  });
});

forEachEngine('migration 004_balance_cache', (under) => {
  it('runs on a database that already ran 005_flights (the branches landed in that order)', async () => {
    const db = await under.open();
    // Take the database back to before 004, as a server built from main before this branch left it.
    await db.db.schema.dropTable('usage_cache').execute();
    await db.db.schema.dropTable('balance_cache').execute();
    await db.db.deleteFrom('kyselyMigration' as never).where('name' as never, '=', '004_balance_cache' as never).execute();
    await db.close();
    const reopened = await under.openAnother(db);
    await recordBalance(reopened, read('5000', T, 1_000), 1_001);
    expect((await cachedBalance(reopened, 'cus_1'))?.balance).toBe('5000');
  });
});
