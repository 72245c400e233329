import { defineConfig } from 'vitest/config';

// The suite runs on real components (a mediasoup worker, the ClickHouse engine, PostgreSQL, S3, browsers) that
// the test files share: ports, CPU for media, one Chromium per file. Files run one at a time, each in its own
// process, as `node --test --test-concurrency=1` did; tests within a file run in order.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // VIGIE_TEST_DATABASE=postgres: the same suite with every gateway's control plane on a PostgreSQL server.
    globalSetup: process.env.VIGIE_TEST_DATABASE === 'postgres' ? ['test/helpers/postgresSuite.ts'] : [],
    pool: 'forks',
    fileParallelism: false,
    // No timed assertions: these bound a hung component, not a slow machine (CI has 2 cores).
    testTimeout: 600_000,
    hookTimeout: 600_000,
    teardownTimeout: 120_000,
    reporters: process.env.CI ? ['verbose'] : ['default'],
  },
});
