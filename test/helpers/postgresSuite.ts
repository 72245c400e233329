/**
 * The whole suite on a PostgreSQL server instead of the embedded PGlite:
 * `VIGIE_TEST_DATABASE=postgres npx vitest run` (npm run test:postgres). One
 * server (Debian's PostgreSQL 15, test/helpers/postgres.ts) serves the run,
 * started by vitest's global setup; each gateway a test starts gets a database
 * of its own on it, named by its data directory so that a gateway restarted on
 * the same data directory finds its control plane again, as a node does.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { TestProject } from 'vitest/node';
import { startPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresSuiteUrl: string;
  }
}

/** Whether this run puts every gateway's control plane on the PostgreSQL server. */
export const onPostgresServer = () => process.env.VIGIE_TEST_DATABASE === 'postgres';

/** vitest globalSetup: starts the server for the run and stops it at the end. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('postgresSuiteUrl', server.url);
  return () => server.stop();
}

/**
 * The URL of the database of the gateway whose data directory is `dataDir`,
 * created on first use. Its name is derived from the directory (no marker file
 * in it: the retention inventory checks every file there).
 */
export async function gatewayDatabaseUrl(dataDir: string): Promise<string> {
  const base = inject('postgresSuiteUrl');
  if (!base) throw new Error('VIGIE_TEST_DATABASE=postgres, but the global setup started no PostgreSQL server');
  const name = `gw_${createHash('sha256').update(dataDir).digest('hex').slice(0, 32)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}
