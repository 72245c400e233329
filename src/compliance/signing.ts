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
import { writeFileAtomicSync } from '../files.js';

export interface Signer {
  kid: string;
  publicJwk: JWK;
  /** Every public key that ever signed here (the current one first): what verification and the JWKS use. */
  publicJwks: JWK[];
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
 * generated one) and restart. Every public key that ever signed is kept in
 * `DATA_DIR/secrets/audit-signing-keys.public.json`, so checkpoints and exports
 * signed before the rotation still verify, by their `kid`, and stay in the JWKS.
 */
export async function loadSigner(dataDir: string, keyFile?: string): Promise<Signer> {
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
  const publicJwks = rememberPublicKey(path.join(dataDir, 'secrets', 'audit-signing-keys.public.json'), publicJwk);
  const sign = (payload: Uint8Array) => new CompactSign(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
  return {
    kid,
    publicJwk,
    publicJwks,
    verificationKeys: createLocalJWKSet({ keys: publicJwks }),
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

/**
 * Adds the current public key to the keyring of every key that ever signed,
 * and returns the keyring, current key first. A new key may not reuse a
 * retired key's kid: old signatures would then be checked against it and fail.
 */
function rememberPublicKey(ringFile: string, current: JWK): JWK[] {
  const ring = existsSync(ringFile) ? (JSON.parse(readFileSync(ringFile, 'utf8')) as { keys: JWK[] }).keys : [];
  const same = ring.find((k) => k.kid === current.kid);
  if (same && (same.x !== current.x || same.y !== current.y))
    throw new Error(
      `the audit signing key's kid ${current.kid} was already used by another key (${ringFile}): give the new key ` +
        `its own kid`,
    );
  if (!same) {
    ring.push(current);
    mkdirSync(path.dirname(ringFile), { recursive: true, mode: 0o700 });
    writeFileAtomicSync(ringFile, JSON.stringify({ keys: ring }, null, 2));
  }
  return [current, ...ring.filter((k) => k.kid !== current.kid)];
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
