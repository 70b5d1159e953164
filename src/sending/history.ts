import type { NewEmail, RefusedEmail } from '../db/emails';
import type { SendRow, TransitionOptions } from '../db/sends';
import { recipientCount, type OutgoingEmail } from '../mail/mailer';

/**
 * The one place a send touches the email history: its emails, each with its
 * recipients, subject and cost (one credit per recipient). Never the body. They are committed
 * by the send's settling transition, in its transaction (transitionSend's `history`): both or
 * neither, so a failure leaves the send delivering, for a retry that records the same ids once.
 *
 * A send answered with Resend's ids records the emails Resend accepted, under those ids. A
 * send answered once queued (`own`: MailKit's ids, by item) recorded its emails as queued when
 * it was accepted (queuedHistory); here they get Resend's ids, and those Resend refused end
 * failed, with why (`refused`).
 */
export function settledHistory(
  row: SendRow,
  accepted: Array<{ id: string; email: OutgoingEmail; index: number }>,
  at: number,
  own?: { ids: string[]; emails: OutgoingEmail[]; refused: Array<{ index: number; reason: string }> },
): NonNullable<TransitionOptions['history']> {
  const emails = accepted.map(({ id, email, index }) => newEmail(row, own ? own.ids[index]! : id, id, email));
  if (!own) return { emails, at };
  const refused: RefusedEmail[] = own.refused.map((r) => ({ id: own.ids[r.index]!, reason: r.reason }));
  // Recorded here too in case the queued record was lost: a repeat changes nothing.
  emails.push(...own.refused.map((r) => newEmail(row, own.ids[r.index]!, null, own.emails[r.index]!)));
  return { emails, refused, at };
}

/** The emails of a send accepted for background delivery, recorded as queued under MailKit's ids. */
export function queuedHistory(row: SendRow, ids: string[], emails: OutgoingEmail[]): NewEmail[] {
  return emails.map((email, i) => newEmail(row, ids[i]!, null, email));
}

function newEmail(row: SendRow, id: string, providerId: string | null, email: OutgoingEmail): NewEmail {
  return {
    id,
    providerId,
    customerId: row.customerId,
    sendId: row.id,
    recipients: { to: email.to, cc: email.cc ?? [], bcc: email.bcc ?? [] },
    subject: email.subject,
    credits: recipientCount(email),
  };
}
