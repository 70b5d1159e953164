import type { Stack } from './stack';

/**
 * What `npm start` prints once MailKit listens. Sandbox: where the dashboard, the outbox and
 * the console are. Live: for each vendor, where MailKit calls it (and which variable said
 * so) and whether it answered just now (one read of each: the readiness check), where the
 * vendors' webhooks must point, and a warning when that is a localhost address no vendor can
 * reach.
 */
export async function startBanner(stack: Stack): Promise<string> {
  const base = stack.baseUrl;
  const lines = [`MailKit running on ${base}`];
  if (stack.sandbox) {
    lines.push(
      '',
      'Sandbox mode: Dodo Payments and Resend are simulated locally (no accounts, no network).',
      `  Dashboard      ${base}/`,
      `  Outbox         ${base}/sandbox/outbox   (your API key arrives here after you subscribe)`,
      `  Sandbox        ${base}/sandbox`,
      '',
      'Subscribe in the dashboard, pay with the test card, copy the key from the outbox, send.',
    );
    return lines.join('\n');
  }
  const { config } = stack;
  const { checks } = await stack.readiness();
  // The reasons name their vendor ("Dodo did not answer: …"): the line already does.
  const answered = (c: { ok: boolean; reason?: string }) =>
    c.ok ? 'answered' : (c.reason ?? 'did not answer').replace(/^(Dodo|Resend|the database) /, '');
  const dodoWhere = config.dodo.baseUrl ? `${stack.dodo.baseURL} (DODO_PAYMENTS_BASE_URL)` : `${stack.dodo.baseURL} (${config.dodo.environment})`;
  const resendWhere = config.resend.baseUrl ? `${stack.resend.baseUrl} (RESEND_BASE_URL)` : stack.resend.baseUrl;
  lines.push(
    '',
    'Live mode:',
    `  Dodo Payments  ${dodoWhere}: ${answered(checks.dodo)}`,
    `  Resend         ${resendWhere}: ${answered(checks.resend)}`,
    `  Database       ${config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `SQLite in ${config.dataDir}`}: ${answered(checks.database)}`,
    `  Webhooks       Dodo → ${base}/webhooks/dodo, Resend → ${base}/webhooks/resend`,
  );
  if (isLocal(base)) {
    lines.push(
      '',
      `Warning: BASE_URL is ${base}, which Dodo and Resend cannot reach: no webhook will arrive (no API key email, no credits).`,
      '  Set BASE_URL to this server’s public HTTPS address (an ngrok URL in development) and point the webhooks there.',
    );
  }
  return lines.join('\n');
}

/** A loopback or private-network address: fine for a browser on this machine, never for a vendor's webhooks. */
function isLocal(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '::1' ||
    /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|0\.0\.0\.0$)/.test(host)
  );
}
