import type { NewEmail } from '../db/emails';
import type { SendRow, TransitionOptions } from '../db/sends';
import { recipientCount, type OutgoingEmail } from '../mail/mailer';

/**
 * The one place a send touches the email history (issue 14): the emails Resend accepted,
 * each with its recipients, subject and cost (one credit per recipient). Never the body.
 * They are committed by the send's settling transition, in its transaction (transitionSend's
 * `history`): both or neither, so a failure leaves the send delivering, for a retry that
 * records the same ids once.
 */
export function acceptedHistory(row: SendRow, accepted: Array<{ id: string; email: OutgoingEmail }>, at: number): NonNullable<TransitionOptions['history']> {
  const emails: NewEmail[] = accepted.map(({ id, email }) => ({
    id,
    customerId: row.customerId,
    sendId: row.id,
    recipients: { to: email.to, cc: email.cc ?? [], bcc: email.bcc ?? [] },
    subject: email.subject,
    credits: recipientCount(email),
  }));
  return { emails, at };
}
