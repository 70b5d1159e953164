import type { EmailBouncedEvent, EmailComplainedEvent, EmailDeliveredEvent, EmailSentEvent } from 'resend';
import type { OutboxMessage } from '../contracts';
import { bareAddress, lastEventFor } from './addresses';

/**
 * The `data` of an email event: the SDK's `BaseEmailEventData` (which requires `message_id`)
 * plus the spec's `headers` (`OutboundEmailEventData` lists it; the SDK type does not yet).
 */
type EmailEventData = EmailSentEvent['data'] & { headers?: Array<{ name: string; value: string }> };

/** One of the events an accepted email produces, typed with the SDK's own event types. */
export type EmailEvent =
  | (Omit<EmailSentEvent, 'data'> & { data: EmailEventData })
  | (Omit<EmailDeliveredEvent, 'data'> & { data: EmailEventData })
  | (Omit<EmailComplainedEvent, 'data'> & { data: EmailEventData })
  | (Omit<EmailBouncedEvent, 'data'> & {
      data: EmailEventData & Pick<EmailBouncedEvent['data'], 'bounce'> & { bounce: { diagnosticCode: string[] } };
    });

export type EmailEventType = EmailEvent['type'];

/**
 * What happens to an email, by the outcome the `resend.dev` test addresses choose
 * (`lastEventFor`: bounced, then complained, then delivered; any other address is delivered).
 */
const SEQUENCES: Record<OutboxMessage['lastEvent'], EmailEventType[]> = {
  delivered: ['email.sent', 'email.delivered'],
  bounced: ['email.sent', 'email.bounced'],
  complained: ['email.sent', 'email.delivered', 'email.complained'],
};

/** A hard bounce with no reason from the receiving server (sandbox wording). */
const BOUNCE_MESSAGE =
  "The recipient's mail server permanently rejected the email (a hard bounce) and gave no further reason. " +
  'Stop sending to this address: further sends harm your sender reputation.';

function dataOf(message: OutboxMessage): EmailEventData {
  return {
    email_id: message.id,
    // The same Message-ID `GET /emails/{id}` reports.
    message_id: `<${message.id}@sandbox.mailkit.local>`,
    created_at: message.createdAt,
    from: message.from,
    to: message.to,
    subject: message.subject,
    // Resend sends tags as an object (`{ name: value }`), not the array the request carried.
    ...(message.tags.length ? { tags: Object.fromEntries(message.tags.map((t) => [t.name, t.value])) } : {}),
    // "omitted when no custom headers are set" (the spec).
    ...(Object.keys(message.headers).length ? { headers: Object.entries(message.headers).map(([name, value]) => ({ name, value })) } : {}),
  };
}

/** The recipients (to, cc and bcc) whose own outcome is `outcome`, as sent and in order. */
function recipientsWith(message: OutboxMessage, outcome: 'bounced' | 'complained'): string[] {
  return [...message.to, ...message.cc, ...message.bcc].filter((recipient) => lastEventFor([recipient]) === outcome);
}

/**
 * The events an accepted email produces, in the order they happen. `acceptedAt` is the send's
 * time; each later event is one millisecond after the one before, so `created_at` orders them
 * even for a receiver that sorts instead of trusting arrival order.
 *
 * A bounce or a complaint is one event per recipient it happened to, whose `to` holds that
 * recipient alone, as Resend sends them ("each email event is connected to a single recipient",
 * its per-recipient events change): a receiver learns who bounced or complained from `to`, never
 * from the diagnostic text. `email.sent` and `email.delivered` stay one per email, `to` as sent.
 */
export function emailEvents(message: OutboxMessage, acceptedAt: number): EmailEvent[] {
  const events: EmailEvent[] = [];
  const at = () => new Date(acceptedAt + events.length).toISOString();
  for (const type of SEQUENCES[message.lastEvent]) {
    const data = dataOf(message);
    if (type === 'email.bounced') {
      for (const recipient of recipientsWith(message, 'bounced')) {
        const diagnosticCode = [`smtp; 550 5.1.1 <${bareAddress(recipient)}>: Recipient address rejected: User unknown`];
        events.push({
          type,
          created_at: at(),
          data: { ...data, to: [recipient], bounce: { type: 'Permanent', subType: 'General', message: BOUNCE_MESSAGE, diagnosticCode } },
        });
      }
    } else if (type === 'email.complained') {
      for (const recipient of recipientsWith(message, 'complained')) events.push({ type, created_at: at(), data: { ...data, to: [recipient] } });
    } else {
      events.push({ type, created_at: at(), data });
    }
  }
  return events;
}
