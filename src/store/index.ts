/**
 * The control plane's store: PostgreSQL, embedded (PGlite) or a server.
 *
 * Decorates `db`. Modules that own control-plane tables apply their own
 * migrations with `migrateStore` when they start (one owner per table).
 * ClickHouse keeps telemetry and the analytical copies that dashboards read;
 * what is mutated, shared between nodes or strictly ordered lives here.
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/index.js';
import { type Database, openDatabase } from './Database.js';
import { migrateStore } from './migrations.js';
import { SECRETS_MIGRATIONS } from './secrets.js';

export {
  isConnectionError,
  openDatabase,
  StoreUnavailableError,
  type AdvisoryLease,
  type Database,
  type Queryable,
} from './Database.js';
export { importLegacyFile, type LegacyImport, type LegacyImportOptions } from './legacy.js';
export { migrateStore, type StoreMigration } from './migrations.js';
export {
  insertOrRead,
  type KeyValueTable,
  readOrInsert,
  readValue,
  sharedSecret,
  sharedValue,
} from './secrets.js';
export { importedAlready, importOnce, importWhenReady } from './imports.js';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
  }
}

/** The embedded engine's files, under the data dir. */
export const embeddedDatabaseDir = (config: Config) => path.join(config.dataDir, 'postgres');

export default fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const { database } = opts.config;
    const db = await openDatabase({
      url: database.url,
      poolSize: database.poolSize,
      dataDir: embeddedDatabaseDir(opts.config),
    });
    app.log.info(
      { store: db.kind },
      db.kind === 'pglite' ? 'control plane: embedded PostgreSQL' : 'control plane: PostgreSQL server',
    );
    try {
      await migrateStore(db, 'store', SECRETS_MIGRATIONS, app.log);
    } catch (err) {
      await db.close();
      throw err;
    }
    app.decorate('db', db);
    // Registered before every capability, so closed after all of them (fastify runs onClose hooks last-in first-out).
    app.addHook('onClose', async () => db.close());
  },
  { name: 'vigie-store' },
);
