import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../files.js';
import path from 'node:path';
import { z } from 'zod';
import { ApiKeyStore, generateApiKey, type ApiKeyPrincipal, type ApiKeyScope } from '../auth/index.js';
import { tenantSchema, type TenantConfig, type WebhookEndpointConfig } from '../config/index.js';
import { parseOrInvalid, VigieError } from '../errors.js';

export interface TenantRegistryEvents {
  changed: [tenant: string];
}

/**
 * Every tenant's settings: embed origins, allowed storage locations, retention
 * policy, webhook endpoints and their secrets, API keys (hashed). Tenants come
 * from the config file; changes made through the admin API are kept in
 * DATA_DIR/tenants.json (0600) and win over the file for the tenants they touch.
 */
export class TenantRegistry {
  readonly observer = new EventEmitter<TenantRegistryEvents>();
  readonly #tenants = new Map<string, TenantConfig>();
  /** Tenants whose current state came from the admin API, and is persisted. */
  readonly #managed = new Set<string>();
  /** Checks another capability makes before a tenant change is accepted (e.g. retention: the policy exists). */
  readonly #checks: Array<(tenant: TenantConfig) => void> = [];
  #keys: ApiKeyStore;

  constructor(
    fileTenants: readonly TenantConfig[],
    private readonly storeFile: string,
  ) {
    // Every source goes through the one schema that fills the defaults, so no
    // code path meets a half-built tenant (the admin API and tenants.json do too).
    for (const t of fileTenants) this.#tenants.set(t.id, tenantSchema.parse(t));
    for (const t of this.#readStore()) {
      this.#tenants.set(t.id, t);
      this.#managed.add(t.id);
    }
    this.#keys = new ApiKeyStore([...this.#tenants.values()]);
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
  upsert(id: string, input: unknown): TenantConfig {
    const current = this.#tenants.get(id);
    const tenant = parseOrInvalid(tenantSchema, { ...(current ?? {}), ...(input as object), id });
    for (const check of this.#checks) check(tenant);
    this.#save(tenant);
    return tenant;
  }

  remove(id: string): void {
    this.require(id);
    this.#tenants.delete(id);
    this.#managed.add(id); // remembered as removed: the file's copy must not come back
    this.#persist(id);
  }

  createApiKey(tenant: string, scopes: ApiKeyScope[]): { id: string; key: string } {
    const t = this.require(tenant);
    const { id, key, hash } = generateApiKey();
    this.#save({ ...t, apiKeys: [...t.apiKeys, { id, hash, scopes, revoked: false }] });
    return { id, key };
  }

  revokeApiKey(tenant: string, keyId: string): void {
    const t = this.require(tenant);
    if (!t.apiKeys.some((k) => k.id === keyId)) throw new VigieError('NOT_FOUND', 'no such API key');
    this.#save({ ...t, apiKeys: t.apiKeys.map((k) => (k.id === keyId ? { ...k, revoked: true } : k)) });
  }

  addWebhook(tenant: string, input: { url: string; events?: string[] }): WebhookEndpointConfig {
    const t = this.require(tenant);
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
    this.#save({ ...t, webhooks: [...t.webhooks, created] });
    return created;
  }

  removeWebhook(tenant: string, id: string): void {
    const t = this.require(tenant);
    if (!t.webhooks.some((w) => w.id === id)) throw new VigieError('NOT_FOUND', 'no such webhook endpoint');
    this.#save({ ...t, webhooks: t.webhooks.filter((w) => w.id !== id) });
  }

  setWebhookEnabled(tenant: string, id: string, enabled: boolean): void {
    const t = this.require(tenant);
    if (!t.webhooks.some((w) => w.id === id)) throw new VigieError('NOT_FOUND', 'no such webhook endpoint');
    this.#save({ ...t, webhooks: t.webhooks.map((w) => (w.id === id ? { ...w, enabled } : w)) });
  }

  #save(tenant: TenantConfig): void {
    this.#tenants.set(tenant.id, tenant);
    this.#managed.add(tenant.id);
    this.#persist(tenant.id);
  }

  #persist(changed: string): void {
    this.#keys = new ApiKeyStore([...this.#tenants.values()]);
    const managed = [...this.#managed].map((id) => this.#tenants.get(id) ?? { id, removed: true });
    mkdirSync(path.dirname(this.storeFile), { recursive: true });
    writeFileAtomicSync(this.storeFile, JSON.stringify({ version: 1, tenants: managed }, null, 2), { mode: 0o600 });
    this.observer.emit('changed', changed);
  }

  #readStore(): TenantConfig[] {
    let raw: { tenants?: Array<TenantConfig | { id: string; removed: true }> };
    try {
      raw = JSON.parse(readFileSync(this.storeFile, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot read ${this.storeFile}: ${(err as Error).message}`);
    }
    const out: TenantConfig[] = [];
    for (const t of raw.tenants ?? []) {
      if ('removed' in t) {
        this.#tenants.delete(t.id);
        this.#managed.add(t.id);
        continue;
      }
      out.push(tenantSchema.parse(t));
    }
    return out;
  }
}
