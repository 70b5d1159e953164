import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import DodoPayments from 'dodopayments';
import { config as loadDotenv } from 'dotenv';
import { createApiKeys } from '../auth/api-keys';
import { ConfigError, loadConfig, type Config } from '../config';
import { openDatabase } from '../db/index';
import { baseUrlProblem, CUSTOMER_ID, optionAt, serverOrigin } from './options';

/**
 * `npm run --silent key -- <customer_id>`: prints a MailKit API key for the customer on
 * stdout and nothing else, so it can be captured: KEY=$(npm run --silent key -- cus_…).
 * Minting writes nothing (keys are self-verifying), so it is safe while the server runs.
 * `--rotate <customer_id>` asks the running server to rotate instead (old keys stop working).
 *
 * It refuses rather than mint a key that cannot work: a data folder without the server's
 * database (a mistyped MAILKIT_DATA_DIR would otherwise get a new, empty one, and a key under
 * a secret nobody uses), and a customer Dodo does not know.
 */
const USAGE = `Usage: npm run --silent key -- <customer_id> [--base-url <url>]
       npm run --silent key -- --rotate <customer_id> [--base-url <url>]

Prints a new MailKit API key for a Dodo customer (cus_…) on stdout.
The key works until the customer rotates it (POST /account/key) or MAILKIT_KEY_SECRET changes.
It reads the server's database (MAILKIT_DATA_DIR, or DATABASE_URL) and refuses a data folder
that holds none. It asks Dodo whether the customer exists and refuses one Dodo does not know:
live, Dodo itself; in sandbox mode, the running server's sandbox (BASE_URL, or --base-url), so
the server must be running.

--rotate revokes every key the customer has and prints the one replacement: it mints the
current key locally, then calls the running server's POST /account/key with it (BASE_URL,
or --base-url). The server must be running; nothing else is printed on stdout.`;

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  const rotate = argv[0] === '--rotate';
  const rest = rotate ? argv.slice(1) : argv;
  let baseUrlArg: string | null = null;
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const baseUrlOpt = optionAt(rest, i, '--base-url');
    if (baseUrlOpt) [baseUrlArg, i] = [baseUrlOpt.value ?? '', baseUrlOpt.end];
    else positional.push(a);
  }
  const customerId = positional[0];
  if (!customerId || positional.length > 1 || !CUSTOMER_ID.test(customerId) || (baseUrlArg !== null && baseUrlProblem(baseUrlArg))) {
    console.error(USAGE);
    return 2;
  }
  loadDotenv({ quiet: true });
  const config = loadConfig();
  const origin = serverOrigin(baseUrlArg, () => config.baseUrl);
  // The server's own database (it may be running: SQLite's WAL lets this process read beside it).
  const file = join(config.dataDir, 'mailkit.sqlite');
  if (!config.databaseUrl && !existsSync(file)) {
    console.error(
      `key: no MailKit database in ${resolve(config.dataDir)} (no mailkit.sqlite there): is MAILKIT_DATA_DIR the server's? ` +
        'A server creates it when it first starts.',
    );
    return 1;
  }
  const known = await customerKnown(config, origin, customerId);
  if (known !== true) {
    console.error(known);
    return 1;
  }
  const database = await openDatabase(config.databaseUrl ? { url: config.databaseUrl, poolSize: 1 } : { file, mustExist: true });
  let current: string;
  try {
    const stored = await database.db.selectFrom('secrets').select('value').where('name', '=', 'keySecret').executeTakeFirst();
    const secret = config.keySecret ?? stored?.value;
    if (!secret) {
      console.error(`No key secret yet in ${database.where}: run \`npm start\` once, or set MAILKIT_KEY_SECRET.`);
      return 1;
    }
    const env = config.mode === 'sandbox' || config.dodo.environment === 'test_mode' ? 'test' : 'live';
    current = await createApiKeys({ database, secret, env }).mint(customerId);
  } finally {
    await database.close();
  }
  if (!rotate) {
    console.log(current);
    return 0;
  }
  return rotateOnServer(origin, customerId, current);
}

/**
 * True when Dodo knows the customer; otherwise what to tell the operator. Live: Dodo, as the
 * server reaches it. Sandbox: the running server's sandbox, which is Dodo there.
 */
async function customerKnown(config: Config, origin: string, customerId: string): Promise<true | string> {
  const sandbox = config.mode === 'sandbox';
  const dodo = sandbox
    ? new DodoPayments({ bearerToken: 'sandbox_dodo_key', baseURL: `${origin}/sandbox/dodo`, maxRetries: 0, timeout: 10_000 })
    : new DodoPayments({
        bearerToken: config.dodo.apiKey!,
        ...(config.dodo.baseUrl ? { baseURL: config.dodo.baseUrl } : { environment: config.dodo.environment }),
        maxRetries: 1,
        timeout: 15_000,
      });
  const where = sandbox ? `the sandbox of the MailKit server at ${origin}` : `Dodo (${config.dodo.baseUrl ?? config.dodo.environment})`;
  try {
    await dodo.customers.retrieve(customerId);
    return true;
  } catch (err) {
    if (err instanceof DodoPayments.NotFoundError) return `key: Dodo does not know customer ${customerId} (asked ${where}): no key minted.`;
    if (sandbox && err instanceof DodoPayments.APIConnectionError) {
      return (
        `key: MailKit is not running at ${origin}. In sandbox mode its sandbox is Dodo, asked whether ${customerId} exists: ` +
        'start the server, or pass --base-url.'
      );
    }
    return `key: could not ask ${where} whether customer ${customerId} exists (${(err as Error).message}): no key minted.`;
  }
}

/** POST /account/key with the customer's current key; prints only the new key. */
async function rotateOnServer(base: string, customerId: string, current: string): Promise<number> {
  let res: Response;
  try {
    res = await fetch(`${base}/account/key`, {
      method: 'POST',
      headers: { authorization: `Bearer ${current}`, accept: 'application/json' },
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    console.error(`key: MailKit is not running at ${base} (${(err as Error).message}). Start it, or pass --base-url.`);
    return 1;
  }
  const body = (await res.json().catch(() => null)) as { api_key?: string; error?: { code: string; message: string } } | null;
  if (res.status === 401) {
    // The locally minted key did not verify: the server uses another secret or a newer epoch.
    console.error(`key: ${base} did not accept a key for ${customerId}: is MAILKIT_DATA_DIR / MAILKIT_KEY_SECRET the server's?`);
    return 1;
  }
  if (res.status !== 201 || !body?.api_key) {
    console.error(`key: rotation failed: ${res.status} ${body?.error ? `${body.error.code}: ${body.error.message}` : ''}`.trim());
    return 1;
  }
  console.log(body.api_key);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : `key: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
