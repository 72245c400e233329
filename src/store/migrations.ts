import { createHash } from 'node:crypto';
import type { Logger } from '../logging.js';
import type { Database } from './Database.js';

/**
 * A versioned change to the tables of one owner. Each module that owns tables
 * (tenants, the webhook outbox, the audit chain…) keeps its own list, so that
 * two capabilities never number their migrations against each other.
 */
export interface StoreMigration {
  version: number;
  name: string;
  /** Statements without parameters, run in one transaction with the record that they ran. */
  sql: string;
}

const checksum = (m: StoreMigration) => createHash('sha256').update(m.sql).digest('hex').slice(0, 16);

/**
 * Applies the owner's migrations that are not recorded yet, each in a
 * transaction (PostgreSQL's DDL is transactional: a failed migration leaves
 * nothing behind). Nodes starting together take turns on a transaction-scoped
 * advisory lock, so each migration runs once. Returns the versions applied.
 */
export async function migrateStore(
  db: Database,
  owner: string,
  migrations: readonly StoreMigration[],
  log: Logger,
): Promise<number[]> {
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtextextended('vigie:schema_migrations', 0))");
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      owner text NOT NULL,
      version integer NOT NULL,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (owner, version))`);
  });
  const done: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    const sum = checksum(m);
    const applied = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtextextended('vigie:schema_migrations', 0))");
      const { rows } = await tx.query<{ checksum: string }>(
        'SELECT checksum FROM schema_migrations WHERE owner = $1 AND version = $2',
        [owner, m.version],
      );
      if (rows[0]) {
        if (rows[0].checksum !== sum)
          log.warn({ owner, version: m.version }, 'migration changed after it was applied; write a new one instead');
        return false;
      }
      log.info({ owner, version: m.version, name: m.name }, 'applying PostgreSQL migration');
      for (const statement of splitStatements(m.sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (owner, version, name, checksum) VALUES ($1, $2, $3, $4)', [
        owner,
        m.version,
        m.name,
        sum,
      ]);
      return true;
    });
    if (applied) done.push(m.version);
  }
  return done;
}

/**
 * Splits a migration on the semicolons that end its statements. The extended
 * protocol takes one statement per query, and a transaction runs them one by
 * one; migrations keep `;` out of string literals and function bodies.
 */
function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter(Boolean);
}
