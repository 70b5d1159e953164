import type { Database } from '../db/index';
import { findSend } from '../db/sends';
import { refusedItems, rememberRefusedItems, suppressedAmong } from '../db/suppressions';
import { HttpError } from '../errors';
import type { OutgoingEmail } from '../mail/mailer';
import { KEY_RETENTION_MS, sendIdFor } from './records';

/*
 * A suppressed recipient (one that bounced permanently or complained) refuses its email before
 * any credit is taken. A retry of a send that got under way (same key) is not checked again: it
 * replays or finishes that send, even if the list changed meanwhile.
 */

/** The refusal of one email to a suppressed recipient, or null (also for a retry of a send under way). */
export async function suppressionRefusal(
  database: Database,
  customerId: string,
  email: OutgoingEmail,
  key: string | undefined,
): Promise<HttpError | null> {
  const earlier = key ? await findSend(database, sendIdFor(customerId, key)) : undefined;
  if (earlier && earlier.state !== 'failed') return null;
  return (await suppressionCheck(database, customerId, [email]))[0] ?? null;
}

/**
 * For each email, the 422 that refuses it when one of its recipients (to, cc or bcc) is on the
 * customer's suppression list, or null. One query for the whole request.
 */
async function suppressionCheck(database: Database, customerId: string, emails: OutgoingEmail[]): Promise<Array<HttpError | null>> {
  const all = emails.flatMap((e) => [...e.to, ...(e.cc ?? []), ...(e.bcc ?? [])]);
  const hits = new Map((await suppressedAmong(database, customerId, all)).map((r) => [r.address, r]));
  if (hits.size === 0) return emails.map(() => null);
  return emails.map((e) => {
    const found = [...new Set([...e.to, ...(e.cc ?? []), ...(e.bcc ?? [])].map((a) => a.toLowerCase()))].flatMap((a) => hits.get(a) ?? []);
    if (found.length === 0) return null;
    const named = found.map((r) => `${r.address} (${r.reason})`).join(', ');
    const first = encodeURIComponent(found[0]!.address);
    return new HttpError(
      422,
      'recipient_suppressed',
      `Not sent: ${named} ${found.length === 1 ? 'is' : 'are'} on your suppression list, so nothing was charged. ` +
        `If the address works again, remove it with DELETE /suppressions/${first} (or on the dashboard) and send again.`,
    );
  });
}

/** The refusal of a batch item that was suppressed when its send first ran (and is no longer). */
const suppressedEarlier = () =>
  new HttpError(
    422,
    'recipient_suppressed',
    'Not sent: a recipient was on your suppression list when this batch was first sent under this Idempotency-Key, ' +
      'so nothing was charged for it. Send it again under a new key.',
  );

/**
 * The suppression refusals of a batch. Under a key whose send got under way, the first run's
 * (recorded then): a retry sends exactly the items the first run sent, so the same key with
 * the same body stays the same send even if the list changed meanwhile.
 */
export async function batchRefusals(
  database: Database,
  customerId: string,
  emails: OutgoingEmail[],
  key: string | undefined,
): Promise<Array<HttpError | null>> {
  const now = await suppressionCheck(database, customerId, emails);
  if (!key) return now;
  const sendId = sendIdFor(customerId, key);
  const earlier = (await findSend(database, sendId)) ? await refusedItems(database, sendId) : undefined;
  if (earlier) return emails.map((_, i) => (earlier.includes(i) ? (now[i] ?? suppressedEarlier()) : null));
  const refused = now.flatMap((r, i) => (r ? [i] : []));
  await rememberRefusedItems(database, sendId, refused, Date.now(), Date.now() - 2 * KEY_RETENTION_MS);
  return now;
}
