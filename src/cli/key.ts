import { config as loadDotenv } from 'dotenv';
import { createApiKeys } from '../auth/api-keys';
import { ConfigError, loadConfig } from '../config';
import { createAppStore } from '../state';

/**
 * `npm run --silent key -- <customer_id>`: prints a MailKit API key for the customer on
 * stdout and nothing else, so it can be captured: KEY=$(npm run --silent key -- cus_…).
 * Minting writes nothing (keys are self-verifying), so it is safe while the server runs.
 */
const USAGE = `Usage: npm run --silent key -- <customer_id>

Prints a new MailKit API key for a Dodo customer (cus_…) on stdout.
The key works until the customer rotates it (POST /account/key) or MAILKIT_KEY_SECRET changes.
In sandbox mode, start the server once first (it generates the key secret in the data dir).`;

function main(argv: string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  const customerId = argv[0];
  if (!customerId || argv.length > 1 || !/^[A-Za-z0-9_-]{3,64}$/.test(customerId)) {
    console.error(USAGE);
    return 2;
  }
  loadDotenv({ quiet: true });
  const config = loadConfig();
  const store = createAppStore(config.dataDir); // read only: nothing is saved
  const secret = config.keySecret ?? store.data.generated.keySecret;
  if (!secret) {
    console.error(`No key secret yet in ${config.dataDir}: run \`npm start\` once, or set MAILKIT_KEY_SECRET.`);
    return 1;
  }
  const env = config.mode === 'sandbox' || config.dodo.environment === 'test_mode' ? 'test' : 'live';
  console.log(createApiKeys({ store, secret, env }).mint(customerId));
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `key: ${(err as Error).message}`);
  process.exitCode = 1;
}
