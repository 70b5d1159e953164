import express, { Router } from 'express';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CATALOG } from '../billing/catalog';
import { createConsoleRouter } from './console/console-router';
import type { DodoRateLimit, DodoSandbox, ResendSandbox, ResendWebhookOptions } from './contracts';
import { createDodoSandbox } from './dodo';
import { createResendSandbox } from './resend';

export type { DodoSandbox, ResendSandbox } from './contracts';

/** The local Dodo Payments and Resend, mounted under /sandbox in sandbox mode only. */
export interface Sandbox {
  /** Mount at /sandbox: / (console), /api (control API), /dodo, /checkout, /resend, /outbox, /assets. */
  router: Router;
  dodo: DodoSandbox;
  resend: ResendSandbox;
  close(): Promise<void>;
}

export interface SandboxOptions {
  /** Directory for the sandbox's durable state, or null for fresh in-memory instances (tests). */
  dataDir: string | null;
  webhookSecret: string;
  webhookUrl: string;
  /** Origin the browser uses (checkout links are built from it). */
  publicUrl: string;
  /** Resend API requests a second, all keys together (0 or omitted: none). */
  resendRateLimit?: number;
  /** Dodo API quota: requests a minute sustained and the burst (perMinute 0 or omitted: none). */
  dodoRateLimit?: DodoRateLimit;
  /** The Resend half's email events (secret, url, …); absent: it emits none. */
  resendWebhooks?: ResendWebhookOptions;
  webhookRetryDelaysMs?: number[];
  log?: (entry: Record<string, unknown>) => void;
}

const assetsDir = fileURLToPath(new URL('./assets', import.meta.url));

/** Builds both halves and the router that serves them. */
export function createSandbox(opts: SandboxOptions): Sandbox {
  const file = (name: string) => (opts.dataDir ? join(opts.dataDir, name) : null);
  const dodo = createDodoSandbox({
    dataFile: file('sandbox-dodo.json'),
    webhookSecret: opts.webhookSecret,
    webhookUrl: opts.webhookUrl,
    publicUrl: opts.publicUrl,
    apiPath: '/sandbox/dodo',
    checkoutPath: '/sandbox/checkout',
    webhookRetryDelaysMs: opts.webhookRetryDelaysMs,
    // The console and triggers act on the tutorial's entitlement, the one MailKit provisions.
    primaryEntitlementName: CATALOG.entitlement.name,
    rateLimit: opts.dodoRateLimit,
    log: opts.log,
  });
  const resend = createResendSandbox({
    dataFile: file('sandbox-resend.json'),
    apiPath: '/sandbox/resend',
    outboxPath: '/sandbox/outbox',
    rateLimitPerSecond: opts.resendRateLimit,
    webhooks: opts.resendWebhooks,
    log: opts.log,
  });

  const router = Router();
  router.use('/assets', express.static(assetsDir, { fallthrough: false }));
  router.use('/dodo', dodo.api);
  router.use('/checkout', dodo.checkout);
  router.use('/resend', resend.api);
  router.use('/outbox', resend.outbox);
  // Last: the console's `/` and `/api` must not shadow the halves above.
  router.use(
    createConsoleRouter({ dodo, resend, consolePath: '/sandbox', outboxPath: '/sandbox/outbox', assetsPath: '/sandbox/assets', log: opts.log }),
  );

  return {
    router,
    dodo,
    resend,
    async close() {
      await Promise.all([dodo.close(), resend.close()]);
    },
  };
}
