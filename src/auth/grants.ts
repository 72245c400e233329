export const GRANTS = ['publish', 'subscribe', 'record', 'admin'] as const;
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
  return claims.grants.has(grant) || claims.grants.has('admin');
}
