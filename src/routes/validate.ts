import { z } from 'zod';
import { HttpError } from '../errors';

/** Parses `value` with `schema`, or throws a 400 whose message names the first bad field. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where = 'body'): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length ? issue.path.join('.') : where;
  const message = issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message;
  throw new HttpError(400, 'invalid_request', `${field}: ${message}`);
}

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
export const customerIdString = z
  .string({ error: 'must be a string' })
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a customer id such as cus_…');
export const customerIdField = customerIdString.optional();

/** Limits that keep one request's cost bounded; stated in the README. */
export const LIMITS = {
  subjectChars: 998,
  htmlBytes: 256 * 1024,
  recipients: 50,
  batchItems: 100,
  sendBodyBytes: '384kb',
  batchBodyBytes: '8mb',
  /** Public routes (POST /checkout/subscribe: an email and a name). */
  publicBodyBytes: '16kb',
  /** A JSON body's shape: far above what any MailKit request holds (a full batch: ~11,000 values, depth 4). */
  jsonMaxDepth: 32,
  jsonMaxValues: 50_000,
} as const;

/** The fields of one email, shared by /send and each /send/batch item. */
export const emailFields = {
  to: z.union([emailAddress, z.array(emailAddress).min(1, 'needs at least one recipient').max(LIMITS.recipients, `at most ${LIMITS.recipients} recipients`)]),
  subject: headerText(LIMITS.subjectChars).pipe(z.string().min(1, 'is required')),
  html: z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .refine((v) => Buffer.byteLength(v) <= LIMITS.htmlBytes, `must be at most ${LIMITS.htmlBytes} bytes`)
    .refine(wellFormed, 'must be valid Unicode'),
};

/** `Idempotency-Key` header: 1–255 printable ASCII characters. */
export const idempotencyKeyHeader = z
  .string()
  .min(1)
  .max(255, 'must be at most 255 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
  .optional();

/** Routes that take no body accept none, or `{}`. */
export const emptyBody = z.strictObject({}).optional();
