import type { OutboxMessage } from '../contracts';
import { parseMailbox } from './addresses';
import { resendError, type ResendErrorBody } from './errors';

/** A send request that passed validation, in the outbox's camelCase shape (no id, event or time yet). */
export type ValidEmail = Omit<OutboxMessage, 'id' | 'lastEvent' | 'createdAt'>;

export type EmailValidation = { ok: true; email: ValidEmail } | { ok: false; error: ResendErrorBody };

/** Resend's documented cap on `to`. */
export const MAX_TO = 50;
const TAG_PART = /^[A-Za-z0-9_-]{1,256}$/;
const FORMAT_HINT = 'The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.';

class Invalid extends Error {
  constructor(readonly body: ResendErrorBody) {
    super(body.message);
  }
}

const missing = (field: string) => new Invalid(resendError(422, 'missing_required_field', `Missing \`${field}\` field.`));
const invalid = (message: string) => new Invalid(resendError(422, 'validation_error', message));

// JSON clients often send `null` for "not set"; Resend treats it the same as absent.
const absent = (value: unknown): value is null | undefined => value === undefined || value === null;

function addressList(body: Record<string, unknown>, field: string, required: boolean): string[] {
  const value = body[field];
  if (absent(value)) {
    if (required) throw missing(field);
    return [];
  }
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((item) => typeof item !== 'string')) {
    throw invalid(`Invalid \`${field}\` field. Expected a string or an array of strings.`);
  }
  const items = list as string[];
  if (required && items.length === 0) throw missing(field);
  for (const item of items) {
    if (!parseMailbox(item)) throw invalid(`Invalid \`${field}\` field. ${FORMAT_HINT}`);
  }
  return items.map((item) => item.trim());
}

function optionalString(body: Record<string, unknown>, field: string): string | null {
  const value = body[field];
  if (absent(value)) return null;
  if (typeof value !== 'string') throw invalid(`Invalid \`${field}\` field. Expected a string.`);
  return value;
}

function headersOf(body: Record<string, unknown>): Record<string, string> {
  const value = body.headers;
  if (absent(value)) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid('Invalid `headers` field. Expected an object.');
  const out: Record<string, string> = {};
  for (const [name, headerValue] of Object.entries(value as Record<string, unknown>)) {
    if (typeof headerValue !== 'string') throw invalid(`Invalid \`headers\` field. The value of \`${name}\` must be a string.`);
    out[name] = headerValue;
  }
  return out;
}

function tagsOf(body: Record<string, unknown>): ValidEmail['tags'] {
  const value = body.tags;
  if (absent(value)) return [];
  if (!Array.isArray(value)) throw invalid('Invalid `tags` field. Expected an array of `{ name, value }` objects.');
  return value.map((tag: unknown) => {
    const { name, value: tagValue } = (tag ?? {}) as Record<string, unknown>;
    if (typeof name !== 'string' || typeof tagValue !== 'string' || !TAG_PART.test(name) || !TAG_PART.test(tagValue)) {
      throw invalid(
        'Invalid `tags` field. Tag names and values can only contain ASCII letters, numbers, underscores or dashes, up to 256 characters.',
      );
    }
    return { name, value: tagValue };
  });
}

/**
 * Validates one `SendEmailRequest` body. `inBatch` applies the batch endpoint's extra limits
 * (no attachments, no scheduling, as Resend documents for batch sending).
 */
export function validateEmail(body: unknown, inBatch = false): EmailValidation {
  try {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw invalid('Invalid request body. Expected a JSON object.');
    }
    const fields = body as Record<string, unknown>;

    if (absent(fields.from)) throw missing('from');
    if (typeof fields.from !== 'string' || !parseMailbox(fields.from)) throw invalid(`Invalid \`from\` field. ${FORMAT_HINT}`);
    const to = addressList(fields, 'to', true);
    if (to.length > MAX_TO) throw invalid(`Invalid \`to\` field. Too many recipients: the maximum is ${MAX_TO}.`);
    if (absent(fields.subject) || fields.subject === '') throw missing('subject');
    if (typeof fields.subject !== 'string') throw invalid('Invalid `subject` field. Expected a string.');

    // Features the sandbox cannot honour are refused loudly rather than silently dropped.
    if (!absent(fields.attachments)) {
      throw invalid(inBatch ? 'Attachments are not supported in batch emails.' : 'Attachments are not supported by the MailKit sandbox.');
    }
    if (!absent(fields.scheduled_at)) {
      throw invalid(
        inBatch ? 'The `scheduled_at` field is not supported in batch emails.' : 'Scheduled sending is not supported by the MailKit sandbox.',
      );
    }
    if (!absent(fields.template)) throw invalid('Templates are not supported by the MailKit sandbox.');

    const html = optionalString(fields, 'html');
    const text = optionalString(fields, 'text');
    if (html === null && text === null) {
      throw new Invalid(resendError(422, 'missing_required_field', 'Missing `html` or `text` field.'));
    }

    return {
      ok: true,
      email: {
        from: fields.from.trim(),
        to,
        cc: addressList(fields, 'cc', false),
        bcc: addressList(fields, 'bcc', false),
        replyTo: addressList(fields, 'reply_to', false),
        subject: fields.subject,
        html,
        text,
        headers: headersOf(fields),
        tags: tagsOf(fields),
      },
    };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, error: err.body };
    throw err;
  }
}
