import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { Counter, Registry } from 'prom-client';

/**
 * What an operator watches (Prometheus text at GET /metrics): the credits MailKit settles with
 * Dodo, and those it could not (a settlement Dodo refused for want of credits: spent, never
 * paid). One registry per running stack, so that several stacks in one process (tests) keep
 * their own counts; per instance, as Prometheus expects (it sums across instances).
 */
export interface Metrics {
  readonly registry: Registry;
  /** Credits settled with Dodo (debited), by outcome. */
  settled: Counter<'outcome'>;
  /** Credits spent that Dodo no longer held when they were settled: unpaid, logged for the operator. */
  unpaid: Counter;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  return {
    registry,
    settled: new Counter({
      name: 'mailkit_settled_credits_total',
      help: 'Credits spent by emails and debited from Dodo by settlements',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    unpaid: new Counter({
      name: 'mailkit_unpaid_credits_total',
      help: 'Credits spent that Dodo no longer held when they were settled (never paid)',
      registers: [registry],
    }),
  };
}

/**
 * GET /metrics. Sandbox mode: open. Live: only with `Authorization: Bearer <METRICS_TOKEN>`,
 * and not at all (404) without a token configured, so a public address never shows it.
 */
export function metricsRoute(metrics: Metrics, token: string | null, open: boolean): RequestHandler {
  return async (req, res, next) => {
    if (!open) {
      if (!token) return next();
      const given = Buffer.from(/^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1] ?? '');
      const want = Buffer.from(token);
      if (given.length !== want.length || !timingSafeEqual(given, want))
        return void res.status(401).json({ error: { code: 'unauthorized', message: 'GET /metrics takes Authorization: Bearer <METRICS_TOKEN>.' } });
    }
    res.set('Content-Type', metrics.registry.contentType).send(await metrics.registry.metrics());
  };
}
