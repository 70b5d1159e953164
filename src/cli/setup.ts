import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import DodoPayments from 'dodopayments';
import { parse as parseDotenv } from 'dotenv';
import { CATALOG, ensureCatalog, findCatalog, type FoundCatalog } from '../billing/catalog';
import { ConfigError, loadConfig } from '../config';
import { baseUrlProblem, io, optionAt, serverOrigin, type CommandContext } from './options';

/**
 * `npm run setup`: provisions the tutorial's Dodo catalog (the Email Credits entitlement, the
 * plan, the top-up pack) through the Dodo API, finding existing ones by name, and records their
 * ids in `.env`. Factored as runSetup() so tests drive it in-process with their own env and cwd.
 */
export const SETUP_USAGE = `Usage: npm run setup [-- --dry-run] [-- --write] [-- --base-url <url>]

Provisions the tutorial's catalog through the Dodo API: the "${CATALOG.entitlement.name}" credit
entitlement, the "${CATALOG.plan.name}" product and the "${CATALOG.topup.name}" product. Existing
ones are found by name, never duplicated; running it twice changes nothing.

Where:
  DODO_PAYMENTS_API_KEY set    Dodo itself (DODO_PAYMENTS_ENVIRONMENT, default test_mode, or
                               DODO_PAYMENTS_BASE_URL). The ids are written to .env.
  DODO_PAYMENTS_API_KEY empty  The sandbox of the running MailKit server (BASE_URL, or
                               http://localhost:$PORT, + /sandbox/dodo; start it with npm start).
                               The ids are printed only: in sandbox mode the server provisions
                               its own catalog and ignores them. --write records them anyway.

Options:
  --dry-run         Look the three up and say what would be created; create and write nothing.
  --write           Sandbox mode: write the ids to .env too.
  --base-url <url>  The MailKit server to use in sandbox mode (default BASE_URL).
  -h, --help        This help.

.env is created from .env.example when missing; only the CREDIT_ENTITLEMENT_ID, PLAN_PRODUCT_ID
and TOPUP_PRODUCT_ID lines change, everything else is kept byte for byte. Secrets are never printed.`;

/** What the three ids are called in .env. */
export const ENV_KEYS = {
  creditEntitlementId: 'CREDIT_ENTITLEMENT_ID',
  planProductId: 'PLAN_PRODUCT_ID',
  topupProductId: 'TOPUP_PRODUCT_ID',
} as const;
const LABELS = { creditEntitlementId: CATALOG.entitlement.name, planProductId: CATALOG.plan.name, topupProductId: CATALOG.topup.name } as const;
const CREATED_KEY = { entitlement: 'creditEntitlementId', plan: 'planProductId', topup: 'topupProductId' } as const;

export type SetupOptions = CommandContext;

/** Runs the setup command; resolves to the exit code (0 ok, 1 failed, 2 usage). */
export async function runSetup(o: SetupOptions): Promise<number> {
  const { out, err } = io(o);
  const args = parseArgs(o.argv);
  if (args === 'help') {
    out(SETUP_USAGE);
    return 0;
  }
  if (typeof args === 'string') {
    err(`setup: ${args}\n\n${SETUP_USAGE}`);
    return 2;
  }

  const envFile = join(o.cwd, '.env');
  const fromFile = existsSync(envFile) ? parseDotenv(readFileSync(envFile)) : {};
  const env: Record<string, string | undefined> = { ...fromFile };
  for (const [k, v] of Object.entries(o.env)) if (v !== undefined) env[k] = v;

  const live = Boolean(env.DODO_PAYMENTS_API_KEY?.trim());
  let dodo: DodoPayments;
  let where: string;
  if (live) {
    const environment = env.DODO_PAYMENTS_ENVIRONMENT?.trim() || 'test_mode';
    if (environment !== 'test_mode' && environment !== 'live_mode') {
      err(`setup: DODO_PAYMENTS_ENVIRONMENT must be test_mode or live_mode, not "${environment}".`);
      return 1;
    }
    const baseURL = env.DODO_PAYMENTS_BASE_URL?.trim() || null;
    dodo = new DodoPayments({
      bearerToken: env.DODO_PAYMENTS_API_KEY!.trim(),
      ...(baseURL ? { baseURL } : { environment }),
      fetch: o.fetch,
      maxRetries: 1,
      timeout: 20_000,
    });
    where = baseURL ? `Dodo at ${baseURL}` : `Dodo ${environment}`;
  } else {
    let base: string;
    try {
      base = serverOrigin(args.baseUrl, () => loadConfig(env).baseUrl);
    } catch (e) {
      err(e instanceof ConfigError ? e.message : `setup: ${(e as Error).message}`);
      return 1;
    }
    const running = await reachable(`${base}/healthz`, io(o).fetch);
    if (!running) {
      err(
        `setup: MailKit is not running at ${base}. In sandbox mode setup talks to the server's built-in Dodo sandbox: ` +
          'start it with `npm start` in another terminal (or pass --base-url), then run setup again.',
      );
      return 1;
    }
    dodo = new DodoPayments({ bearerToken: 'sandbox_dodo_key', baseURL: `${base}/sandbox/dodo`, fetch: o.fetch, maxRetries: 0, timeout: 10_000 });
    where = `the Dodo sandbox at ${base}/sandbox/dodo`;
  }

  let ids: FoundCatalog;
  let created: Array<keyof FoundCatalog> = [];
  try {
    if (args.dryRun) {
      ids = await findCatalog(dodo);
    } else {
      const result = await ensureCatalog(dodo);
      ids = result;
      created = result.created.map((c) => CREATED_KEY[c]);
    }
  } catch (e) {
    err(`setup: ${describeFailure(e, where)}`);
    return 1;
  }

  out(`${args.dryRun ? 'Dry run against' : 'Catalog on'} ${where}:`);
  for (const key of Object.keys(ENV_KEYS) as Array<keyof FoundCatalog>) {
    const id = ids[key];
    const state = !id ? 'missing: would be created' : created.includes(key) ? 'created' : 'found';
    out(`  ${ENV_KEYS[key].padEnd(22)} ${(id ?? '-').padEnd(27)} ${LABELS[key]} (${state})`);
  }

  if (args.dryRun) {
    out('Nothing was created or written (--dry-run).');
    return 0;
  }
  if (!live && !args.write) {
    out('Not written to .env: in sandbox mode MailKit provisions its own catalog and ignores these ids.');
    out('Pass --write to record them anyway (remove them before you go live: they exist only in this sandbox).');
    return 0;
  }
  const written = writeEnv(o.cwd, {
    CREDIT_ENTITLEMENT_ID: ids.creditEntitlementId!,
    PLAN_PRODUCT_ID: ids.planProductId!,
    TOPUP_PRODUCT_ID: ids.topupProductId!,
  });
  out(`${written.created ? 'Created .env from .env.example and wrote' : 'Wrote'} ${Object.values(ENV_KEYS).join(', ')} to ${written.path}.`);
  if (live) out('Restart MailKit to use them.');
  return 0;
}

type Args = { dryRun: boolean; write: boolean; baseUrl: string | null };

function parseArgs(argv: string[]): Args | 'help' | string {
  const args: Args = { dryRun: false, write: false, baseUrl: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const baseUrlOpt = optionAt(argv, i, '--base-url');
    if (a === '-h' || a === '--help') return 'help';
    else if (a === '--dry-run') args.dryRun = true;
    else if (a === '--write') args.write = true;
    else if (baseUrlOpt) {
      const problem = baseUrlProblem(baseUrlOpt.value);
      if (problem) return problem;
      [args.baseUrl, i] = [baseUrlOpt.value!, baseUrlOpt.end];
    } else return `unknown argument "${a}"`;
  }
  return args;
}

async function reachable(url: string, f: typeof fetch): Promise<boolean> {
  try {
    const res = await f(url, { signal: AbortSignal.timeout(5_000) });
    await res.arrayBuffer().catch(() => undefined);
    return true;
  } catch {
    return false;
  }
}

/** A failure without secrets: the status and Dodo's message, never the request's headers. */
function describeFailure(e: unknown, where: string): string {
  const status = (e as { status?: number }).status;
  if (status === 401 || status === 403) return `${where} refused the API key (${status}). Check DODO_PAYMENTS_API_KEY and DODO_PAYMENTS_ENVIRONMENT.`;
  if (typeof status === 'number') return `${where} answered ${status}: ${(e as Error).message}`;
  return `could not reach ${where}: ${(e as Error).message}`;
}

/**
 * Sets `KEY=value` lines in `<cwd>/.env` (created from .env.example when missing): existing lines
 * are replaced in place, missing ones appended; every other byte is kept.
 */
export function writeEnv(cwd: string, values: Record<string, string>): { path: string; created: boolean } {
  const path = join(cwd, '.env');
  const example = join(cwd, '.env.example');
  const created = !existsSync(path);
  let text = created ? (existsSync(example) ? readFileSync(example, 'utf8') : '') : readFileSync(path, 'utf8');
  for (const [key, value] of Object.entries(values)) {
    const line = new RegExp(`^([ \\t]*(?:export[ \\t]+)?${key}[ \\t]*=[ \\t]*)[^\\r\\n]*`, 'gm');
    if (line.test(text)) text = text.replace(line, (_m, head: string) => `${head}${value}`);
    else text += `${text === '' || text.endsWith('\n') ? '' : '\n'}${key}=${value}\n`;
  }
  writeFileSync(path, text, { mode: 0o600 });
  return { path, created };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runSetup({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd() }).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(`setup: ${(e as Error).message}`);
      process.exitCode = 1;
    },
  );
}
