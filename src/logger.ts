import pino from 'pino';

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
    },
    destination,
  );
}
