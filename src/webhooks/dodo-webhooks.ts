import { Router } from 'express';
import type DodoPayments from 'dodopayments';
import type { UnwrapWebhookEvent } from 'dodopayments/resources/webhooks/webhooks';
import { z } from 'zod';
import { HttpError } from '../errors';
import type { Database } from '../db/index';
import { forgetWebhooksBefore, recordWebhook, webhookSeen } from '../db/webhook-events';
import type { Logger } from '../logger';
import { signedWebhookBody } from './signed-body';

/** A Dodo event of one type, as the SDK types it. */
export type DodoEvent<T extends UnwrapWebhookEvent['type'] = UnwrapWebhookEvent['type']> = Extract<UnwrapWebhookEvent, { type: T }>;

/** What a handler gets besides the event: the delivery id (for idempotency keys of what it triggers). */
export interface WebhookContext {
  webhookId: string;
  log: Logger;
}

/** A table of handlers by event type; each must be safe to run twice for the same webhook-id. */
export type WebhookHandlers = { [T in UnwrapWebhookEvent['type']]?: (event: DodoEvent<T>, ctx: WebhookContext) => Promise<void> };

/** How long a processed webhook-id is remembered: Dodo retries for about a day; a week is ample. */
const REMEMBER_MS = 7 * 24 * 60 * 60 * 1000;

const envelope = z.object({
  type: z.string().min(1),
  business_id: z.string(),
  timestamp: z.string(),
  data: z.record(z.string(), z.unknown()),
});

/**
 * POST /webhooks/dodo: raw body → signature and timestamp check (Standard Webhooks, via
 * the SDK) → envelope check → dedupe by webhook-id → the handler for its type.
 * Mount this router BEFORE express.json(): the signature is over the raw bytes.
 */
export function createDodoWebhookRouter(opts: {
  dodo: DodoPayments;
  webhookKey: string;
  database: Database;
  handlers: WebhookHandlers;
  log: Logger;
  now?: () => Date;
}): Router {
  const { dodo, webhookKey, database, handlers, log } = opts;
  const now = opts.now ?? (() => new Date());
  const inFlight = new Map<string, Promise<void>>();
  let seen = 0;
  const router = Router();

  const body = signedWebhookBody({
    headers: { id: 'webhook-id', timestamp: 'webhook-timestamp', signature: 'webhook-signature' },
    log,
    what: 'webhook',
  });
  router.post('/', ...body, async (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
    const headers = {
      'webhook-id': req.get('webhook-id') ?? '',
      'webhook-signature': req.get('webhook-signature') ?? '',
      'webhook-timestamp': req.get('webhook-timestamp') ?? '',
    };
    let parsed: unknown;
    try {
      // Verifies the HMAC over the raw bytes and refuses timestamps outside a 5-minute window.
      parsed = dodo.webhooks.unwrap(raw, { headers, key: webhookKey });
    } catch (err) {
      if (err instanceof SyntaxError) throw new HttpError(400, 'malformed_payload', 'The webhook body is not valid JSON.');
      log.warn({ webhookId: headers['webhook-id'] || undefined, reason: (err as Error).message }, 'webhook signature rejected');
      throw new HttpError(401, 'invalid_signature', 'The webhook signature, or its timestamp, did not verify.');
    }
    const shape = envelope.safeParse(parsed);
    if (!shape.success) throw new HttpError(400, 'malformed_payload', 'The webhook payload is not a Dodo event.');
    const event = parsed as DodoEvent;
    const webhookId = headers['webhook-id'];

    if (await webhookSeen(database, webhookId)) {
      res.json({ received: true, duplicate: true });
      return;
    }
    // A concurrent redelivery of the same id waits for the first instead of running twice.
    let work = inFlight.get(webhookId);
    const first = !work;
    if (!work) {
      work = dispatch(event, webhookId).finally(() => inFlight.delete(webhookId));
      inFlight.set(webhookId, work);
    }
    await work; // a failure answers 5xx, so Dodo redelivers later
    // The dedupe record is a unique insert: when two instances ran the same delivery at once
    // (the handlers are idempotent), exactly one records it and the other answers duplicate.
    const recorded = first && (await recordWebhook(database, webhookId, now().getTime()));
    if (recorded && ++seen % 1000 === 0)
      void forgetWebhooksBefore(database, now().getTime() - REMEMBER_MS).catch((err: unknown) =>
        log.warn({ err }, 'could not forget old webhook ids'),
      );
    res.json(recorded ? { received: true } : { received: true, duplicate: true });
  });

  async function dispatch(event: DodoEvent, webhookId: string) {
    // Only the table's own entries: `__proto__` or `toString` would be found on its prototype.
    const handler = (Object.hasOwn(handlers, event.type) ? handlers[event.type] : undefined) as
      ((e: DodoEvent, ctx: WebhookContext) => Promise<void>) | undefined;
    const ctx = { webhookId, log: log.child({ webhookId, eventType: event.type }) };
    if (!handler) {
      ctx.log.info('webhook acknowledged (no handler for this type)');
      return;
    }
    await handler(event, ctx);
  }

  return router;
}
