import express, { type ErrorRequestHandler, type RequestHandler, type Router } from 'express';
import { z } from 'zod';
import { clientErrorMessage, clientErrorStatus } from '../../lib/client-error';
import { addInterval } from '../dodo/clock';
import { isCrossSite } from '../same-origin';
import { SandboxControlError, TRIGGER_EVENTS, type DodoSandbox, type ResendSandbox, type WebhookDelivery } from '../contracts';

/**
 * The sandbox's control API under /sandbox/api: what the console page and `npm run trigger`
 * drive. JSON in, JSON out, errors as `{ "error": { "code", "message" } }` (MailKit's own
 * envelope: this is MailKit's tool, not a vendor's API).
 *
 * CSRF: every write must say `Content-Type: application/json` (415 otherwise), which an HTML
 * form cannot send and a cross-origin fetch can only send after a CORS preflight this router
 * never approves; a request a browser sent from another site is refused too (403, see isCrossSite).
 */
export function createControlApi(deps: { dodo: DodoSandbox; resend?: ResendSandbox; log?: (entry: Record<string, unknown>) => void }): Router {
  const { dodo, resend } = deps;
  const router = express.Router();

  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  router.use(sameOriginJsonWrites);
  router.use(express.json({ limit: '16kb' }));

  router.get('/customers', (_req, res) => {
    res.json({ data: dodo.customers() });
  });

  router.get('/customers/:id', (req, res) => {
    const detail = dodo.customer(req.params.id);
    if (!detail) throw new SandboxControlError(404, 'not_found', `No customer ${req.params.id} in the sandbox.`);
    res.json(detail);
  });

  router.post('/customers/:id/adjust', async (req, res) => {
    const body = parse(adjustBody, req.body);
    const customerId = req.params.id;
    if (!dodo.customer(customerId)) throw new SandboxControlError(404, 'not_found', `No customer ${customerId} in the sandbox.`);
    const entitlementId = body.credit_entitlement_id ?? dodo.primaryEntitlementId();
    if (!entitlementId) throw new SandboxControlError(409, 'no_entitlement', 'The sandbox has no credit entitlement yet.');
    await dodo.adjustBalance(customerId, entitlementId, body.amount, body.reason || undefined);
    const balance = dodo.customer(customerId)!.balances.find((b) => b.credit_entitlement_id === entitlementId)?.balance ?? '0';
    res.json({ customer_id: customerId, credit_entitlement_id: entitlementId, balance });
  });

  router.get('/clock', (_req, res) => {
    res.json({ now: dodo.now().toISOString() });
  });

  router.post('/clock/advance', async (req, res) => {
    const body = parse(advanceBody, req.body ?? {});
    const from = dodo.now();
    // One billing cycle is one calendar month, the plan's own interval (README: "Clock").
    const target = body.days !== undefined ? new Date(from.getTime() + body.days * 86_400_000) : addInterval(from, 'Month', body.cycles ?? 1);
    await dodo.advanceClock(target.getTime() - from.getTime());
    res.json({ now: dodo.now().toISOString(), advanced_ms: target.getTime() - from.getTime() });
  });

  router.get('/webhooks', (_req, res) => {
    res.json({ data: dodo.webhooks.list() });
  });

  router.post('/webhooks/:id/redeliver', redeliverRoute(dodo.webhooks, deps.log));

  if (resend) {
    // The Resend half's email events: the same log and Redeliver as Dodo's, plus an off switch.
    router.get('/resend/webhooks', (_req, res) => {
      res.json({ enabled: resend.webhooks.enabled(), data: resend.webhooks.list() });
    });
    router.post('/resend/webhooks/:id/redeliver', redeliverRoute(resend.webhooks, deps.log));
    router.post('/resend/webhooks/settings', (req, res) => {
      const body = parse(resendSettingsBody, req.body);
      resend.webhooks.setEnabled(body.enabled);
      res.json({ enabled: resend.webhooks.enabled() });
    });
  }

  router.post('/trigger', async (req, res) => {
    const body = parse(triggerBody, req.body);
    const result = await dodo.trigger(body.event, body.customer_id, { amount: body.amount });
    res.status(202).json(result);
  });

  router.use((req, _res, next) => {
    next(new SandboxControlError(404, 'not_found', `No route for ${req.method} ${req.baseUrl}${req.path}.`));
  });
  router.use(errors(deps.log));
  return router;
}

const adjustBody = z.object({
  amount: z
    .number({ error: 'amount must be a number of credits, e.g. -4000' })
    .int('amount must be a whole number of credits')
    .min(-1_000_000_000)
    .max(1_000_000_000)
    .refine((v) => v !== 0, 'amount must not be zero'),
  reason: z.string().trim().max(200).optional(),
  credit_entitlement_id: z.string().min(1).max(64).optional(),
});

const advanceBody = z
  .object({
    days: z.number().positive().max(3660).optional(),
    cycles: z.number().int().min(1).max(24).optional(),
  })
  .refine((b) => b.days === undefined || b.cycles === undefined, 'send either days or cycles, not both');

const resendSettingsBody = z.object({ enabled: z.boolean({ error: 'enabled must be true or false' }) });

/** `POST …/webhooks/:id/redeliver` for either half's delivery log. */
function redeliverRoute(
  webhooks: { list(): WebhookDelivery[]; redeliver(id: string): Promise<void> },
  log?: (entry: Record<string, unknown>) => void,
): RequestHandler {
  return (req, res) => {
    const id = String(req.params.id);
    if (!webhooks.list().some((d) => d.id === id)) throw new SandboxControlError(404, 'not_found', `No webhook delivery ${id}.`);
    // Accepted, not awaited: the attempt is in flight once redeliver() returns its promise, and
    // the delivery log shows its outcome.
    webhooks.redeliver(id).catch((err: unknown) => log?.({ msg: 'redeliver failed', id, err: (err as Error).message }));
    res.status(202).json({ id, redelivering: true });
  };
}

const triggerBody = z.object({
  event: z.enum(TRIGGER_EVENTS, { error: `event must be one of ${TRIGGER_EVENTS.join(', ')}` }),
  customer_id: z.string().min(1).max(64),
  amount: z.number().int().positive().max(1_000_000_000).optional(),
});

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
  throw new SandboxControlError(400, 'invalid_request', `${where}${issue.message}`);
}

const sameOriginJsonWrites: RequestHandler = (req, _res, next) => {
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
  if (isCrossSite(req)) {
    return next(
      new SandboxControlError(403, 'cross_site_request', 'The sandbox control API only accepts requests from its own pages, curl or the CLI.'),
    );
  }
  // Checked on the header, not req.is(): a write without a body must still declare JSON.
  const type = (req.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    return next(new SandboxControlError(415, 'unsupported_media_type', 'Send Content-Type: application/json (with {} for an empty body).'));
  }
  next();
};

function errors(log?: (entry: Record<string, unknown>) => void): ErrorRequestHandler {
  return (err, _req, res, next) => {
    if (res.headersSent) return next(err);
    const e = err as { type?: string; status?: number };
    let status = 500;
    let code = 'internal_error';
    let message = 'Something went wrong in the sandbox; it has been logged.';
    if (err instanceof SandboxControlError) ({ status, code, message } = err);
    else if (e?.type === 'entity.parse.failed') [status, code, message] = [400, 'invalid_json', 'The request body is not valid JSON.'];
    else if (e?.type === 'entity.too.large') [status, code, message] = [413, 'payload_too_large', 'The request body is too large.'];
    else if (e?.type && typeof e.status === 'number' && e.status < 500)
      [status, code, message] = [e.status, 'bad_request', 'The request could not be read.'];
    else if (clientErrorStatus(err) !== undefined)
      [status, code, message] = [clientErrorStatus(err)!, 'bad_request', clientErrorMessage(clientErrorStatus(err)!)];
    else log?.({ msg: 'sandbox control API error', err: (err as Error)?.message });
    res.status(status).json({ error: { code, message } });
  };
}
