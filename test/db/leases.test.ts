import { expect, it } from 'vitest';
import { insertLease, leasesToReturn, type LeaseRow } from '../../src/db/leases';
import { forEachEngine } from '../support/database';

const lease = (id: string, customerId: string, lastUsedAt: number): LeaseRow => ({
  id,
  customerId,
  nonce: 'n',
  state: 'active',
  credits: 100,
  spent: 10,
  returnCredits: null,
  returnExpiresAt: null,
  emailsAhead: 90,
  inDoubt: 0,
  owner: 'me',
  claimedUntil: null,
  createdAt: lastUsedAt,
  updatedAt: lastUsedAt,
  lastUsedAt,
});

forEachEngine('idle leases', (under) => {
  it('are returned once their customer spends from none of its leases, not while it spends from another', async () => {
    const database = await under.open();
    // cus_a spends from its older lease; the one taken ahead of it waits, unused: not idle.
    await insertLease(database, lease('lse_a_old', 'cus_a', 1_000));
    await insertLease(database, lease('lse_a_next', 'cus_a', 100));
    // cus_b has sent nothing since its lease was last used.
    await insertLease(database, lease('lse_b', 'cus_b', 100));
    const idle = await leasesToReturn(database, { idleBefore: 500 }, 10);
    expect(idle.map((l) => l.id)).toEqual(['lse_b']);
    // Once cus_a is idle too, both of its leases go back.
    expect((await leasesToReturn(database, { idleBefore: 2_000 }, 10)).map((l) => l.id).sort()).toEqual(['lse_a_next', 'lse_a_old', 'lse_b']);
  });
});
