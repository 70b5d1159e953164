import { setFlagsFromString } from 'node:v8';
import { config as loadDotenv } from 'dotenv';
import { ConfigError, loadConfig } from './src/config';
import { createLogger } from './src/logger';
import { startBanner } from './src/start-banner';
import { startStack, type Stack } from './src/stack';

// Entry point: read config → build SDK clients (sandbox or live) → createApp → listen.
loadDotenv({ quiet: true });

// The heap's old generation may grow to 1.5× what the last full collection kept before the
// next one runs, not V8's default of up to 4× on a machine with gigabytes of memory: MailKit
// keeps about 30 MB, and under load the objects of requests in flight at a scavenge are
// promoted and die soon after, so with the default the resident size saw-tooths by about
// 100 MB between full collections. A `node --heap-growing-percent=N` on the command line wins.
if (!process.execArgv.some((a) => a.startsWith('--heap-growing-percent'))) setFlagsFromString('--heap-growing-percent=50');

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}

const log = createLogger(config.logLevel);
// A rejection nobody handled is a bug: log it loudly, keep serving.
process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));

// Graceful shutdown, listening before anything starts: stop accepting, let in-flight sends
// settle, flush state. A second signal, or 15 s, forces the exit.
let stack: Stack | undefined;
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    if (!stack) process.exit(0); // still starting: nothing accepted yet
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    stack.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}

stack = await startStack(config, { log }).catch((err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') console.error(`Port ${config.port} is already in use. Stop the other process or set PORT.`);
  else console.error('MailKit failed to start:', (err as Error).message);
  process.exit(1);
});

console.log(await startBanner(stack));
