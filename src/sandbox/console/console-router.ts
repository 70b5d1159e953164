import express, { type Router } from 'express';
import type { DodoSandbox, ResendSandbox } from '../contracts';
import { createControlApi } from './control-api';
import { renderConsolePage } from './console-page';

/** How many deliveries the page lists (the JSON API has them all). */
const WEBHOOKS_SHOWN = 100;

export interface ConsoleRouterOptions {
  dodo: DodoSandbox;
  /** The Resend half: its email-event log is shown below Dodo's. */
  resend?: ResendSandbox;
  /** Where this router is mounted (the page's own path), e.g. /sandbox. */
  consolePath: string;
  outboxPath: string;
  assetsPath: string;
  log?: (entry: Record<string, unknown>) => void;
}

/** The console page at `/` and its control API at `/api`, relative to the mount point. */
export function createConsoleRouter(o: ConsoleRouterOptions): Router {
  const router = express.Router();
  const apiPath = `${o.consolePath}/api`;
  router.use('/api', createControlApi({ dodo: o.dodo, resend: o.resend, log: o.log }));

  router.get('/', (req, res) => {
    const customers = o.dodo.customers();
    // ?customer= from a row link; ?customer_id= from the adjust form submitted without JavaScript.
    const asked = [req.query.customer, req.query.customer_id].find((v): v is string => typeof v === 'string' && v.length > 0);
    const selected = o.dodo.customer(asked ?? customers[0]?.customer_id ?? '') ?? (customers[0] ? o.dodo.customer(customers[0].customer_id) : null);
    const webhooks = o.dodo.webhooks.list();
    const emailEvents = o.resend?.webhooks.list() ?? [];
    res.set('Cache-Control', 'no-store');
    res.type('html').send(
      renderConsolePage({
        now: o.dodo.now(),
        customers,
        selected,
        webhooks: webhooks.slice(0, WEBHOOKS_SHOWN),
        moreWebhooks: Math.max(0, webhooks.length - WEBHOOKS_SHOWN),
        emailEvents: o.resend
          ? {
              enabled: o.resend.webhooks.enabled(),
              shown: emailEvents.slice(0, WEBHOOKS_SHOWN),
              more: Math.max(0, emailEvents.length - WEBHOOKS_SHOWN),
            }
          : null,
        consolePath: o.consolePath,
        apiPath,
        outboxPath: o.outboxPath,
        assetsPath: o.assetsPath,
      }),
    );
  });
  return router;
}
