import type { OutboxMessage } from '../contracts';

/** One parsed mailbox: `email` or `Name <email>`. */
export interface Mailbox {
  name: string | null;
  address: string;
}

// Pragmatic RFC 5322 subset: dot-atom local part, and a domain with at least one dot (Resend rejects bare hosts).
const ADDRESS =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
/** Longer than any header line may be (RFC 5322's 998 characters): refused before any pattern runs. */
export const MAX_MAILBOX_CHARS = 998;

/**
 * Parses `email` or `Name <email>` (name optionally quoted); null when it is neither.
 *
 * The `Name <email>` split is done by hand: the pattern it replaces, `^(.*?)\s*<`, took quadratic
 * time on a name of spaces (8 s for `a`, 100,000 spaces, `x`), and it runs on every address of
 * every send and on the outbox's `?to=` filter. The input is bounded too.
 */
export function parseMailbox(value: string): Mailbox | null {
  if (value.length > MAX_MAILBOX_CHARS) return null;
  const trimmed = value.trim();
  let name: string | null = null;
  let address = trimmed;
  if (trimmed.endsWith('>')) {
    const open = trimmed.lastIndexOf('<');
    if (open === -1) return null;
    const rawName = trimmed.slice(0, open).trim();
    // A name is one line (the pattern's `.` did not cross line breaks) and holds no angle brackets.
    if (/[<>\r\n\u2028\u2029]/.test(rawName)) return null;
    name = rawName.replace(/^"(.*)"$/, '$1') || null;
    address = trimmed.slice(open + 1, -1).trim();
  }
  if (address.length > 254 || !ADDRESS.test(address)) return null;
  return { name, address };
}

/** The bare address of a mailbox string, lower-cased, for comparisons (the input as-is if unparseable). */
export function bareAddress(value: string): string {
  return (parseMailbox(value)?.address ?? value.trim()).toLowerCase();
}

const TEST_ADDRESS = /^(delivered|bounced|complained)(?:\+[^@]*)?@resend\.dev$/i;

/**
 * The event Resend's test addresses (`delivered@`, `bounced@`, `complained@resend.dev`, each with an
 * optional `+label`) produce. With several recipients the worst outcome wins: bounced, then complained.
 */
export function lastEventFor(recipients: string[]): OutboxMessage['lastEvent'] {
  let event: OutboxMessage['lastEvent'] = 'delivered';
  for (const recipient of recipients) {
    const kind = TEST_ADDRESS.exec(bareAddress(recipient))?.[1]?.toLowerCase();
    if (kind === 'bounced') return 'bounced';
    if (kind === 'complained') event = 'complained';
  }
  return event;
}
