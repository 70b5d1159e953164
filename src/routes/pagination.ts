import { z } from 'zod';
import { HttpError } from '../errors';

/** `?limit=&cursor=` of a list route: 1–100 (default 20), and the opaque cursor of the previous page. */
export const pageQuery = z.strictObject({
  limit: z
    .string({ error: 'must be given once' })
    .regex(/^\d{1,3}$/, 'must be a whole number from 1 to 100')
    .transform(Number)
    .refine((n) => n >= 1 && n <= 100, 'must be a whole number from 1 to 100')
    .optional()
    .transform((n) => n ?? 20),
  cursor: z.string({ error: 'must be given once' }).max(300, 'is not a cursor this API gave').optional(),
});

/** A list position: the last row's time and key (newest first, so the next page is strictly older). */
export function encodeCursor(at: number, key: string): string {
  return Buffer.from(JSON.stringify([at, key])).toString('base64url');
}

export function decodeCursor(cursor: string): { at: number; key: string } {
  try {
    const [at, key] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (typeof at === 'number' && Number.isSafeInteger(at) && typeof key === 'string') return { at, key };
  } catch {
    // falls through to the 400
  }
  throw new HttpError(400, 'invalid_request', 'cursor: is not a cursor this API gave (use next_cursor from the previous page).');
}
