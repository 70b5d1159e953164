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

/** One email address; CR/LF refused outright (header injection). */
export const emailAddress = z
  .string({ error: 'must be a string' })
  .trim()
  .max(254, 'must be at most 254 characters')
  .refine(noLineBreaks, 'must not contain line breaks')
  .pipe(z.email('must be a valid email address'));

/** A Dodo customer id, as the tutorial passes it (only ever compared with the key's own). */
export const customerIdField = z.string().max(64).optional();

/** Limits that keep one request's cost bounded; stated in the README. */
export const LIMITS = {
  subjectChars: 998,
  htmlBytes: 256 * 1024,
  recipients: 50,
  batchItems: 100,
  sendBodyBytes: '384kb',
  batchBodyBytes: '8mb',
} as const;

/** The fields of one email, shared by /send and each /send/batch item. */
export const emailFields = {
  to: z.union([emailAddress, z.array(emailAddress).min(1, 'needs at least one recipient').max(LIMITS.recipients, `at most ${LIMITS.recipients} recipients`)]),
  subject: z
    .string({ error: 'must be a string' })
    .min(1, 'is required')
    .max(LIMITS.subjectChars, `must be at most ${LIMITS.subjectChars} characters`)
    .refine(noLineBreaks, 'must not contain line breaks'),
  html: z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .refine((v) => Buffer.byteLength(v) <= LIMITS.htmlBytes, `must be at most ${LIMITS.htmlBytes} bytes`),
};

/** `Idempotency-Key` header: 1–255 printable ASCII characters. */
export const idempotencyKeyHeader = z
  .string()
  .min(1)
  .max(255, 'must be at most 255 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
  .optional();
