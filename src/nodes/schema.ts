import type { StoreMigration } from '../store/index.js';

/** The node registry's tables (owner `nodes`). */
export const STORE_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'node registry: one row per node id, its heartbeat and its load',
    sql: `
      CREATE TABLE IF NOT EXISTS nodes (
        id text PRIMARY KEY,
        instance text NOT NULL,
        public_url text NOT NULL,
        region text NOT NULL,
        started_at timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        stopped_at timestamptz,
        draining boolean NOT NULL DEFAULT false,
        workers integer NOT NULL DEFAULT 0,
        rooms integer NOT NULL DEFAULT 0,
        peers integer NOT NULL DEFAULT 0,
        consumers integer NOT NULL DEFAULT 0,
        cpu double precision NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS nodes_heartbeat_at ON nodes (heartbeat_at);
    `,
  },
];
