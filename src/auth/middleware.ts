import type { RequestHandler } from 'express';
import { HttpError } from '../errors';
import type { ApiKeys } from './api-keys';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by requireCustomer: the Dodo customer the presented API key belongs to. */
      customerId?: string;
    }
  }
}

/**
 * Resolves `Authorization: Bearer <MailKit API key>` to a customer. Identity comes only
 * from the key; a customer id elsewhere in the request is checked against it, never trusted.
 */
export function requireCustomer(keys: ApiKeys): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      res.set('WWW-Authenticate', 'Bearer realm="mailkit"');
      throw new HttpError(
        401,
        'missing_api_key',
        'Send your MailKit API key as "Authorization: Bearer mk_…". It was emailed to you when your subscription started.',
      );
    }
    const customerId = await keys.verify(match[1]!);
    if (!customerId) {
      res.set('WWW-Authenticate', 'Bearer realm="mailkit", error="invalid_token"');
      throw new HttpError(401, 'invalid_api_key', looksCut(match[1]!) ? CUT_KEY : 'This API key is not valid (mistyped, rotated or revoked).');
    }
    req.customerId = customerId;
    next();
  };
}

/** The authenticated customer; throws if requireCustomer did not run (a wiring bug). */
export function customerOf(req: Express.Request): string {
  if (!req.customerId) throw new Error('customerOf() called on a route without requireCustomer');
  return req.customerId;
}

/**
 * A customer id the client named (tutorial-style `customer_id` in a path or body) must be
 * the key's own customer: 403 otherwise, before anything is read or changed.
 */
export function assertSameCustomer(req: Express.Request, named: unknown): void {
  if (named === undefined || named === null || named === '') return;
  if (named !== customerOf(req)) {
    throw new HttpError(403, 'forbidden_customer', 'This API key belongs to a different customer.');
  }
}

/**
 * A key is `mk_<env>_<customer>.<epoch>.<nonce>.<signature>`, about 110 characters: a
 * double-click selects it only up to its first dot, and a copy can lose its end. Such a key
 * starts right and has fewer parts, or a short last one.
 */
function looksCut(presented: string): boolean {
  if (!/^mk_(test|live)_/.test(presented)) return false;
  const parts = presented.split('.');
  return parts.length < 4 || (parts[3] ?? '').length < 43;
}
const CUT_KEY =
  'This API key looks cut short: a MailKit key is about 110 characters, mk_…, in four parts joined by dots ' +
  '(a double-click selects only the first). ' +
  "Copy the whole key (the outbox's key email has a Copy key button) and paste it again.";
