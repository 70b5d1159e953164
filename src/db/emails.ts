import type { Selectable } from 'kysely';
import type { Database } from './index';
import type { EmailEventsTable, EmailsTable } from './schema';
import { addSuppressions } from './suppressions';

export type EmailRow = Selectable<EmailsTable>;
export type EmailEventRow = Selectable<EmailEventsTable>;

/**
 * An email's statuses in the order its life moves through them. A status is only ever replaced
 * by one ranked higher, so an event arriving late or twice never moves an email back (a
 * `delivered` never turns back into `sent`). Equal ranks: the first one stays.
 */
export const STATUS_RANK = {
  queued: 0,
  sent: 1,
  delivery_delayed: 2,
  delivered: 3,
  bounced: 4,
  failed: 4,
  suppressed: 4,
  complained: 5,
} as const;

export type EmailStatus = keyof typeof STATUS_RANK;
export const EMAIL_STATUSES = Object.keys(STATUS_RANK) as EmailStatus[];

/**
 * The status each Resend event type moves an email to. A Map, not an object: an event type is
 * the sender's text, and on an object `constructor`, `toString` or `__proto__` would be found
 * on its prototype and pass for a known type.
 */
const EVENT_STATUS: ReadonlyMap<string, EmailStatus> = new Map([
  ['email.sent', 'sent'],
  ['email.delivery_delayed', 'delivery_delayed'],
  ['email.delivered', 'delivered'],
  ['email.bounced', 'bounced'],
  ['email.failed', 'failed'],
  ['email.suppressed', 'suppressed'],
  ['email.complained', 'complained'],
]);

/** The status an event of this type moves an email to; undefined for a type MailKit does not track. */
export const eventStatus = (type: string): EmailStatus | undefined => EVENT_STATUS.get(type);

/** What a suppression caused by an event of this type is listed as. */
const SUPPRESSION_REASON: ReadonlyMap<string, string> = new Map([
  ['email.bounced', 'bounced'],
  ['email.complained', 'complained'],
  ['email.suppressed', 'suppressed'],
]);

export interface Recipients {
  to: string[];
  cc: string[];
  bcc: string[];
}

/** An email of a send, as the sender records it. */
export interface NewEmail {
  /** The id its send answered: Resend's, or MailKit's own for a send answered once queued. */
  id: string;
  /** Resend's id once Resend accepted it; null while queued. */
  providerId: string | null;
  customerId: string;
  sendId: string;
  recipients: Recipients;
  subject: string;
  credits: number;
}

/** An email Resend refused for good (its credits are refunded): it ends `failed`, with why. */
export interface RefusedEmail {
  id: string;
  reason: string;
}

/** A verified Resend event, reduced to what MailKit keeps. */
export interface NewEmailEvent {
  /** svix-id. */
  id: string;
  emailId: string;
  type: string;
  occurredAt: number;
  detail: string | null;
  /** Addresses this event puts on the sender's suppression list. */
  suppress: string[];
}

/**
 * Records emails (once: a repeat of the same id changes nothing but a Resend id it lacked),
 * then applies any of their events that arrived first: an event can beat the send's own
 * bookkeeping.
 */
export async function recordEmails(database: Database, emails: NewEmail[], at: number): Promise<void> {
  await insertEmails(database.db, emails, at);
  await applyEarlyEvents(database.db, emails, at);
}

/**
 * The first half of recordEmails, on a connection or inside a transaction: the send commits
 * its history in the transaction of its settling transition (db/sends.ts transitionSend).
 */
export async function insertEmails(db: Database['db'], emails: NewEmail[], at: number): Promise<void> {
  if (emails.length === 0) return;
  await db
    .insertInto('emails')
    .values(
      emails.map((e) => ({
        id: e.id,
        providerId: e.providerId,
        customerId: e.customerId,
        sendId: e.sendId,
        recipients: JSON.stringify(e.recipients),
        subject: e.subject,
        credits: e.credits,
        status: 'queued',
        statusRank: STATUS_RANK.queued,
        createdAt: at,
        updatedAt: at,
      })),
    )
    // A queued email (recorded when its send was accepted) gets Resend's id when Resend accepts it.
    .onConflict((oc) =>
      oc
        .column('id')
        .doUpdateSet((eb) => ({ providerId: eb.ref('excluded.providerId') }))
        .where('emails.providerId', 'is', null),
    )
    .execute();
}

/**
 * Emails Resend refused for good, inside the transaction that refunds them: each ends `failed`
 * (unless an event already took it further) with an event of MailKit's own saying why, so the
 * history shows its fate like any other.
 */
export async function refuseEmails(db: Database['db'], refused: RefusedEmail[], at: number): Promise<void> {
  if (refused.length === 0) return;
  await db
    .updateTable('emails')
    .set({ status: 'failed', statusRank: STATUS_RANK.failed, updatedAt: at })
    .where(
      'id',
      'in',
      refused.map((r) => r.id),
    )
    .where('statusRank', '<', STATUS_RANK.failed)
    .execute();
  await db
    .insertInto('emailEvents')
    .values(
      refused.map((r) => ({
        id: `mailkit:${r.id}:refused`,
        emailId: r.id,
        type: 'email.failed',
        occurredAt: at,
        receivedAt: at,
        detail: r.reason,
        suppress: null,
      })),
    )
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

/**
 * The second half: applies the events that arrived before these emails were recorded. Run once
 * the emails are committed, never in the same transaction: an event recorded meanwhile either
 * finds its email committed (and is applied by its own webhook) or was committed before this
 * reads (and is applied here), so none is missed (PostgreSQL, read committed).
 */
export async function applyEarlyEvents(db: Database['db'], emails: NewEmail[], at: number): Promise<void> {
  const ids = emails.flatMap((e) => (e.providerId ? [e.providerId] : []));
  if (ids.length === 0) return;
  const early = await db.selectFrom('emailEvents').selectAll().where('emailId', 'in', ids).execute();
  for (const event of early) await applyEvent(db, event, at);
}

/**
 * Records one event. False when its id was recorded before (a redelivery): nothing changes.
 * Otherwise the email's status rises if the event ranks higher, and its addresses go on the
 * suppression list. An event for an email not (yet) recorded is kept and applied when it is.
 */
export async function recordEmailEvent(database: Database, event: NewEmailEvent, at: number): Promise<boolean> {
  const row: EmailEventRow = { ...event, receivedAt: at, suppress: event.suppress.length ? JSON.stringify(event.suppress) : null };
  const inserted = await database.db
    .insertInto('emailEvents')
    .values(row)
    .onConflict((oc) => oc.column('id').doNothing())
    .executeTakeFirst();
  if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return false;
  try {
    await applyEvent(database.db, row, at);
  } catch (err) {
    // Not applied, so not recorded either: the sender's redelivery (its answer is a 5xx) must
    // find the id unknown and apply it, not be dropped as a duplicate. The insert is committed
    // before the email is read, not in one transaction with it: see applyEarlyEvents.
    await database.db
      .deleteFrom('emailEvents')
      .where('id', '=', row.id)
      .execute()
      .catch(() => undefined);
    throw err;
  }
  return true;
}

/**
 * Raises the email's status to the event's (one conditional update) and records its
 * suppressions. Resend's events name its own id (`provider_id`).
 */
async function applyEvent(db: Database['db'], event: EmailEventRow, at: number): Promise<void> {
  const status = eventStatus(event.type);
  if (!status) return;
  const email =
    (await db
      .updateTable('emails')
      .set({ status, statusRank: STATUS_RANK[status], updatedAt: at })
      .where('providerId', '=', event.emailId)
      .where('statusRank', '<', STATUS_RANK[status])
      .returning(['id', 'customerId'])
      .executeTakeFirst()) ?? (await db.selectFrom('emails').select(['id', 'customerId']).where('providerId', '=', event.emailId).executeTakeFirst());
  if (!email || !event.suppress) return;
  await addSuppressions(db, email.customerId, JSON.parse(event.suppress) as string[], SUPPRESSION_REASON.get(event.type) ?? 'bounced', email.id, at);
}

/** A page of the customer's emails, newest first; `after` is the last row of the previous page. */
export async function listEmails(
  database: Database,
  customerId: string,
  opts: { limit: number; status?: EmailStatus; after?: { createdAt: number; id: string } },
): Promise<EmailRow[]> {
  let q = database.db.selectFrom('emails').selectAll().where('customerId', '=', customerId);
  if (opts.status) q = q.where('status', '=', opts.status);
  const after = opts.after;
  if (after) {
    q = q.where((eb) => eb.or([eb('createdAt', '<', after.createdAt), eb.and([eb('createdAt', '=', after.createdAt), eb('id', '<', after.id)])]));
  }
  return q.orderBy('createdAt', 'desc').orderBy('id', 'desc').limit(opts.limit).execute();
}

/** One of the customer's emails with its events, oldest first; undefined for anyone else's. */
export async function findEmail(
  database: Database,
  customerId: string,
  id: string,
): Promise<{ email: EmailRow; events: EmailEventRow[] } | undefined> {
  const email = await database.db.selectFrom('emails').selectAll().where('id', '=', id).where('customerId', '=', customerId).executeTakeFirst();
  if (!email) return undefined;
  // Resend's events name its id; MailKit's own (a refusal) name the email's.
  const names = email.providerId && email.providerId !== id ? [id, email.providerId] : [id];
  const events = await database.db
    .selectFrom('emailEvents')
    .selectAll()
    .where('emailId', 'in', names)
    .orderBy('occurredAt')
    .orderBy('receivedAt')
    .execute();
  return { email, events };
}

/**
 * Forgets events received before `cutoff` whose email MailKit never recorded (the emails it
 * sends on its own behalf: API keys, low-balance alerts). An email's own events are kept with it.
 */
export async function forgetOrphanEventsBefore(database: Database, cutoff: number): Promise<number> {
  const gone = await database.db
    .deleteFrom('emailEvents')
    .where('receivedAt', '<', cutoff)
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('emails').select('emails.id').whereRef('emails.providerId', '=', 'emailEvents.emailId'))),
    )
    // MailKit's own events (a refusal) name the email by its own id: they stay with it.
    .where('id', 'not like', 'mailkit:%')
    .executeTakeFirst();
  return Number(gone.numDeletedRows);
}

/**
 * Forgets the history of emails created before `cutoff` (the retention, EMAIL_HISTORY_DAYS),
 * with their events, `batch` at a time and at most `batches` batches a call (the next call goes
 * on): the database holds the retention's emails, however long MailKit runs.
 */
export async function forgetEmailsBefore(database: Database, cutoff: number, batch = 5_000, batches = 20): Promise<number> {
  let gone = 0;
  for (let i = 0; i < batches; i++) {
    const n = await database.db.transaction().execute(async (trx) => {
      const old = await trx.selectFrom('emails').select(['id', 'providerId']).where('createdAt', '<', cutoff).limit(batch).execute();
      if (old.length === 0) return 0;
      const ids = old.map((e) => e.id);
      const names = [...ids, ...old.flatMap((e) => (e.providerId && e.providerId !== e.id ? [e.providerId] : []))];
      await trx.deleteFrom('emailEvents').where('emailId', 'in', names).execute();
      await trx.deleteFrom('emails').where('id', 'in', ids).execute();
      return old.length;
    });
    gone += n;
    if (n < batch) break;
  }
  return gone;
}
