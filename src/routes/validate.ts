import { z } from 'zod';
import { HttpError } from '../errors';

/** Parses `value` with `schema`, or throws a 400 whose message names the first bad field. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where = 'body'): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = specific(result.error.issues[0]!);
  const field = issue.path.length ? issue.path.join('.') : where;
  const message = issue.code === 'unrecognized_keys' ? unknownFields(issue.keys) : issue.message;
  throw new HttpError(400, 'invalid_request', `${field}: ${message}`);
}

/**
 * For a value that may take several forms (an address or a list of them), the issue of the
 * form it did take ("at most 50 addresses"), rather than zod's bare "Invalid input".
 */
function specific(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union') return issue;
  for (const branch of issue.errors) {
    const first = branch[0];
    if (first && first.code !== 'invalid_type') return specific({ ...first, path: [...issue.path, ...first.path] });
  }
  return issue;
}

/** Resend's batch call refuses attachments and scheduling, and every send goes through batched delivery. */
const UNSUPPORTED: Record<string, string> = {
  attachments: 'attachments are not supported (Resend refuses them in batch sends, which MailKit delivers through)',
  scheduled_at: 'scheduled sending is not supported (Resend refuses it in batch sends, which MailKit delivers through)',
};
// Own entries only: an unknown field named `constructor` must not find Object's.
const unknownFields = (keys: string[]) =>
  keys.map((k) => (Object.hasOwn(UNSUPPORTED, k) ? UNSUPPORTED[k] : undefined)).find(Boolean) ?? `unknown field(s): ${keys.join(', ')}`;

const noLineBreaks = (v: string) => !/[\r\n]/.test(v);
/** C0 controls (tab aside) and DEL: never legitimate in a header-bound value such as a subject or a name. */
const noControlChars = (v: string) => !/[\x00-\x08\x0a-\x1f\x7f]/.test(v);
/** Lone UTF-16 surrogates cannot be encoded as UTF-8: refused rather than mangled downstream. */
const wellFormed = (v: string) => v.isWellFormed();

/** A single-line text bound for a mail header or a billing record (subject, customer name). */
export const headerText = (max: number) =>
  z
    .string({ error: 'must be a string' })
    .max(max, `must be at most ${max} characters`)
    .refine(noLineBreaks, 'must not contain line breaks')
    .refine(noControlChars, 'must not contain control characters')
    .refine(wellFormed, 'must be valid Unicode');

/** One email address; CR/LF refused outright (header injection). */
export const emailAddress = z
  .string({ error: 'must be a string' })
  .trim()
  .max(254, 'must be at most 254 characters')
  .refine(noLineBreaks, 'must not contain line breaks')
  .pipe(z.email('must be a valid email address'));

/** A Dodo customer id, as the tutorial passes it (only ever compared with the key's own). */
export const customerIdString = z.string({ error: 'must be a string' }).regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a customer id such as cus_…');
export const customerIdField = customerIdString.optional();

/** Limits that keep one request's cost bounded; stated in the README. */
export const LIMITS = {
  subjectChars: 998,
  htmlBytes: 256 * 1024,
  recipients: 50,
  tags: 50,
  headers: 50,
  headerValueChars: 998,
  batchItems: 100,
  sendBodyBytes: '384kb',
  batchBodyBytes: '8mb',
  /** Public routes (POST /checkout/subscribe: an email and a name). */
  publicBodyBytes: '16kb',
  /** A JSON body's shape: far above what any MailKit request holds (a full batch: ~11,000 values, depth 4). */
  jsonMaxDepth: 32,
  jsonMaxValues: 50_000,
} as const;

/** An address or a list of them, as Resend takes `to`, `cc`, `bcc` and `reply_to`. */
const addressList = (min: number) =>
  z.union([
    emailAddress,
    z.array(emailAddress).min(min, 'needs at least one recipient').max(LIMITS.recipients, `at most ${LIMITS.recipients} addresses`),
  ]);

/** A body part: HTML or plain text. */
const bodyPart = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .refine((v) => Buffer.byteLength(v) <= LIMITS.htmlBytes, `must be at most ${LIMITS.htmlBytes} bytes`)
  .refine(wellFormed, 'must be valid Unicode');

/** Resend's rule for tag names and values: ASCII letters, digits, `_` and `-`, up to 256 characters. */
const tagPart = z
  .string({ error: 'must be a string' })
  .regex(/^[A-Za-z0-9_-]{1,256}$/, 'may only contain ASCII letters, numbers, underscores or dashes, up to 256 characters');

/**
 * Headers MailKit sets itself (or Resend does from the fields above): a custom header may not
 * override them, so the sender stays MAIL_FROM and recipients are only what the fields say.
 */
const RESERVED_HEADERS = new Set([
  'from',
  'sender',
  'to',
  'cc',
  'bcc',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'return-path',
  'dkim-signature',
  'received',
]);
/**
 * The rule for every other custom header: it may not name a sender or a recipient beyond the
 * fields, nor claim a result that only receiving servers establish. So a custom header is
 * refused (400) when it is
 * - any `Resent-*` header: RFC 5322's resent fields repeat From, Sender, To, Cc, Bcc, Date and
 *   Message-ID, and mail clients show `Resent-From` as who sent the message;
 * - a trace or authentication header receiving servers write: `Received-SPF`,
 *   `DomainKey-Signature`, any `ARC-*` (ARC-Seal, ARC-Message-Signature, …) and any name
 *   ending in `Authentication-Results` (also the `X-…-Authentication-Results` some providers
 *   add): a fake "pass" helps a spoofed display name look verified;
 * - a request that mail go to another address: `Disposition-Notification-To` and
 *   `Return-Receipt-To` (read receipts), `Errors-To` (bounces).
 * Names compare case-insensitively. Written down in the README (Input limits).
 */
function refusedHeader(lowerName: string): boolean {
  return (
    lowerName.startsWith('resent-') || lowerName.startsWith('arc-') || lowerName.endsWith('authentication-results') || REFUSED_HEADERS.has(lowerName)
  );
}
const REFUSED_HEADERS = new Set(['received-spf', 'domainkey-signature', 'disposition-notification-to', 'return-receipt-to', 'errors-to']);
/** RFC 9110 token: a header name cannot carry a colon, a space or a line break. */
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;

const customHeaders = z
  .record(z.string(), headerText(LIMITS.headerValueChars), { error: 'must be an object of header names to string values' })
  .superRefine((headers, ctx) => {
    const names = Object.keys(headers);
    if (names.length > LIMITS.headers) ctx.addIssue({ code: 'custom', message: `at most ${LIMITS.headers} headers` });
    for (const name of names) {
      // The bad name is not echoed back: it may hold line breaks.
      if (!headerName.test(name))
        ctx.addIssue({ code: 'custom', message: "holds an invalid header name (letters, digits and !#$%&'*+.^_`|~- only, up to 100 characters)" });
      else if (RESERVED_HEADERS.has(name.toLowerCase()))
        ctx.addIssue({ code: 'custom', path: [name], message: 'is set by MailKit and cannot be overridden' });
      else if (refusedHeader(name.toLowerCase())) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message:
            'may not be set: no custom header may name another sender or recipient, or claim an authentication result ' +
            '(Resent-*, ARC-*, *Authentication-Results, Received-SPF, Disposition-Notification-To…)',
        });
      }
    }
  })
  .describe(
    `Up to ${LIMITS.headers} custom headers, name → single-line value. ` +
      `Refused (400): the headers MailKit sets from the fields (${[...RESERVED_HEADERS].join(', ')}); ` +
      'any Resent-* or ARC-* header, any name ending in Authentication-Results, Received-SPF, DomainKey-Signature, ' +
      'Disposition-Notification-To, Return-Receipt-To and Errors-To: ' +
      'no custom header may name another sender or recipient, or claim an authentication result.',
  );

/** The fields of one email, shared by /send and each /send/batch item (Resend's SendEmailRequest, minus what MailKit sets or cannot batch). */
export const emailFields = {
  to: addressList(1),
  subject: headerText(LIMITS.subjectChars).pipe(z.string().min(1, 'is required')),
  html: bodyPart.optional(),
  text: bodyPart.optional(),
  cc: addressList(1).optional(),
  bcc: addressList(1).optional(),
  reply_to: addressList(1).optional(),
  tags: z
    .array(z.strictObject({ name: tagPart, value: tagPart }), { error: 'must be an array of { name, value } objects' })
    .max(LIMITS.tags, `at most ${LIMITS.tags} tags`)
    .optional(),
  headers: customHeaders.optional(),
};

/** One email object: the fields above plus `extra`, with an HTML or a text body (Resend needs one). */
export const emailObject = <E extends z.core.$ZodLooseShape>(extra: E) =>
  z
    .strictObject({ ...emailFields, ...extra })
    .refine((e) => (e as { html?: string }).html !== undefined || (e as { text?: string }).text !== undefined, {
      message: 'needs an html or a text body',
      path: ['html'],
    });

/** `Idempotency-Key` header: 1–255 printable ASCII characters. */
export const idempotencyKeyHeader = z
  .string()
  .min(1)
  .max(255, 'must be at most 255 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
  .optional();

/** Routes that take no body accept none, or `{}`. */
export const emptyBody = z.strictObject({}).optional();
