import type { StoreMigration } from '../store/index.js';

/**
 * The tenants module's PostgreSQL tables (owner "tenants"). A row is a tenant
 * changed through the admin API: its whole settings document (API keys hashed,
 * webhook endpoints with their signing secrets), or a tombstone when it was
 * removed, so that the config file's copy does not come back. Tenants never
 * changed through the API have no row and follow the config file.
 * `version` orders the changes a node applies to its in-memory copy.
 */
export const STORE_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'tenants',
    sql: `CREATE TABLE IF NOT EXISTS tenants (
      id text PRIMARY KEY,
      config jsonb,
      removed boolean NOT NULL DEFAULT false,
      version bigint NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      CHECK (removed OR config IS NOT NULL)
    )`,
  },
];
