import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { ApiKeyStore, generateApiKey, type ApiKeyPrincipal, type ApiKeyScope } from '../auth/index.js';
import { tenantSchema, type TenantConfig, type WebhookEndpointConfig } from '../config/index.js';
import { parseOrInvalid, VigieError } from '../errors.js';
import type { Logger } from '../logging.js';
import { type Database, importLegacyFile, migrateStore, type Queryable } from '../store/index.js';
import { STORE_MIGRATIONS } from './schema.js';

export interface TenantRegistryEvents {
  /** A tenant was created, changed or removed, on this node or on another one. */
  changed: [tenant: string];
}

export interface TenantRegistryOptions {
  db: Database;
  /** The config file's tenants. */
  fileTenants: readonly TenantConfig[];
  /** DATA_DIR/tenants.json of the versions before the store: imported once, then renamed `.imported`. */
  legacyFile?: string;
  log: Logger;
}

/** The channel on which a committed change names its tenant, for every node to reload it. */
export const TENANTS_CHANNEL = 'vigie_tenants';

interface TenantRow {
  config: unknown;
  removed: boolean;
  version: string | number;
}

/**
 * Every tenant's settings: embed origins, allowed storage locations, retention
 * policy, webhook endpoints and their secrets, API keys (hashed).
 *
 * Tenants come from the config file; the ones changed through the admin API
 * are kept in PostgreSQL (table `tenants`) and win over the file, a removed one
 * as a tombstone. The file does not seed the store: a tenant the API never
 * touched follows the file, so editing the file still works for it; its first
 * change through the API copies it into the store.
 *
 * Reads are synchronous, from this node's copy (token verification and API
 * authentication are on hot paths). Writes run in a transaction on the store,
 * then update the copy; the transaction's NOTIFY reaches every node when it
 * commits, and each reloads that tenant (and emits `changed`).
 */
export class TenantRegistry {
  readonly observer = new EventEmitter<TenantRegistryEvents>();
  readonly #db: Database;
  readonly #log: Logger;
  readonly #fileTenants = new Map<string, TenantConfig>();
  readonly #tenants = new Map<string, TenantConfig>();
  /** The store's version of each tenant this node has applied: an older read never overwrites a newer one. */
  readonly #versions = new Map<string, number>();
  /** Checks another capability makes before a tenant change is accepted (e.g. retention: the policy exists). */
  readonly #checks: Array<(tenant: TenantConfig) => void> = [];
  #keys = new ApiKeyStore([]);
  #unlisten?: () => Promise<void>;

  private constructor(opts: TenantRegistryOptions) {
    this.#db = opts.db;
    this.#log = opts.log;
    // Every source goes through the one schema that fills the defaults, so no
    // code path meets a half-built tenant (the admin API and the store do too).
    for (const t of opts.fileTenants) {
      const tenant = tenantSchema.parse(t);
      this.#fileTenants.set(t.id, tenant);
      this.#tenants.set(t.id, tenant);
    }
  }

  /** Applies the tables' migrations, imports a legacy tenants.json, listens for changes, then loads the store. */
  static async open(opts: TenantRegistryOptions): Promise<TenantRegistry> {
    const registry = new TenantRegistry(opts);
    await migrateStore(opts.db, 'tenants', STORE_MIGRATIONS, opts.log);
    if (opts.legacyFile) await registry.#importLegacy(opts.legacyFile);
    // Listen before loading: a change committed in between is then reloaded, not missed.
    registry.#unlisten = await opts.db.listen(
      TENANTS_CHANNEL,
      (id) => registry.#onNotify(id),
      // The listening connection was lost and opened again: read every tenant, in case one changed meanwhile.
      () =>
        void registry
          .#loadAll(true)
          .catch((err) => registry.#log.error({ err }, 'could not reload the tenants after a lost connection')),
    );
    await registry.#loadAll(false);
    registry.#rebuildKeys();
    return registry;
  }

  async #loadAll(emit: boolean): Promise<void> {
    const { rows } = await this.#db.query<TenantRow & { id: string }>(
      'SELECT id, config, removed, version FROM tenants',
    );
    for (const row of rows) this.#applyRow(row.id, row, emit);
  }

  async close(): Promise<void> {
    await this.#unlisten?.();
    this.#unlisten = undefined;
  }

  has(id: string): boolean {
    return this.#tenants.has(id);
  }

  get(id: string): TenantConfig | undefined {
    return this.#tenants.get(id);
  }

  require(id: string): TenantConfig {
    const t = this.#tenants.get(id);
    if (!t) throw new VigieError('NOT_FOUND', 'no such tenant');
    return t;
  }

  list(): TenantConfig[] {
    return [...this.#tenants.values()];
  }

  authenticate(key: string | undefined): ApiKeyPrincipal {
    const principal = this.#keys.authenticate(key);
    if (!this.#tenants.has(principal.tenant)) throw new VigieError('UNAUTHORIZED', 'invalid API key');
    return principal;
  }

  /** `check` throws (a VigieError) to refuse a created or updated tenant. */
  addCheck(check: (tenant: TenantConfig) => void): void {
    this.#checks.push(check);
  }

  /** Creates or replaces a tenant's settings (API keys and webhooks are kept unless given). */
  async upsert(id: string, input: unknown): Promise<TenantConfig> {
    const tenant = await this.#change(id, (current) => {
      const next = parseOrInvalid(tenantSchema, { ...(current ?? {}), ...(input as object), id });
      for (const check of this.#checks) check(next);
      return next;
    });
    return tenant!;
  }

  async remove(id: string): Promise<void> {
    await this.#change(id, (current) => {
      if (!current) throw new VigieError('NOT_FOUND', 'no such tenant');
      return undefined;
    });
  }

  async createApiKey(tenant: string, scopes: ApiKeyScope[]): Promise<{ id: string; key: string }> {
    const { id, key, hash } = generateApiKey();
    await this.#change(tenant, (t) => {
      if (!t) throw new VigieError('NOT_FOUND', 'no such tenant');
      return { ...t, apiKeys: [...t.apiKeys, { id, hash, scopes, revoked: false }] };
    });
    return { id, key };
  }

  async revokeApiKey(tenant: string, keyId: string): Promise<void> {
    await this.#change(tenant, (t) => {
      if (!t) throw new VigieError('NOT_FOUND', 'no such tenant');
      if (!t.apiKeys.some((k) => k.id === keyId)) throw new VigieError('NOT_FOUND', 'no such API key');
      return { ...t, apiKeys: t.apiKeys.map((k) => (k.id === keyId ? { ...k, revoked: true } : k)) };
    });
  }

  async addWebhook(tenant: string, input: { url: string; events?: string[] }): Promise<WebhookEndpointConfig> {
    const endpoint = parseOrInvalid(
      z.object({ url: z.url(), events: z.array(z.string().min(1).max(64)).min(1).default(['*']) }),
      input,
    );
    const created: WebhookEndpointConfig = {
      id: `wh_${randomBytes(6).toString('hex')}`,
      url: endpoint.url,
      events: endpoint.events,
      secret: `whsec_${randomBytes(24).toString('base64url')}`,
      enabled: true,
    };
    await this.#change(tenant, (t) => {
      if (!t) throw new VigieError('NOT_FOUND', 'no such tenant');
      return { ...t, webhooks: [...t.webhooks, created] };
    });
    return created;
  }

  async removeWebhook(tenant: string, id: string): Promise<void> {
    await this.#changeWebhook(tenant, id, (webhooks) => webhooks.filter((w) => w.id !== id));
  }

  async setWebhookEnabled(tenant: string, id: string, enabled: boolean): Promise<void> {
    await this.#changeWebhook(tenant, id, (webhooks) => webhooks.map((w) => (w.id === id ? { ...w, enabled } : w)));
  }

  #changeWebhook(
    tenant: string,
    id: string,
    edit: (webhooks: WebhookEndpointConfig[]) => WebhookEndpointConfig[],
  ): Promise<TenantConfig | undefined> {
    return this.#change(tenant, (t) => {
      if (!t) throw new VigieError('NOT_FOUND', 'no such tenant');
      if (!t.webhooks.some((w) => w.id === id)) throw new VigieError('NOT_FOUND', 'no such webhook endpoint');
      return { ...t, webhooks: edit(t.webhooks) };
    });
  }

  /**
   * One change of one tenant, made on the store's current state rather than
   * this node's copy (another node may have changed it a moment ago): under a
   * per-tenant transaction lock, read, `edit` (which throws to refuse, and
   * returns undefined to remove), write the next version and NOTIFY, which
   * PostgreSQL delivers to every node when the transaction commits.
   */
  async #change(
    id: string,
    edit: (current: TenantConfig | undefined) => TenantConfig | undefined,
  ): Promise<TenantConfig | undefined> {
    const { next, version } = await this.#db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtextextended('vigie:tenant:' || $1, 0))", [id]);
      const stored = await readRow(tx, id);
      const current = stored ? this.#fromRow(stored) : this.#fileTenants.get(id);
      const next = edit(current);
      const version = Number(stored?.version ?? 0) + 1;
      await tx.query(
        `INSERT INTO tenants (id, config, removed, version) VALUES ($1, $2::jsonb, $3, $4)
         ON CONFLICT (id) DO UPDATE SET config = excluded.config, removed = excluded.removed,
           version = excluded.version, updated_at = now()`,
        [id, next ? JSON.stringify(next) : null, !next, version],
      );
      await tx.query('SELECT pg_notify($1, $2)', [TENANTS_CHANNEL, id]);
      return { next, version };
    });
    this.#apply(id, next, version);
    return next;
  }

  #fromRow(row: TenantRow): TenantConfig | undefined {
    return row.removed ? undefined : tenantSchema.parse(row.config);
  }

  /** Another node (or this one) committed a change of `id`: reload it from the store. */
  #onNotify(id: string): void {
    readRow(this.#db, id)
      .then((row) => row && this.#applyRow(id, row, true))
      .catch((err) => this.#log.error({ err, tenant: id }, 'could not reload a tenant changed on another node'));
  }

  #applyRow(id: string, row: TenantRow, emit: boolean): void {
    this.#apply(id, this.#fromRow(row), Number(row.version), emit);
  }

  #apply(id: string, tenant: TenantConfig | undefined, version: number, emit = true): void {
    // Reloads can finish out of order, and this node's own NOTIFY comes back after its write was applied.
    if (version <= (this.#versions.get(id) ?? 0)) return;
    this.#versions.set(id, version);
    if (tenant) this.#tenants.set(id, tenant);
    else this.#tenants.delete(id);
    if (!emit) return;
    this.#rebuildKeys();
    try {
      this.observer.emit('changed', id);
    } catch (err) {
      this.#log.error({ err, tenant: id }, 'a listener of tenant changes failed');
    }
  }

  #rebuildKeys(): void {
    this.#keys = new ApiKeyStore([...this.#tenants.values()]);
  }

  /**
   * tenants.json of the versions before the store held the tenants changed
   * through the admin API (and tombstones of removed ones). Imported once: a
   * tenant the store already has keeps the store's state, so a second start
   * after a crash before the rename changes nothing. Then renamed, never deleted.
   */
  async #importLegacy(file: string): Promise<void> {
    const done = await importLegacyFile(
      file,
      async (content) => {
        const raw = content as { tenants?: Array<TenantConfig | { id: string; removed: true }> };
        const entries = (raw.tenants ?? []).map((t) => ('removed' in t ? t : tenantSchema.parse(t)));
        return this.#db.transaction(async (tx) => {
          let n = 0;
          for (const t of entries) {
            const removed = 'removed' in t;
            const { rows } = await tx.query(
              `INSERT INTO tenants (id, config, removed, version) VALUES ($1, $2::jsonb, $3, 1)
               ON CONFLICT (id) DO NOTHING RETURNING id`,
              [t.id, removed ? null : JSON.stringify(t), removed],
            );
            if (rows.length) await tx.query('SELECT pg_notify($1, $2)', [TENANTS_CHANNEL, t.id]);
            n += rows.length;
          }
          return n;
        });
      },
      // An operator may have put a tenants.json back after an earlier import: neither copy is lost.
      { keepEarlier: true },
    );
    if (done)
      this.#log.info({ file, renamedTo: done.renamedTo, tenants: done.rows }, 'tenants.json imported into the store');
  }
}

async function readRow(q: Queryable, id: string): Promise<TenantRow | undefined> {
  const { rows } = await q.query<TenantRow>('SELECT config, removed, version FROM tenants WHERE id = $1', [id]);
  return rows[0];
}
