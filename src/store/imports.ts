import type { Logger } from '../logging.js';
import type { Database, Queryable } from './Database.js';
import { migrateStore, type StoreMigration } from './migrations.js';

/** Owner `store-imports`: which one-time imports of a previous version's data have run. */
const IMPORTS_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'store_imports: one-time imports of data kept elsewhere by the version before',
    sql: `CREATE TABLE IF NOT EXISTS store_imports (
  source text PRIMARY KEY,
  rows bigint NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now()
);`,
  },
];

/**
 * Runs `load` once for `source` on the whole cluster: in one transaction with
 * the record that it ran, under an advisory lock, so that two nodes starting
 * together import once, and a crash in the middle leaves nothing half done
 * (the next start imports again). Resolves to the rows `load` wrote, or
 * undefined when an earlier start (on any node) already imported them.
 */
export async function importOnce(
  db: Database,
  source: string,
  log: Logger,
  load: (tx: Queryable) => Promise<number>,
): Promise<number | undefined> {
  await migrateStore(db, 'store-imports', IMPORTS_MIGRATIONS, log);
  const n = await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`vigie:import:${source}`]);
    const { rows } = await tx.query('SELECT 1 FROM store_imports WHERE source = $1', [source]);
    if (rows[0]) return undefined;
    const loaded = await load(tx);
    await tx.query('INSERT INTO store_imports (source, rows) VALUES ($1, $2)', [source, loaded]);
    return loaded;
  });
  if (n !== undefined) log.info({ source, rows: n }, 'imported into PostgreSQL');
  return n;
}

/** Whether `source` was imported already, by any node (so what it would be imported from is not needed). */
export async function importedAlready(db: Database, source: string, log: Logger): Promise<boolean> {
  await migrateStore(db, 'store-imports', IMPORTS_MIGRATIONS, log);
  const { rows } = await db.query('SELECT 1 FROM store_imports WHERE source = $1', [source]);
  return rows.length > 0;
}

/**
 * Runs an import from ClickHouse now if its schema is ready (a failure then
 * stops the start: nothing is imported by halves, and the next start tries
 * again), else once it is (a failure is then logged; the next start tries again).
 */
export async function importWhenReady(
  ch: { readonly schemaReady: boolean; observer: { once(event: 'ready', fn: () => void): unknown } },
  what: string,
  log: Logger,
  run: () => Promise<unknown>,
): Promise<void> {
  if (ch.schemaReady) {
    await run();
    return;
  }
  ch.observer.once('ready', () => void run().catch((err) => log.error({ err }, `${what} could not be imported`)));
}
