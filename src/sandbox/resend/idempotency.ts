import { createHash } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { JsonStore } from '../../lib/json-store';
import { errors, sendError } from './errors';
import type { ResendState } from './store';

/** How long Resend remembers an idempotency key. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Resend's documented maximum key length. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

/** What `receive` leaves in `res.locals.idempotency` for `replay` and `remember`. */
export interface IdempotencyClaim {
  scope: string;
  fingerprint: string;
}

/** Idempotency-Key handling for the sending endpoints, in two steps around the fault middleware. */
export interface Idempotency {
  /**
   * At receipt (before faults and their latency): rejects a bad key, answers 409 while the same
   * key is in flight, otherwise marks it in flight until the response is written or the
   * connection closes.
   */
  receive: RequestHandler;
  /**
   * After faults, so an injected fault also hits a retry: replays the remembered answer for the
   * same payload, answers 409 for a different one, otherwise lets the route run.
   */
  replay: RequestHandler;
  /** Records the answer for the request's key, if it had one. Call before writing the response. */
  remember(res: Response, status: number, body: unknown): void;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** JSON with sorted keys, so `{a,b}` and `{b,a}` are the same payload. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Creates the idempotency handling over the durable store. */
export function createIdempotency(store: JsonStore<ResendState>, now: () => number): Idempotency {
  // In memory only: after a restart nothing can still be in flight.
  const inFlight = new Set<string>();

  // A full scan per request would make a long run quadratic: purge at most once a second
  // (expired records are already ignored by `replay`, so purging late changes no answer).
  let lastPurge = Number.NEGATIVE_INFINITY;
  const purgeExpired = () => {
    if (now() - lastPurge < 1000) return;
    lastPurge = now();
    const cutoff = now() - IDEMPOTENCY_TTL_MS;
    for (const [scope, record] of Object.entries(store.data.idempotency)) {
      if (record.createdAt <= cutoff) delete store.data.idempotency[scope];
    }
  };

  const receive: RequestHandler = (req, res, next) => {
    const key = req.get('idempotency-key');
    if (key === undefined) return next();
    if (key.length < 1 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) return sendError(res, errors.invalidIdempotencyKey());

    const apiKey = String(res.locals.apiKey);
    // Scoped per API key and per endpoint; the API key itself is never written to disk.
    const scope = `${sha256(apiKey)} ${req.method} ${req.path.toLowerCase().replace(/\/+$/, '')} ${key}`;
    if (inFlight.has(scope)) return sendError(res, errors.concurrentIdempotentRequests());

    // The batch mode changes the outcome of the same body, so it is part of what was asked.
    const mode = req.path.toLowerCase().startsWith('/emails/batch') ? (req.get('x-batch-validation') ?? 'strict').toLowerCase() : null;
    const fingerprint = sha256(canonical({ body: req.body ?? null, mode }));
    inFlight.add(scope);
    res.once('close', () => inFlight.delete(scope));
    res.locals.idempotency = { scope, fingerprint } satisfies IdempotencyClaim;
    next();
  };

  const replay: RequestHandler = (_req, res, next) => {
    const claimed = res.locals.idempotency as IdempotencyClaim | undefined;
    if (!claimed) return next();
    const record = store.data.idempotency[claimed.scope];
    if (!record || now() - record.createdAt >= IDEMPOTENCY_TTL_MS) return next();
    if (record.fingerprint !== claimed.fingerprint) return sendError(res, errors.invalidIdempotentRequest());
    res.status(record.status).json(record.body);
  };

  return {
    receive,
    replay,
    remember(res, status, body) {
      const claimed = res.locals.idempotency as IdempotencyClaim | undefined;
      if (!claimed) return;
      purgeExpired();
      store.data.idempotency[claimed.scope] = { fingerprint: claimed.fingerprint, status, body, createdAt: now() };
      store.save();
    },
  };
}
