import type { Database } from '../db/index';
import { recordEmails } from '../db/emails';
import type { SendRow } from '../db/sends';
import { recipientCount, type OutgoingEmail } from '../mail/mailer';

/**
 * The one place a send touches the email history (issue 14): the emails Resend accepted,
 * each with its recipients, subject and cost (one credit per recipient). Never the body.
 */
export async function recordAccepted(database: Database, row: SendRow, accepted: Array<{ id: string; email: OutgoingEmail }>, at: number): Promise<void> {
  await recordEmails(
    database,
    accepted.map(({ id, email }) => ({
      id,
      customerId: row.customerId,
      sendId: row.id,
      recipients: { to: email.to, cc: email.cc ?? [], bcc: email.bcc ?? [] },
      subject: email.subject,
      credits: recipientCount(email),
    })),
    at,
  );
}
