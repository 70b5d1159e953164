import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/index';
import { findEmail, forgetEmailsBefore, forgetOrphanEventsBefore, recordEmailEvent, recordEmails } from '../../src/db/emails';
import { suppressedAmong } from '../../src/db/suppressions';
import { ENGINES, freshDatabase } from '../support/stack';

const email = (id: string, to = 'bounced@resend.dev') => ({
  id,
  providerId: id,
  customerId: 'cus_a',
  sendId: 'snd_1',
  recipients: { to: [to], cc: [], bcc: [] },
  subject: 'Hi',
  credits: 1,
});
const event = (id: string, emailId: string, type: string, suppress: string[] = []) => ({
  id,
  emailId,
  type,
  occurredAt: 1_000,
  detail: null,
  suppress,
});

describe.each(ENGINES)('the email history tables (%s)', (engine) => {
  let database: Database;
  afterEach(async () => {
    await database?.close();
  });

  it('an event that arrives before its email is recorded is applied when the email is: status and suppression', async () => {
    database = await freshDatabase(engine);
    expect(await recordEmailEvent(database, event('msg_1', 'e1', 'email.sent'), 10)).toBe(true);
    expect(await recordEmailEvent(database, event('msg_2', 'e1', 'email.bounced', ['bounced@resend.dev']), 11)).toBe(true);
    expect(await suppressedAmong(database, 'cus_a', ['bounced@resend.dev'])).toEqual([]);
    await recordEmails(database, [email('e1')], 20);
    const found = await findEmail(database, 'cus_a', 'e1');
    expect(found?.email.status).toBe('bounced');
    expect(found?.events.map((e) => e.type)).toEqual(['email.sent', 'email.bounced']);
    expect((await suppressedAmong(database, 'cus_a', ['BOUNCED@resend.dev'])).map((r) => [r.address, r.reason, r.emailId])).toEqual([
      ['bounced@resend.dev', 'bounced', 'e1'],
    ]);
    // Recording the same email again (a retried send) changes nothing.
    await recordEmails(database, [email('e1')], 30);
    expect((await findEmail(database, 'cus_a', 'e1'))?.email.status).toBe('bounced');
    expect(await findEmail(database, 'cus_b', 'e1')).toBeUndefined();
  });

  it('forgets the emails older than the retention, with their events, a batch at a time; keeps the younger', async () => {
    database = await freshDatabase(engine);
    await recordEmails(
      database,
      Array.from({ length: 7 }, (_, i) => email(`old-${i}`, 'delivered@resend.dev')),
      100,
    );
    await recordEmails(database, [email('young', 'delivered@resend.dev')], 900);
    await recordEmailEvent(database, event('msg_old', 'old-0', 'email.delivered'), 150);
    await recordEmailEvent(database, event('msg_young', 'young', 'email.delivered'), 950);
    // Batches of 3: all seven go in one call (three batches).
    expect(await forgetEmailsBefore(database, 500, 3)).toBe(7);
    expect(await findEmail(database, 'cus_a', 'old-0')).toBeUndefined();
    expect(await database.db.selectFrom('emailEvents').select('id').execute()).toEqual([{ id: 'msg_young' }]);
    expect((await findEmail(database, 'cus_a', 'young'))?.email.status).toBe('delivered');
  });

  it("forgets old events of emails it never recorded, and keeps a recorded email's events", async () => {
    database = await freshDatabase(engine);
    await recordEmails(database, [email('kept', 'delivered@resend.dev')], 1);
    await recordEmailEvent(database, event('msg_k', 'kept', 'email.delivered'), 5);
    await recordEmailEvent(database, event('msg_old', 'system-email', 'email.delivered'), 5);
    await recordEmailEvent(database, event('msg_new', 'other-email', 'email.delivered'), 500);
    expect(await forgetOrphanEventsBefore(database, 100)).toBe(1);
    expect((await findEmail(database, 'cus_a', 'kept'))?.events).toHaveLength(1);
    // The young orphan is still there: an email recorded now picks it up.
    await recordEmails(database, [{ ...email('other-email', 'delivered@resend.dev') }], 600);
    expect((await findEmail(database, 'cus_a', 'other-email'))?.email.status).toBe('delivered');
  });
});
