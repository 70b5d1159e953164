import { config as loadDotenv } from 'dotenv';
import { createApiKeys } from '../auth/api-keys';
import { ConfigError, loadConfig } from '../config';
import { join } from 'node:path';
import { openDatabase } from '../db/index';
import { baseUrlProblem, CUSTOMER_ID, optionAt, serverOrigin } from './options';

/**
 * `npm run --silent key -- <customer_id>`: prints a MailKit API key for the customer on
 * stdout and nothing else, so it can be captured: KEY=$(npm run --silent key -- cus_…).
 * Minting writes nothing (keys are self-verifying), so it is safe while the server runs.
 * `--rotate <customer_id>` asks the running server to rotate instead (old keys stop working).
 */
const USAGE = `Usage: npm run --silent key -- <customer_id>
       npm run --silent key -- --rotate <customer_id> [--base-url <url>]

Prints a new MailKit API key for a Dodo customer (cus_…) on stdout.
The key works until the customer rotates it (POST /account/key) or MAILKIT_KEY_SECRET changes.
In sandbox mode, start the server once first (it generates the key secret in the data dir).

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
    const baseUrlOpt = rotate ? optionAt(rest, i, '--base-url') : null;
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
  // The server's own database (it may be running: SQLite's WAL lets this process read beside it).
  const database = await openDatabase(config.databaseUrl ? { url: config.databaseUrl, poolSize: 1 } : { file: join(config.dataDir, 'mailkit.sqlite') });
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
  return rotateOnServer(serverOrigin(baseUrlArg, () => config.baseUrl), customerId, current);
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
