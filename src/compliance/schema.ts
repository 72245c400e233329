import type { StoreMigration } from '../store/index.js';

/**
 * The audit chain's tables in the control plane (owner `audit`).
 *
 * - `audit_heads`: one row per tenant chain, locked (FOR UPDATE) by every
 *   append, so nodes take turns on a chain and its seq has no gap or double.
 * - `audit_outbox`: each entry (and signed checkpoint) from the transaction
 *   that appended it until ClickHouse has acknowledged its copy. `batch` is
 *   written before the insert and is the insert's deduplication token, so a
 *   batch sent twice is stored once.
 *
 * The heads were taken once from what the version before kept in ClickHouse:
 * that import is recorded with the store's other one-time imports
 * (`store_imports`, source `clickhouse:audit_heads`), and version 2 drops the
 * table version 1 kept it in.
 */
export const STORE_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'audit chain heads, the outbox to ClickHouse, the record of the import',
    sql: `CREATE TABLE IF NOT EXISTS audit_heads (
  tenant text PRIMARY KEY,
  seq bigint NOT NULL,
  hash text NOT NULL,
  last_checkpoint_seq bigint NOT NULL DEFAULT 0,
  last_checkpoint_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_outbox (
  id bigserial PRIMARY KEY,
  tbl text NOT NULL,
  tenant text NOT NULL,
  seq bigint NOT NULL,
  body jsonb NOT NULL,
  batch text
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_outbox_entry ON audit_outbox (tenant, seq) WHERE tbl = 'audit_log';
CREATE INDEX IF NOT EXISTS audit_outbox_batch ON audit_outbox (batch);
CREATE TABLE IF NOT EXISTS audit_imports (
  source text PRIMARY KEY,
  chains integer NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 2,
    name: 'the import of the heads is recorded in store_imports (importOnce), like every one-time import',
    sql: 'DROP TABLE IF EXISTS audit_imports;',
  },
];
