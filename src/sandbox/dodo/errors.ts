import type { ErrorRequestHandler, RequestHandler } from 'express';
import { clientErrorMessage, clientErrorStatus } from '../../lib/client-error';

/** Dodo's error envelope: `{ "code": "UPPER_SNAKE", "message": "..." }`. */
export interface DodoErrorBody {
  code: string;
  message: string;
}

/** An error a route throws to answer with a status and Dodo's envelope. */
export class DodoApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const defaultCodes: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  410: 'GONE',
  422: 'INVALID_REQUEST_BODY',
  429: 'TOO_MANY_REQUESTS',
  500: 'INTERNAL_SERVER_ERROR',
  502: 'BAD_GATEWAY',
  503: 'SERVICE_UNAVAILABLE',
  504: 'GATEWAY_TIMEOUT',
};

/** The envelope for a bare status (used for injected faults). */
export function errorBodyFor(status: number): DodoErrorBody {
  return { code: defaultCodes[status] ?? 'ERROR', message: `Sandbox fault: HTTP ${status}` };
}

/** 404 for any route the sandbox does not implement, in Dodo's envelope (stripe-mock style). */
export const notFoundRoute: RequestHandler = (req, res) => {
  res.status(404).json({ code: 'NOT_FOUND', message: `No such route: ${req.method} ${req.path}` } satisfies DodoErrorBody);
};

/** The API's one error path: DodoApiError as-is, body-parser failures as 400, anything else a bare 500. */
export function createErrorHandler(log?: (entry: Record<string, unknown>) => void): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    if (err instanceof DodoApiError) {
      res.status(err.status).json({ code: err.code, message: err.message } satisfies DodoErrorBody);
      return;
    }
    const type = (err as { type?: string }).type;
    if (type === 'entity.parse.failed') {
      // Like axum's JsonSyntaxError: malformed JSON is a 400; well-formed JSON of the wrong shape is a 422.
      res.status(400).json({ code: 'INVALID_JSON', message: 'Request body is not valid JSON' } satisfies DodoErrorBody);
      return;
    }
    if (type === 'entity.too.large') {
      res.status(413).json({ code: 'PAYLOAD_TOO_LARGE', message: 'Request body is too large' } satisfies DodoErrorBody);
      return;
    }
    // A body that is not the gzip it claims to be, and the like: the client's fault, not ours.
    const status = clientErrorStatus(err);
    if (status !== undefined) {
      res.status(status).json({ code: defaultCodes[status] ?? 'BAD_REQUEST', message: clientErrorMessage(status) } satisfies DodoErrorBody);
      return;
    }
    log?.({ msg: 'dodo sandbox: unhandled error', err: String((err as Error)?.stack ?? err) });
    // Never leak a stack: the client sees Dodo's generic 500.
    res.status(500).json({ code: 'INTERNAL_SERVER_ERROR', message: 'Something went wrong :(' } satisfies DodoErrorBody);
  };
}
