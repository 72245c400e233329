import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
  type JWTVerifyGetKey,
} from 'jose';
import { z } from 'zod';
import { boundedJsonObject, METADATA_LIMITS } from '../boundedJson.js';
import { VigieError } from '../errors.js';
import type { TenantAuthConfig } from '../config/index.js';
import { GRANTS, type AccessClaims, type Grant } from './grants.js';

export const ROOM_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Tokens larger than this are not parsed at all. */
const MAX_TOKEN_CHARS = 8192;
const ASYMMETRIC_ALGS = ['RS256', 'ES256', 'EdDSA'];
const REQUIRED_CLAIMS = ['exp', 'sub', 'tenant', 'room', 'grants'];

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  tenant: z.string().min(1).max(63),
  room: z.string().regex(ROOM_ID, 'room must be 1-64 letters, digits, _ or -'),
  grants: z.array(z.enum(GRANTS)).max(GRANTS.length),
  name: z.string().max(128).optional(),
  metadata: boundedJsonObject(METADATA_LIMITS).optional(),
  exp: z.number(),
  iat: z.number().optional(),
});

export interface TokenServiceOptions {
  issuer: string;
  audience: string;
  /** The global secret: signs for every tenant that has no `auth` of its own. */
  hs256Secret: string;
  /** The global identity provider, likewise. */
  jwksUrl?: string;
  /** Least time between two JWKS refetches triggered by unknown kids. */
  jwksCooldownMs?: number;
  clockSkewSeconds: number;
  /** Oldest identity-provider token accepted, by its `iat`. */
  maxIdpTokenAgeSeconds: number;
  /** A tenant's settings, or undefined when there is no such tenant. */
  tenant: (id: string) => { auth?: TenantAuthConfig } | undefined;
}

export interface MintRequest {
  tenant: string;
  room: string;
  identity: string;
  grants: Grant[];
  ttlSeconds: number;
  name?: string;
  metadata?: Record<string, unknown>;
}

/**
 * `typ` values an access token may carry (RFC 7519, RFC 9068), or none: anything
 * else (an ID token's logout variant, a DPoP proof, some other JWS) is not an access token.
 */
const ACCESS_TOKEN_TYPES = new Set(['jwt', 'at+jwt', 'application/jwt', 'application/at+jwt']);

/**
 * Verifies access tokens (HS256 shared secret, or RS256/ES256/EdDSA keys from a
 * JWKS that jose caches and refetches when it meets an unknown kid) and mints
 * HS256 join tokens for business apps.
 *
 * Trust is per tenant: a tenant with its own `auth` is signed for by its own
 * secret or JWKS only, and the global ones sign for the other tenants. The key
 * is chosen from the (not yet verified) `tenant` claim, so a key can only ever
 * produce a valid signature for the tenant it belongs to.
 */
export class TokenService {
  /** Imported once per secret: jose would otherwise import a raw secret on every sign and verify. */
  readonly #secrets = new Map<string, Promise<CryptoKey>>();
  /** One cached key set per JWKS URL. */
  readonly #jwks = new Map<string, JWTVerifyGetKey>();

  constructor(private readonly options: TokenServiceOptions) {}

  /**
   * Verifies a token. With `expect`, a token for another tenant or room is refused
   * with FORBIDDEN: a valid token only ever opens the room it names.
   */
  async verify(token: unknown, expect: { tenant?: string; room?: string } = {}): Promise<AccessClaims> {
    if (typeof token !== 'string' || token.length === 0) throw new VigieError('UNAUTHORIZED', 'missing access token');
    if (token.length > MAX_TOKEN_CHARS) throw new VigieError('UNAUTHORIZED', 'access token too large');
    let header: ReturnType<typeof decodeProtectedHeader>;
    let claimedTenant: unknown;
    try {
      header = decodeProtectedHeader(token);
      claimedTenant = decodeJwt(token).tenant;
    } catch {
      throw new VigieError('UNAUTHORIZED', 'malformed access token');
    }
    if (header.typ !== undefined && !ACCESS_TOKEN_TYPES.has(String(header.typ).toLowerCase())) {
      throw new VigieError(
        'UNAUTHORIZED',
        `a token of type "${String(header.typ).slice(0, 32)}" is not an access token`,
      );
    }
    const tenant = typeof claimedTenant === 'string' ? this.options.tenant(claimedTenant) : undefined;
    // An unknown tenant is checked against the global keys, so that only a validly signed token learns it is unknown.
    const trust = tenant?.auth ?? { hs256Secret: this.options.hs256Secret, jwksUrl: this.options.jwksUrl };
    const alg = header.alg;
    let payload: unknown;
    try {
      if (alg === 'HS256' && trust.hs256Secret) {
        ({ payload } = await jwtVerify(token, await this.#secret(trust.hs256Secret), this.#verifyOptions(['HS256'])));
      } else if (alg && ASYMMETRIC_ALGS.includes(alg) && trust.jwksUrl) {
        // Identity-provider tokens must say when they were issued, and be recent.
        ({ payload } = await jwtVerify(token, this.#keySet(trust.jwksUrl), {
          ...this.#verifyOptions(ASYMMETRIC_ALGS),
          requiredClaims: [...REQUIRED_CLAIMS, 'iat'],
          maxTokenAge: this.options.maxIdpTokenAgeSeconds,
        }));
      } else {
        throw new VigieError('UNAUTHORIZED', `token algorithm "${String(alg)}" is not accepted for this tenant`);
      }
    } catch (err) {
      throw mapJoseError(err);
    }
    const parsed = claimsSchema.safeParse(payload);
    if (!parsed.success) {
      throw new VigieError(
        'UNAUTHORIZED',
        `invalid token claims: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    }
    const c = parsed.data;
    if (!tenant) throw new VigieError('FORBIDDEN', 'token names an unknown tenant');
    if (expect.tenant !== undefined && expect.tenant !== c.tenant)
      throw new VigieError('FORBIDDEN', 'token is for another tenant');
    if (expect.room !== undefined && expect.room !== c.room)
      throw new VigieError('FORBIDDEN', 'token is for another room');
    return {
      identity: c.sub,
      tenant: c.tenant,
      room: c.room,
      grants: new Set(c.grants),
      name: c.name,
      metadata: c.metadata,
      expiresAt: c.exp,
      issuedAt: c.iat,
    };
  }

  async mint(req: MintRequest): Promise<{ token: string; expiresAt: number }> {
    const t = this.options.tenant(req.tenant);
    if (!t) throw new VigieError('NOT_FOUND', 'no such tenant');
    // A tenant with its own trust is minted for with its own secret; one that trusts only its identity provider, not at
    // all.
    const secret = t.auth ? t.auth.hs256Secret : this.options.hs256Secret;
    if (!secret)
      throw new VigieError(
        'FORBIDDEN',
        'this tenant accepts tokens from its identity provider only; set its auth.hs256Secret to mint here',
      );
    const now = Math.floor(Date.now() / 1000);
    const expiresAt = now + req.ttlSeconds;
    const token = await new SignJWT({
      tenant: req.tenant,
      room: req.room,
      grants: [...new Set(req.grants)],
      ...(req.name !== undefined ? { name: req.name } : {}),
      ...(req.metadata !== undefined ? { metadata: req.metadata } : {}),
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(this.options.issuer)
      .setAudience(this.options.audience)
      .setSubject(req.identity)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(expiresAt)
      .sign(await this.#secret(secret));
    return { token, expiresAt };
  }

  #verifyOptions(algorithms: string[]) {
    return {
      issuer: this.options.issuer,
      audience: this.options.audience,
      algorithms,
      clockTolerance: this.options.clockSkewSeconds,
      requiredClaims: REQUIRED_CLAIMS,
    };
  }

  #secret(secret: string): Promise<CryptoKey> {
    let key = this.#secrets.get(secret);
    if (!key) {
      key = crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
        'sign',
        'verify',
      ]);
      this.#secrets.set(secret, key);
    }
    return key;
  }

  #keySet(url: string): JWTVerifyGetKey {
    let set = this.#jwks.get(url);
    if (!set) {
      set = createRemoteJWKSet(new URL(url), {
        cooldownDuration: this.options.jwksCooldownMs ?? 30_000,
        cacheMaxAge: 10 * 60_000,
      });
      this.#jwks.set(url, set);
    }
    return set;
  }
}

function mapJoseError(err: unknown): VigieError {
  if (err instanceof VigieError) return err;
  if (err instanceof joseErrors.JWTExpired && err.claim === 'iat')
    return new VigieError(
      'UNAUTHORIZED',
      'identity-provider token is too old (iat beyond VIGIE_AUTH_IDP_MAX_TOKEN_AGE_S)',
    );
  if (err instanceof joseErrors.JWTExpired) return new VigieError('UNAUTHORIZED', 'access token expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return new VigieError('UNAUTHORIZED', 'access token not yet valid');
    return new VigieError('UNAUTHORIZED', `access token claim "${err.claim}" is invalid (${err.reason})`);
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey)
    return new VigieError('UNAUTHORIZED', 'access token signed with an unknown key');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return new VigieError('UNAUTHORIZED', 'access token signature is invalid');
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return new VigieError('UNAUTHORIZED', 'access token algorithm is not accepted');
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return new VigieError('UNAUTHORIZED', 'signing keys are unavailable; try again');
  }
  if (err instanceof joseErrors.JOSEError) return new VigieError('UNAUTHORIZED', `invalid access token (${err.code})`);
  return new VigieError('UNAUTHORIZED', 'invalid access token');
}
