import { sql } from 'kysely';
import type { Database } from '../db/index';
import type { Logger } from '../logger';
import { InsufficientCredits, type Billing } from './billing';

/**
 * Credit leases (before the balance MailKit keeps) held credits debited from Dodo ahead of the
 * emails. A database that still has open ones gets them settled with Dodo once, at startup,
 * under the keys and bodies the lease code used: a lease whose debit was left unanswered is
 * asked again (it exists, or it does not), and what an open lease did not spend is credited
 * back with the expiry it carried (or the soonest of the customer's live grants, as leases
 * did). Then the table goes. Until every open lease is settled (Dodo unreachable), MailKit
 * starts anyway and asks again at the next start: sends are paid from the balance meanwhile,
 * seeded from Dodo's grants without those credits (the customer is short of them until then).
 */
export async function settleLegacyLeases(deps: { database: Database; billing: Billing; log?: Logger }): Promise<void> {
  const { database, billing, log } = deps;
  const db = database.db;
  if (!(await hasLeasesTable(database))) return;
  const open = await db.selectFrom('leases').selectAll().where('state', '<>', 'closed').execute();
  let left = 0;
  for (const l of open) {
    const key = `${l.id}.${l.nonce}`;
    try {
      let spent = l.spent;
      if (l.state === 'reserving') {
        const reason =
          l.emailsAhead === 0
            ? `emails: ${l.credits} credit${l.credits === 1 ? '' : 's'} for the emails being sent (lease ${l.id})`
            : `lease ${l.id}: ${l.credits} credits, ${l.credits - l.emailsAhead} for the emails being sent and ${l.emailsAhead} ahead; ` +
              'unspent credits are returned';
        try {
          await billing.reserve(l.customerId, l.credits, `${key}:debit`, reason, { metadata: { mailkit_lease: l.id, mailkit_entry: 'lease' } });
        } catch (err) {
          if (!(err instanceof InsufficientCredits)) throw err;
          spent = l.credits; // no debit under its key: nothing to give back
        }
      }
      const back = l.state === 'returning' ? (l.returnCredits ?? 0) : l.credits - spent;
      if (back > 0) {
        const expiry = l.returnExpiresAt ?? soonest(await billing.grants(l.customerId));
        if (expiry === 'never' || Date.parse(expiry) > Date.now()) {
          await billing.refund(l.customerId, back, `${key}:return`, `lease ${l.id} returned: ${back} of ${l.credits} credits unspent`, {
            metadata: { mailkit_lease: l.id, mailkit_entry: 'lease_return' },
            expiresAt: expiry === 'never' ? null : expiry,
          });
        }
      }
      await db.updateTable('leases').set({ state: 'closed', updatedAt: Date.now() }).where('id', '=', l.id).execute();
      log?.info({ leaseId: l.id, customerId: l.customerId, returned: back }, 'legacy credit lease settled');
    } catch (err) {
      left++;
      log?.warn({ leaseId: l.id, err }, 'legacy credit lease left open: settled at the next start');
    }
  }
  if (left === 0) await sql`drop table leases`.execute(db);
}

/** Whether this database (its schema, on PostgreSQL) still has the leases table. */
async function hasLeasesTable(database: Database): Promise<boolean> {
  try {
    await database.db.selectFrom('leases').select('id').limit(1).execute();
    return true;
  } catch (err) {
    if (/does not exist|no such table/i.test((err as Error).message)) return false;
    throw err;
  }
}

/** The soonest expiry among live grants that were drawn from, as leases gave their returns ('never' when none expires). */
function soonest(grants: Array<{ expiresAt: string | null; isExpired: boolean; remainingAmount: number; initialAmount: number }>): string {
  const drawn = grants.filter((g) => !g.isExpired && g.remainingAmount < g.initialAmount && g.expiresAt);
  return drawn.map((g) => g.expiresAt!).sort((a, b) => Date.parse(a) - Date.parse(b))[0] ?? 'never';
}
