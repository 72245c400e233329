/**
 * What a user token allows. `admin` makes a moderator (manage its own room, and
 * publish and subscribe); `record` starts and stops its room's recording;
 * `recordings:read` lists and downloads its room's recordings. Neither of the
 * last two is implied by `admin`: each must be granted, by a key allowed to.
 */
export const GRANTS = ['publish', 'subscribe', 'record', 'admin', 'recordings:read'] as const;
export type Grant = (typeof GRANTS)[number];

/** The verified content of an access token. */
export interface AccessClaims {
  /** Participant identity (`sub`). Personal data: never logged in clear. */
  identity: string;
  tenant: string;
  room: string;
  grants: ReadonlySet<Grant>;
  name?: string;
  metadata?: Record<string, unknown>;
  expiresAt: number;
  /** `iat`, when the token has one: with `expiresAt`, the lifetime a refreshed token gets again. */
  issuedAt?: number;
}

export function hasGrant(claims: Pick<AccessClaims, 'grants'>, grant: Grant): boolean {
  return claims.grants.has(grant) || (claims.grants.has('admin') && (grant === 'publish' || grant === 'subscribe'));
}
