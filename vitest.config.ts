import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Every test file builds its own in-memory stack on an ephemeral loopback port.
    pool: 'forks',
    // Prints one line when TEST_DATABASE_URL is unset: the PostgreSQL suites are skipped.
    globalSetup: ['test/support/global-setup.ts'],
  },
});
