import type { Response } from 'express';
import type { ErrorResponse } from 'resend';

/** Resend's error names (the SDK's own union), so a typo cannot reach the wire. */
export type ResendErrorName = ErrorResponse['name'];

/** Resend's error envelope, exactly as the API sends it and the SDK returns it as `error`. */
export interface ResendErrorBody {
  statusCode: number;
  name: ResendErrorName;
  message: string;
}

/** Builds an error envelope. */
export function resendError(statusCode: number, name: ResendErrorName, message: string): ResendErrorBody {
  return { statusCode, name, message };
}

/** Writes an error envelope with its status. */
export function sendError(res: Response, error: ResendErrorBody): void {
  res.status(error.statusCode).json(error);
}

// Messages are Resend's documented ones (resend.com/docs/api-reference/errors) where it documents one.
export const errors = {
  missingApiKey: () =>
    resendError(
      401,
      'missing_api_key',
      'Missing API key in the authorization header. Include the following header Authorization: Bearer YOUR_API_KEY in the request.',
    ),
  notFound: () => resendError(404, 'not_found', 'The requested endpoint does not exist.'),
  methodNotAllowed: () => resendError(405, 'method_not_allowed', 'Method is not allowed for the requested path.'),
  invalidIdempotencyKey: () => resendError(400, 'invalid_idempotency_key', 'The key must be between 1-256 chars.'),
  invalidIdempotentRequest: () => resendError(409, 'invalid_idempotent_request', 'Same idempotency key used with a different request payload.'),
  concurrentIdempotentRequests: () =>
    resendError(409, 'concurrent_idempotent_requests', 'Same idempotency key used while original request is still in progress.'),
  /** `perSecond`: the team's limit, which Resend's message quotes (2 by default). */
  rateLimited: (perSecond = 2) =>
    resendError(
      429,
      'rate_limit_exceeded',
      `Too many requests. You can only make ${perSecond} requests per second. ` +
        'See rate limit response headers for more information. Or contact support to increase rate limit.',
    ),
  malformedJson: () => resendError(400, 'validation_error', 'We found an error with one or more fields in the request: the body is not valid JSON.'),
  internal: () => resendError(500, 'internal_server_error', 'An unexpected error occurred, please try again later.'),
} as const;

/** The envelope for a status injected by a fault: the name Resend uses for that status. */
export function errorForStatus(status: number): ResendErrorBody {
  switch (status) {
    case 400:
      return resendError(400, 'validation_error', 'We found an error with one or more fields in the request.');
    case 401:
      return errors.missingApiKey();
    case 403:
      return resendError(403, 'invalid_api_key', 'API key is invalid.');
    case 404:
      return errors.notFound();
    case 405:
      return errors.methodNotAllowed();
    case 409:
      return errors.concurrentIdempotentRequests();
    case 422:
      return resendError(422, 'validation_error', 'We found an error with one or more fields in the request.');
    case 429:
      return errors.rateLimited();
    case 500:
      return errors.internal();
    default:
      // Resend has no dedicated name for 502/503/504; `application_error` is what its SDK uses for them.
      return resendError(status, 'application_error', 'Something went wrong on our end. Please try again later.');
  }
}
