import type { ErrorRequestHandler, RequestHandler } from 'express';
import { isDatabaseUnavailable } from './db/index';
import { clientErrorMessage, clientErrorStatus } from './lib/client-error';
import { closeWithAnswer } from './lib/close-unread';

/**
 * The one error shape MailKit answers with: `{ "error": { "code", "message" } }`.
 * Handlers throw an HttpError; the error middleware, registered last, renders it.
 */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers, e.g. Retry-After on 429/503. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** JSON 404 for any route nothing else answered. */
export const notFound: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, 'not_found', `No route for ${req.method} ${req.path}.`));
};

/**
 * Renders HttpError as is; turns body-parser failures into 400/413; anything else is a
 * bug or an upstream failure and becomes a 500 whose text never leaks a stack or an
 * upstream message (it is logged with the request id instead).
 */
export function errorMiddleware(log: (err: unknown, req: Parameters<ErrorRequestHandler>[1]) => void): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    const http = toHttpError(err);
    if (http.status >= 500) log(err, req);
    res.set(http.headers);
    // Refused before its body was read (401, 429, 413, 415…): the body will never be used.
    if (!req.complete) closeWithAnswer(req, res);
    res.status(http.status).json({ error: { code: http.code, message: http.message } });
  };
}

const CLIENT_ERROR_CODES: Record<number, string> = { 403: 'forbidden', 404: 'not_found', 413: 'payload_too_large', 415: 'unsupported_encoding' };

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { type?: string; status?: number; limit?: number };
  // body-parser marks its own errors with a type; their messages are safe to show.
  if (e?.type === 'entity.parse.failed') return new HttpError(400, 'invalid_json', 'The request body is not valid JSON.');
  if (e?.type === 'entity.too.large') {
    return new HttpError(413, 'payload_too_large', `The request body is larger than the ${e.limit ?? ''} byte limit.`.replace('  ', ' '));
  }
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
    return new HttpError(415, 'unsupported_encoding', 'Send the body as UTF-8 JSON.');
  }
  // The router's failure to decode a percent-encoded path parameter.
  if (err instanceof URIError && e.status === 400) return new HttpError(400, 'bad_request', 'The URL has an invalid percent-encoding.');
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && e?.type) {
    return new HttpError(e.status, 'bad_request', 'The request could not be read.');
  }
  // The database is down or busy: nothing uncommitted happened, and a retry is safe.
  if (isDatabaseUnavailable(err))
    return new HttpError(503, 'database_unavailable', 'MailKit cannot reach its database right now. Nothing was changed; retry in a few seconds.', {
      'Retry-After': '5',
    });
  // Any other client error Express's parts raise (a corrupt gzip body, a missing or `..` static
  // file): its own status, a fixed message (theirs can carry absolute paths), and no error log.
  const status = clientErrorStatus(err);
  if (status !== undefined) return new HttpError(status, CLIENT_ERROR_CODES[status] ?? 'bad_request', clientErrorMessage(status));
  return new HttpError(500, 'internal_error', 'Something went wrong on our side; it has been logged.');
}
