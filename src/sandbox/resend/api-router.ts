import { randomUUID } from 'node:crypto';
import express, { type ErrorRequestHandler, type RequestHandler, type Response, type Router } from 'express';
import type { CreateEmailResponseSuccess, GetEmailResponseSuccess } from 'resend';
import { clientErrorMessage, clientErrorStatus } from '../../lib/client-error';
import { refuseComplexJson } from '../../lib/json-shape';
import type { JsonStore } from '../../lib/json-store';
import type { FaultControl, OutboxMessage } from '../contracts';
import { lastEventFor } from './addresses';
import { errors, resendError, sendError } from './errors';
import type { Idempotency } from './idempotency';
import type { RateLimitDecision, RateLimiter } from './rate-limit';
import type { ResendState } from './store';
import { validateEmail, type ValidEmail } from './validate-email';

/** Resend's documented cap on one batch. */
export const MAX_BATCH = 100;
/** Resend's default rate limit, used for the headers of an injected 429 when no limit is set. */
const RESEND_DEFAULT_RATE_LIMIT = 2;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ApiRouterDeps {
  store: JsonStore<ResendState>;
  faults: { control: FaultControl; middleware: RequestHandler };
  limiter: RateLimiter;
  idempotency: Idempotency;
  now: () => number;
  maxMessages: number;
  log: (entry: Record<string, unknown>) => void;
  /** Called once for every accepted email, in the step that accepts it (the webhooks hook in here). */
  onAccepted?: (message: OutboxMessage) => void;
}

/** GET /emails/{id} body. The spec types html/text as plain strings, so a missing part is omitted, not null. */
type EmailObject = Omit<GetEmailResponseSuccess, 'html' | 'text'> & { html?: string; text?: string };

/** The permissive batch answer: ids of the accepted emails, and what was wrong with the others. */
interface BatchBody {
  data: CreateEmailResponseSuccess[];
  errors?: Array<{ index: number; message: string }>;
}

function setRateLimitHeaders(res: Response, d: Omit<RateLimitDecision, 'allowed'>, limited: boolean): void {
  res.set({
    'ratelimit-limit': String(d.limit),
    'ratelimit-remaining': String(d.remaining),
    'ratelimit-reset': String(d.resetSeconds),
  });
  if (limited) res.set('retry-after', String(d.resetSeconds));
}

/** Postgres-style timestamp, the shape Resend's `created_at` has on the wire. */
function wireTimestamp(iso: string): string {
  return iso.replace('T', ' ').replace(/\.(\d{3})Z$/, '.$1000+00');
}

function toEmailObject(m: OutboxMessage): EmailObject {
  return {
    object: 'email',
    id: m.id,
    message_id: `<${m.id}@sandbox.mailkit.local>`,
    from: m.from,
    to: m.to,
    cc: m.cc,
    bcc: m.bcc,
    reply_to: m.replyTo,
    subject: m.subject,
    ...(m.html !== null ? { html: m.html } : {}),
    ...(m.text !== null ? { text: m.text } : {}),
    tags: m.tags,
    created_at: wireTimestamp(m.createdAt),
    scheduled_at: null,
    last_event: m.lastEvent,
  };
}

/** The Resend REST subset: POST /emails, POST /emails/batch, GET /emails/{id}. */
export function createApiRouter(deps: ApiRouterDeps): Router {
  const { store, faults, limiter, idempotency, now, log } = deps;
  const router = express.Router();

  const authenticate: RequestHandler = (req, res, next) => {
    // Any non-empty bearer token is a valid key, as in stripe-mock: there are no accounts offline.
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.get('authorization') ?? '');
    if (!match) return sendError(res, errors.missingApiKey());
    res.locals.apiKey = match[1];
    next();
  };

  const rateLimit: RequestHandler = (_req, res, next) => {
    // One window for every key: Resend limits per team, not per API key.
    const decision = limiter.take();
    if (!decision) return next();
    setRateLimitHeaders(res, decision, !decision.allowed);
    if (!decision.allowed) {
      log({ msg: 'resend.rate_limited', limit: decision.limit });
      return sendError(res, errors.rateLimited(decision.limit));
    }
    next();
  };

  const faultGate: RequestHandler = (req, res, next) => {
    // An injected 429 must look like a real one, so a client's backoff can be tested against it.
    const json = res.json.bind(res);
    res.json = ((body: unknown) => {
      if (res.statusCode === 429) {
        const limit = limiter.limit() || RESEND_DEFAULT_RATE_LIMIT;
        setRateLimitHeaders(res, { limit, remaining: 0, resetSeconds: 1 }, true);
        return json(errors.rateLimited(limit));
      }
      return json(body);
    }) as Response['json'];
    faults.middleware(req, res, next);
  };

  const accept = (email: ValidEmail, createdAt: string): string => {
    const message: OutboxMessage = {
      id: randomUUID(),
      ...email,
      lastEvent: lastEventFor([...email.to, ...email.cc, ...email.bcc]),
      createdAt,
    };
    store.data.messages.unshift(message);
    log({ msg: 'resend.email.accepted', id: message.id, to: message.to, lastEvent: message.lastEvent });
    deps.onAccepted?.(message);
    return message.id;
  };

  const commit = () => {
    // Oldest messages fall off so a long benchmark cannot grow the file without bound.
    if (store.data.messages.length > deps.maxMessages) store.data.messages.length = deps.maxMessages;
    store.save();
  };

  router.use(authenticate);
  router.use(rateLimit);
  // Resend accepts bodies up to 40 MB with attachments; 10 MB is ample without them.
  // Bounded in shape too: any key is accepted, so anyone on loopback could send 10 MB of `[`.
  router.use(express.json({ limit: '10mb', verify: refuseComplexJson({ maxDepth: 64, maxValues: 200_000 }) }));
  // In flight from receipt, so the key is marked before the fault gate's latency...
  router.post(['/emails', '/emails/batch'], idempotency.receive);
  router.use(faultGate);
  // ...but replayed after it, so an injected fault also hits a keyed retry.
  router.post(['/emails', '/emails/batch'], idempotency.replay);

  router.post('/emails', (req, res) => {
    const result = validateEmail(req.body);
    if (!result.ok) return sendError(res, result.error);
    const body: CreateEmailResponseSuccess = { id: accept(result.email, new Date(now()).toISOString()) };
    // Remembered with the email in one synchronous step: a dropped response is still replayable.
    idempotency.remember(res, 200, body);
    commit();
    res.status(200).json(body);
  });

  router.post('/emails/batch', (req, res) => {
    const mode = (req.get('x-batch-validation') ?? 'strict').toLowerCase();
    if (mode !== 'strict' && mode !== 'permissive') {
      return sendError(res, resendError(422, 'validation_error', 'Invalid `x-batch-validation` header. Expected `strict` or `permissive`.'));
    }
    if (!Array.isArray(req.body)) {
      return sendError(res, resendError(422, 'validation_error', 'Invalid request body. Expected an array of emails.'));
    }
    const items: unknown[] = req.body;
    if (items.length === 0) return sendError(res, resendError(422, 'validation_error', 'The batch must contain at least one email.'));
    if (items.length > MAX_BATCH) {
      return sendError(res, resendError(422, 'validation_error', `Too many emails in the batch: the maximum is ${MAX_BATCH}.`));
    }

    const results = items.map((item) => validateEmail(item, true));
    const failures: NonNullable<BatchBody['errors']> = [];
    results.forEach((r, index) => {
      if (!r.ok) failures.push({ index, message: r.error.message });
    });
    if (mode === 'strict') {
      const first = results.findIndex((r) => !r.ok);
      const failed = results[first];
      if (failed && !failed.ok) {
        // Strict: nothing is sent; the first invalid email's error, with its position.
        return sendError(res, { ...failed.error, message: `${failed.error.message} (emails[${first}])` });
      }
    }

    const createdAt = new Date(now()).toISOString();
    const data = results.flatMap((r) => (r.ok ? [{ id: accept(r.email, createdAt) }] : []));
    const body: BatchBody = mode === 'permissive' ? { data, errors: failures } : { data };
    idempotency.remember(res, 200, body);
    commit();
    res.status(200).json(body);
  });

  // Before `/emails/:id`, so `GET /emails/batch` is a wrong method, not an email id.
  router.all(['/emails', '/emails/batch'], (_req, res) => sendError(res, errors.methodNotAllowed()));

  router.get('/emails/:id', (req, res) => {
    const id = String(req.params.id);
    if (!UUID.test(id)) return sendError(res, resendError(422, 'invalid_parameter', 'The `id` must be a valid UUID.'));
    const message = store.data.messages.find((m) => m.id === id);
    if (!message) return sendError(res, resendError(404, 'not_found', 'Email not found.'));
    res.status(200).json(toEmailObject(message));
  });

  // A known path with the wrong method is 405; anything else is 404, both in Resend's envelope.
  router.all('/emails/:id', (_req, res) => sendError(res, errors.methodNotAllowed()));
  router.use((_req, res) => sendError(res, errors.notFound()));

  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    const type = (err as { type?: string }).type;
    if (type === 'entity.parse.failed') return sendError(res, errors.malformedJson());
    if (type === 'entity.too.large') return sendError(res, resendError(413, 'validation_error', 'The request body is too large.'));
    // A body that is not the gzip it claims to be, and the like: the client's fault, not ours.
    const status = clientErrorStatus(err);
    if (status !== undefined) return sendError(res, resendError(status, 'validation_error', clientErrorMessage(status)));
    log({ msg: 'resend.internal_error', error: String((err as Error)?.stack ?? err) });
    sendError(res, errors.internal());
  };
  router.use(onError);

  return router;
}
