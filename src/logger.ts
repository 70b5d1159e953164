import pino from 'pino';

/** What a failed vendor call carries for the log (DodoUnavailable's `upstream`). */
export function upstreamOf(err: unknown): { vendor: string; host: string; cause: string } | undefined {
  const u = (err as { upstream?: { vendor: string; host: string; cause: string } } | null)?.upstream;
  return u && typeof u.vendor === 'string' ? u : undefined;
}

/** The app's structured logger type. */
export type Logger = pino.Logger;

/**
 * JSON lines on stdout. Secrets never reach a log line: the paths below are redacted
 * wherever they appear (request headers, config, SDK errors), and no handler logs an
 * email body or an API key.
 */
export function createLogger(level = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["webhook-signature"]',
          'req.headers["idempotency-key"]',
          'headers.authorization',
          '*.apiKey',
          '*.webhookKey',
          '*.keySecret',
          'key',
          'html',
          'text',
        ],
        censor: '[redacted]',
      },
      // A vendor that failed is an outage, not a bug: where MailKit called and why, no stack.
      serializers: {
        err: (err: unknown) => (upstreamOf(err) ? { type: (err as Error).name, ...upstreamOf(err) } : pino.stdSerializers.err(err as Error)),
      },
    },
    destination,
  );
}
