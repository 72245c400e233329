import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiKeyScope } from '../auth/index.js';
import { VigieError } from '../errors.js';
import { annotateRequest } from '../telemetry/httpTracing.js';

/** Who is calling: always one tenant; a user token is further limited to its room. */
export interface Principal {
  tenant: string;
  scopes: ReadonlySet<ApiKeyScope>;
  /** Set for user JWTs: the only room they may act on. */
  room?: string;
  /** For logs and the audit trail: `key:<id>` or `user` (identities are not logged). */
  actor: string;
  /** A user token with the record grant: may start and stop its room's recording. */
  canRecord?: boolean;
  /** Whose request budget this request spends: the verified key, or the token's tenant, room and identity. */
  caller: string;
  /** For user JWTs: the participant's pseudonym, so that their access records are theirs to erase. */
  subject?: string;
}

export function apiKeyFrom(req: FastifyRequest): string | undefined {
  const header = req.headers['x-api-key'];
  if (typeof header === 'string') return header;
  const auth = req.headers.authorization;
  return auth?.startsWith('Bearer vk_') ? auth.slice('Bearer '.length) : undefined;
}

/** One authentication per request: the rate limiter and the handler share it. */
const authenticated = new WeakMap<FastifyRequest, Promise<Principal>>();

/**
 * A tenant API key, or a participant JWT: its `admin` grant lets it manage its
 * own room, its `recordings:read` grant read its own room's recordings.
 */
export function authenticate(app: FastifyInstance, req: FastifyRequest): Promise<Principal> {
  let p = authenticated.get(req);
  if (!p) {
    p = authenticateOnce(app, req);
    authenticated.set(req, p);
  }
  return p;
}

async function authenticateOnce(app: FastifyInstance, req: FastifyRequest): Promise<Principal> {
  const key = apiKeyFrom(req);
  let principal: Principal;
  if (key) {
    const p = app.tenants.authenticate(key);
    principal = { tenant: p.tenant, scopes: p.scopes, actor: `key:${p.keyId}`, caller: `key:${p.keyId}` };
  } else if (req.headers.authorization?.startsWith('Bearer ')) {
    const claims = await app.tokens.verify(req.headers.authorization.slice('Bearer '.length));
    const scopes = new Set<ApiKeyScope>();
    if (claims.grants.has('admin')) scopes.add('rooms:read').add('rooms:write');
    if (claims.grants.has('recordings:read')) scopes.add('recordings:read');
    principal = {
      tenant: claims.tenant,
      scopes,
      room: claims.room,
      actor: 'user',
      canRecord: claims.grants.has('record'),
      caller: `user:${claims.tenant}:${claims.room}:${claims.identity}`,
      subject: await app.telemetry?.keys.pseudonymizer.pseudonym(claims.tenant, claims.identity),
    };
  } else {
    throw new VigieError('UNAUTHORIZED', 'send an API key (x-api-key) or a bearer token');
  }
  annotateRequest(req, { tenant: principal.tenant });
  return principal;
}

export function requireScope(p: Principal, scope: ApiKeyScope, room?: string): void {
  if (!p.scopes.has(scope) && !p.scopes.has('admin'))
    throw new VigieError('FORBIDDEN', `the ${scope} scope is required`);
  if (room !== undefined) requireRoom(p, room);
}

/** A token made for one room acts on that room only; API keys are not bound to a room. */
export function requireRoom(p: Principal, room: string): void {
  if (p.room !== undefined && p.room !== room) throw new VigieError('FORBIDDEN', 'this token is for another room');
}

/** Operator access to /v1/admin: `x-admin-key`, checked against VIGIE_ADMIN_KEY_HASH. */
export function requireOperator(app: FastifyInstance, req: FastifyRequest): void {
  const expected = app.config.adminKeyHash;
  if (!expected) throw new VigieError('FORBIDDEN', 'the admin API is disabled (set VIGIE_ADMIN_KEY_HASH)');
  const given = req.headers['x-admin-key'];
  const digest = createHash('sha256')
    .update(typeof given === 'string' ? given : '')
    .digest();
  if (typeof given !== 'string' || !timingSafeEqual(digest, Buffer.from(expected.slice('sha256:'.length), 'hex'))) {
    throw new VigieError('UNAUTHORIZED', 'invalid admin key');
  }
}
