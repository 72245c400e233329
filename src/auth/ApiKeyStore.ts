import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { VigieError } from '../errors.js';
import type { TenantConfig } from '../config/index.js';

export type ApiKeyScope = TenantConfig['apiKeys'][number]['scopes'][number];

export interface ApiKeyPrincipal {
  tenant: string;
  keyId: string;
  scopes: ReadonlySet<ApiKeyScope>;
}

/** Keys look like `vk_<id>_<secret>`: the id finds the stored hash, the whole key is hashed. */
const KEY_FORMAT = /^vk_([A-Za-z0-9]{4,32})_([A-Za-z0-9_-]{20,128})$/;

export function hashApiKey(key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex')}`;
}

/** Generates a key; only its hash is to be stored. */
export function generateApiKey(id = randomBytes(6).toString('hex')): { id: string; key: string; hash: string } {
  const key = `vk_${id}_${randomBytes(32).toString('base64url')}`;
  return { id, key, hash: hashApiKey(key) };
}

export class ApiKeyStore {
  readonly #byId = new Map<string, { tenant: string; hash: Buffer; scopes: Set<ApiKeyScope>; revoked: boolean }>();

  constructor(tenants: readonly TenantConfig[]) {
    for (const t of tenants) {
      for (const k of t.apiKeys) {
        if (this.#byId.has(k.id)) throw new Error(`API key id "${k.id}" is used by more than one key`);
        this.#byId.set(k.id, {
          tenant: t.id,
          hash: Buffer.from(k.hash.slice('sha256:'.length), 'hex'),
          scopes: new Set(k.scopes),
          revoked: k.revoked,
        });
      }
    }
  }

  authenticate(key: string | undefined): ApiKeyPrincipal {
    if (!key) throw new VigieError('UNAUTHORIZED', 'missing API key');
    const m = KEY_FORMAT.exec(key);
    const entry = m ? this.#byId.get(m[1]!) : undefined;
    const presented = createHash('sha256').update(key).digest();
    // Compare even when the id is unknown, so timing does not tell which ids exist.
    const expected = entry?.hash ?? Buffer.alloc(32);
    if (!timingSafeEqual(presented, expected) || !entry) throw new VigieError('UNAUTHORIZED', 'invalid API key');
    if (entry.revoked) throw new VigieError('UNAUTHORIZED', 'API key revoked');
    return { tenant: entry.tenant, keyId: m![1]!, scopes: entry.scopes };
  }
}
