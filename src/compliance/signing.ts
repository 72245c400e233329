import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  CompactSign,
  compactVerify,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';
import type { Logger } from '../logging.js';
import { type Database, migrateStore, type StoreMigration } from '../store/index.js';

export interface Signer {
  kid: string;
  publicJwk: JWK;
  /**
   * Every public key that ever signed on any node of this control plane (this node's current one first): what
   * verification and the JWKS use. Kept current as other nodes add theirs.
   */
  readonly publicJwks: JWK[];
  /** Resolves a JWS's `kid` to one of `publicJwks`. */
  verificationKeys: JWTVerifyGetKey;
  /** Compact JWS over a JSON payload. */
  sign(payload: object): Promise<string>;
  /** Detached JWS (`header..signature`) over a file's SHA-256, for exports and archives. */
  signDigest(sha256Hex: string): Promise<string>;
}

/**
 * The key that signs audit checkpoints and exports: ES256, from
 * VIGIE_AUDIT_SIGNING_KEY_FILE (a private JWK) or generated once in the data
 * directory. Its public half is published at /.well-known/jwks.json.
 *
 * Rotation: point VIGIE_AUDIT_SIGNING_KEY_FILE at a new key (or remove the
 * generated one) and restart. Every public key that ever signed is kept in the
 * control plane's PostgreSQL (`audit_signing_keys`), so checkpoints and exports
 * signed before the rotation still verify, by their `kid`, and stay in the JWKS.
 *
 * Several nodes: each signs with its own private key, which never leaves it;
 * their public keys meet in that table, and each node's JWKS lists them all
 * (a node learns of another's new key by NOTIFY, or when a signature names a
 * kid it does not know yet). The previous version's ring file is imported.
 */
export async function loadSigner(
  dataDir: string,
  keyFile: string | undefined,
  db: Database,
  log: Logger,
): Promise<Signer> {
  const file = keyFile ?? path.join(dataDir, 'secrets', 'audit-signing-key.jwk');
  let jwk: JWK;
  try {
    jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK;
  } catch (err) {
    if (keyFile || (err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new Error(`cannot read the audit signing key ${file}: ${(err as Error).message}`);
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    jwk = await exportJWK(privateKey);
    jwk.kid = keyId(jwk);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  }
  const key = await importJWK({ ...jwk, alg: 'ES256' }, 'ES256');
  const { d: _private, ...publicHalf } = jwk;
  // A key without a kid gets one from its public point, so two such keys never share one.
  const kid = jwk.kid ?? keyId(jwk);
  const publicJwk: JWK = { ...publicHalf, kid, alg: 'ES256', use: 'sig' };
  const ring = new KeyRing(db, publicJwk);
  await ring.open(path.join(dataDir, 'secrets', 'audit-signing-keys.public.json'), log);
  const sign = (payload: Uint8Array) => new CompactSign(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
  return {
    kid,
    publicJwk,
    get publicJwks() {
      return ring.keys;
    },
    verificationKeys: (header, token) => ring.verificationKey(header, token),
    sign: (payload) => sign(new TextEncoder().encode(JSON.stringify(payload))),
    signDigest: async (sha256Hex) => {
      const [h, , s] = (await sign(new TextEncoder().encode(digestPayload(sha256Hex)))).split('.');
      return `${h}..${s}`;
    },
  };
}

const keyId = (jwk: JWK) =>
  `vigie-audit-${createHash('sha256')
    .update(JSON.stringify([jwk.x, jwk.y]))
    .digest('hex')
    .slice(0, 12)}`;

export const SIGNING_KEY_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'audit_signing_keys: the public half of every key that signed on any node',
    sql: `CREATE TABLE IF NOT EXISTS audit_signing_keys (
      kid text PRIMARY KEY,
      jwk jsonb NOT NULL,
      added_at timestamptz NOT NULL DEFAULT now()
    );`,
  },
];

const KEYS_CHANGED = 'vigie_audit_signing_keys';

/** The public keys of every node, past and present, with this node's current key first. */
class KeyRing {
  #keys: JWK[] = [];
  #jwks: JWTVerifyGetKey = createLocalJWKSet({ keys: [] });

  constructor(
    private readonly db: Database,
    private readonly current: JWK,
  ) {}

  get keys(): JWK[] {
    return this.#keys;
  }

  async open(legacyRingFile: string, log: Logger): Promise<void> {
    await migrateStore(this.db, 'audit-signing', SIGNING_KEY_MIGRATIONS, log);
    const legacy = existsSync(legacyRingFile)
      ? (JSON.parse(readFileSync(legacyRingFile, 'utf8')) as { keys: JWK[] }).keys
      : [];
    await this.db.transaction(async (tx) => {
      for (const jwk of [...legacy, this.current])
        await tx.query('INSERT INTO audit_signing_keys (kid, jwk) VALUES ($1, $2) ON CONFLICT (kid) DO NOTHING', [
          jwk.kid,
          JSON.stringify(jwk),
        ]);
    });
    await this.reload();
    // A new key may not reuse a retired key's kid: old signatures would then be checked against it and fail.
    const same = this.#keys.find((k) => k.kid === this.current.kid);
    if (same && (same.x !== this.current.x || same.y !== this.current.y))
      throw new Error(
        `the audit signing key's kid ${this.current.kid} was already used by another key: give the new key its own kid`,
      );
    const reload = () => void this.reload().catch(() => undefined);
    await this.db.listen(KEYS_CHANGED, reload, reload);
    await this.db.notify(KEYS_CHANGED, String(this.current.kid));
  }

  async reload(): Promise<void> {
    const { rows } = await this.db.query<{ jwk: JWK | string }>('SELECT jwk FROM audit_signing_keys ORDER BY added_at');
    const all = rows.map((r) => (typeof r.jwk === 'string' ? (JSON.parse(r.jwk) as JWK) : r.jwk));
    this.#keys = [this.current, ...all.filter((k) => k.kid !== this.current.kid)];
    this.#jwks = createLocalJWKSet({ keys: this.#keys });
  }

  /** The key a signature names; a kid not known yet may be another node's new key: read the table once more. */
  async verificationKey(...args: Parameters<JWTVerifyGetKey>): Promise<Awaited<ReturnType<JWTVerifyGetKey>>> {
    const [header] = args;
    if (header.kid && !this.#keys.some((k) => k.kid === header.kid)) await this.reload();
    return this.#jwks(...args);
  }
}

/** What a detached export signature covers: the file's SHA-256, as a short JSON text. */
export function digestPayload(sha256Hex: string): string {
  return JSON.stringify({ alg: 'SHA-256', digest: sha256Hex });
}

/** Third-party check of a detached export signature against a JWKS (e.g. the published one). */
export async function verifyDigestSignature(jws: string, sha256Hex: string, keys: JWTVerifyGetKey): Promise<boolean> {
  const [h, empty, s] = jws.split('.');
  if (!h || empty !== '' || !s) return false;
  const payload = Buffer.from(digestPayload(sha256Hex)).toString('base64url');
  try {
    await compactVerify(`${h}.${payload}.${s}`, keys, { algorithms: ['ES256'] });
    return true;
  } catch {
    return false;
  }
}

/** JSON with object keys sorted at every level: the same entry always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(',')}}`;
}
