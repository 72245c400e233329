import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { VigieError } from '../errors.js';
import { GRANTS, type AccessClaims, type Grant } from './grants.js';

export const ROOM_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Tokens larger than this are not parsed at all. */
const MAX_TOKEN_CHARS = 8192;
const ASYMMETRIC_ALGS = ['RS256', 'ES256', 'EdDSA'];

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  tenant: z.string().min(1).max(63),
  room: z.string().regex(ROOM_ID, 'room must be 1-64 letters, digits, _ or -'),
  grants: z.array(z.enum(GRANTS)).max(GRANTS.length),
  name: z.string().max(128).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  exp: z.number(),
  iat: z.number().optional(),
});

export interface TokenServiceOptions {
  issuer: string;
  audience: string;
  hs256Secret: string;
  jwksUrl?: string;
  /** Least time between two JWKS refetches triggered by unknown kids. */
  jwksCooldownMs?: number;
  clockSkewSeconds: number;
  isKnownTenant: (tenant: string) => boolean;
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
 * Verifies access tokens (HS256 shared secret, or RS256/ES256/EdDSA keys from a
 * JWKS that jose caches and refetches when it meets an unknown kid) and mints
 * HS256 join tokens for business apps.
 */
export class TokenService {
  /** Imported once: jose would otherwise import a raw secret on every sign and verify. */
  readonly #secret: Promise<CryptoKey>;
  readonly #jwks?: JWTVerifyGetKey;

  constructor(private readonly options: TokenServiceOptions) {
    this.#secret = crypto.subtle.importKey('raw', new TextEncoder().encode(options.hs256Secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    if (options.jwksUrl) {
      this.#jwks = createRemoteJWKSet(new URL(options.jwksUrl), { cooldownDuration: options.jwksCooldownMs ?? 30_000, cacheMaxAge: 10 * 60_000 });
    }
  }

  /**
   * Verifies a token. With `expect`, a token for another tenant or room is refused
   * with FORBIDDEN: a valid token only ever opens the room it names.
   */
  async verify(token: unknown, expect: { tenant?: string; room?: string } = {}): Promise<AccessClaims> {
    if (typeof token !== 'string' || token.length === 0) throw new VigieError('UNAUTHORIZED', 'missing access token');
    if (token.length > MAX_TOKEN_CHARS) throw new VigieError('UNAUTHORIZED', 'access token too large');
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new VigieError('UNAUTHORIZED', 'malformed access token');
    }
    let payload: unknown;
    try {
      if (alg === 'HS256') {
        ({ payload } = await jwtVerify(token, await this.#secret, this.#verifyOptions(['HS256'])));
      } else if (alg && ASYMMETRIC_ALGS.includes(alg) && this.#jwks) {
        ({ payload } = await jwtVerify(token, this.#jwks, this.#verifyOptions(ASYMMETRIC_ALGS)));
      } else {
        throw new VigieError('UNAUTHORIZED', `token algorithm "${String(alg)}" is not accepted`);
      }
    } catch (err) {
      throw mapJoseError(err);
    }
    const parsed = claimsSchema.safeParse(payload);
    if (!parsed.success) {
      throw new VigieError('UNAUTHORIZED', `invalid token claims: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    const c = parsed.data;
    if (!this.options.isKnownTenant(c.tenant)) throw new VigieError('FORBIDDEN', 'token names an unknown tenant');
    if (expect.tenant !== undefined && expect.tenant !== c.tenant) throw new VigieError('FORBIDDEN', 'token is for another tenant');
    if (expect.room !== undefined && expect.room !== c.room) throw new VigieError('FORBIDDEN', 'token is for another room');
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
      .sign(await this.#secret);
    return { token, expiresAt };
  }

  #verifyOptions(algorithms: string[]) {
    return {
      issuer: this.options.issuer,
      audience: this.options.audience,
      algorithms,
      clockTolerance: this.options.clockSkewSeconds,
      requiredClaims: ['exp', 'sub', 'tenant', 'room', 'grants'],
    };
  }
}

function mapJoseError(err: unknown): VigieError {
  if (err instanceof VigieError) return err;
  if (err instanceof joseErrors.JWTExpired) return new VigieError('UNAUTHORIZED', 'access token expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return new VigieError('UNAUTHORIZED', 'access token not yet valid');
    return new VigieError('UNAUTHORIZED', `access token claim "${err.claim}" is invalid (${err.reason})`);
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new VigieError('UNAUTHORIZED', 'access token signed with an unknown key');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new VigieError('UNAUTHORIZED', 'access token signature is invalid');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new VigieError('UNAUTHORIZED', 'access token algorithm is not accepted');
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return new VigieError('UNAUTHORIZED', 'signing keys are unavailable; try again');
  }
  if (err instanceof joseErrors.JOSEError) return new VigieError('UNAUTHORIZED', `invalid access token (${err.code})`);
  return new VigieError('UNAUTHORIZED', 'invalid access token');
}
