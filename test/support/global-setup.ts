import { POSTGRES_SKIPPED, postgresUrl } from './database';

/** Once per run: say plainly when the PostgreSQL half of the database suites is not running. */
export default function setup(): void {
  if (!postgresUrl) console.warn(`\n${POSTGRES_SKIPPED}\n`);
}
