import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CompactSign, compactVerify, exportJWK, generateKeyPair, importJWK, type JWK, type JWTVerifyGetKey } from 'jose';

export interface Signer {
  kid: string;
  publicJwk: JWK;
  /** Compact JWS over a JSON payload. */
  sign(payload: object): Promise<string>;
  /** Detached JWS (`header..signature`) over a file's SHA-256, for exports and archives. */
  signDigest(sha256Hex: string): Promise<string>;
}

/**
 * The key that signs audit checkpoints and exports: ES256, from
 * VIGIE_AUDIT_SIGNING_KEY_FILE (a private JWK) or generated once in the data
 * directory. Its public half is published at /.well-known/jwks.json.
 */
export async function loadSigner(dataDir: string, keyFile?: string): Promise<Signer> {
  const file = keyFile ?? path.join(dataDir, 'secrets', 'audit-signing-key.jwk');
  let jwk: JWK;
  try {
    jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK;
  } catch (err) {
    if (keyFile || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the audit signing key ${file}: ${(err as Error).message}`);
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    jwk = await exportJWK(privateKey);
    jwk.kid = `vigie-audit-${createHash('sha256').update(JSON.stringify([jwk.x, jwk.y])).digest('hex').slice(0, 12)}`;
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  }
  const key = await importJWK({ ...jwk, alg: 'ES256' }, 'ES256');
  const { d: _private, ...publicJwk } = jwk;
  const kid = jwk.kid ?? 'vigie-audit';
  const sign = (payload: Uint8Array) => new CompactSign(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
  return {
    kid,
    publicJwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' },
    sign: (payload) => sign(new TextEncoder().encode(JSON.stringify(payload))),
    signDigest: async (sha256Hex) => {
      const [h, , s] = (await sign(new TextEncoder().encode(digestPayload(sha256Hex)))).split('.');
      return `${h}..${s}`;
    },
  };
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
  return `{${Object.keys(obj).filter((k) => obj[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}
