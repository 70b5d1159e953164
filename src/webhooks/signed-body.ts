import express, { type RequestHandler } from 'express';
import { HttpError } from '../errors';
import { bytesOf, refuseDeclaredOverLimit } from '../lib/body-limit';
import type { Logger } from '../logger';

/**
 * The largest webhook body read. Resend's email events carry the email's custom headers (up to
 * 50 of 998 characters) and tags: about 230 KiB at the very most. Dodo's events are a few KiB.
 */
export const WEBHOOK_BODY_LIMIT = '256kb';

/** How far a webhook's timestamp may be from now: the SDKs' own tolerance, 5 minutes. */
const TOLERANCE_SECONDS = 5 * 60;

/**
 * The raw body of a signed webhook (Standard Webhooks, or Svix's same scheme under `svix-*`
 * names), read only once the request can be one: its three signature headers are there and
 * its timestamp is within the tolerance, and its declared length within WEBHOOK_BODY_LIMIT.
 * Anything else is refused before a byte of the body is read, and the connection closed (the
 * error middleware): these routes are public, and the signature can only be checked on the
 * whole body. The SDK then verifies the signature over these raw bytes.
 */
export function signedWebhookBody(opts: {
  headers: { id: string; timestamp: string; signature: string };
  log: Logger;
  what: string;
}): RequestHandler[] {
  const { headers, log, what } = opts;
  const signatureFirst: RequestHandler = (req, _res, next) => {
    const timestamp = Number(req.get(headers.timestamp) ?? NaN);
    const reason =
      !req.get(headers.id) || !req.get(headers.signature)
        ? 'missing signature headers'
        : !Number.isSafeInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > TOLERANCE_SECONDS
          ? 'timestamp missing or outside the tolerance'
          : null;
    if (reason === null) return next();
    log.warn({ webhookId: req.get(headers.id) || undefined, reason }, `${what} signature rejected`);
    next(new HttpError(401, 'invalid_signature', 'The webhook signature, or its timestamp, did not verify.'));
  };
  return [signatureFirst, refuseDeclaredOverLimit(bytesOf(WEBHOOK_BODY_LIMIT)), express.raw({ type: () => true, limit: WEBHOOK_BODY_LIMIT })];
}
