import { defineConfig } from 'vitest/config';

/** Browser tests: Debian's Chromium driven by playwright-core against an in-process stack. */
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.e2e.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One Chromium at a time: the suite runs on small CI machines.
    fileParallelism: false,
  },
});
