import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from './logger';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** This request's logger: the app's, bound to the request id. Created on first use. */
      log: Logger;
    }
  }
}

/**
 * One access-log line per request (`request completed`, or `request aborted` when the client
 * went away first) with its id, method, path, status and time, and `X-Request-Id` on the
 * answer; at debug for a read that went well, at info for anything else. No headers, bodies or
 * query values are logged: they carry keys and email content.
 *
 * Written for the hot path instead of pino-http: the per-request child logger is built only
 * when a handler actually logs, which on a send is almost never (the send costs ~0.1 ms less).
 */
export function requestLog(log: Logger, opts: { ignore?: (path: string) => boolean } = {}): RequestHandler {
  return (req, res, next) => {
    const id = randomUUID();
    const started = performance.now();
    res.setHeader('X-Request-Id', id);
    const fields = { id, method: req.method, url: req.originalUrl };
    let child: Logger | undefined;
    Object.defineProperty(req, 'log', {
      configurable: true,
      enumerable: false,
      get: () => (child ??= log.child({ req: fields })),
    });
    if (!opts.ignore?.(req.path)) {
      res.once('close', () => {
        const line = { req: fields, res: { statusCode: res.statusCode }, responseTime: Math.round(performance.now() - started) };
        if (!res.writableFinished) log.warn(line, 'request aborted');
        else if (res.statusCode >= 500) log.error(line, 'request completed');
        // A read that went well (the dashboard's and the outbox's polling, pages, assets), and the
        // sandbox's own API answering MailKit's calls, are debug: at info the terminal of a
        // click-through would be nine lines of them in ten.
        else if (res.statusCode < 400 && (req.method === 'GET' || req.method === 'HEAD' || req.originalUrl.startsWith('/sandbox/')))
          log.debug(line, 'request completed');
        else log.info(line, 'request completed');
      });
    }
    next();
  };
}
