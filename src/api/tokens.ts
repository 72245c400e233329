import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { GRANTS, ROOM_ID, type ApiKeyScope, type Grant } from '../auth/index.js';
import { boundedJsonObject, METADATA_LIMITS } from '../boundedJson.js';
import { VigieError } from '../errors.js';
import { authenticate, requireScope } from './principal.js';
import { openapi, parse } from './schema.js';

const mintBody = z.object({
  room: z.string().regex(ROOM_ID, 'room must be 1-64 letters, digits, _ or -'),
  identity: z.string().min(1).max(256),
  name: z.string().min(1).max(128).optional(),
  metadata: boundedJsonObject(METADATA_LIMITS).optional(),
  grants: z.array(z.enum(GRANTS)).min(1).max(GRANTS.length).default(['publish', 'subscribe']),
  ttlSeconds: z.number().int().min(30).optional(),
});

/** What POST /v1/tokens answers: the token, when it expires, and the two pages that take it. */
const minted = z.object({
  token: z.string().describe('the join token (a JWT); hand it to the participant only'),
  expiresAt: z.iso.datetime(),
  joinUrl: z.url().describe('the join page with the token: a link to send, or to open'),
  embedUrl: z.url().describe('the embed page with the token: the src of an iframe in an allowed origin'),
});

/** The scope a key needs to put each grant in a token: a key never hands out more than it holds. */
const SCOPE_FOR_GRANT: Record<Grant, ApiKeyScope> = {
  publish: 'tokens:mint',
  subscribe: 'tokens:mint',
  admin: 'tokens:moderator',
  record: 'tokens:recorder',
  'recordings:read': 'recordings:read',
};

export async function tokenRoutes(app: FastifyInstance): Promise<void> {
  app.post(
    '/v1/tokens',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Mint a join token and link (link + token integration)',
        body: openapi(mintBody),
        response: { 200: openapi(minted) },
        security: [{ apiKey: [] }],
      },
    },
    async (req) => {
      const principal = await authenticate(app, req);
      requireScope(principal, 'tokens:mint');
      if (principal.room !== undefined) throw new VigieError('FORBIDDEN', 'tokens are minted with an API key');
      const body = parse(mintBody, req.body);
      for (const g of body.grants) {
        const scope = SCOPE_FOR_GRANT[g];
        if (!principal.scopes.has(scope) && !principal.scopes.has('admin'))
          throw new VigieError('FORBIDDEN', `minting the ${g} grant needs the ${scope} scope`);
      }
      const maxTtl = app.config.auth.maxTokenTtlSeconds;
      const ttlSeconds = body.ttlSeconds ?? Math.min(3600, maxTtl);
      if (ttlSeconds > maxTtl) throw new VigieError('INVALID_REQUEST', `ttlSeconds may not exceed ${maxTtl}`);
      const { token, expiresAt } = await app.tokens.mint({ ...body, tenant: principal.tenant, ttlSeconds });
      req.log.info(
        { tenant: principal.tenant, actor: principal.actor, room: body.room, grants: body.grants, ttlSeconds },
        'join token minted',
      );
      await app.compliance?.record({
        tenant: principal.tenant,
        actor: principal.actor,
        action: 'token.mint',
        target: `room:${body.room}`,
        subject: await app.telemetry?.keys.pseudonymizer.pseudonym(principal.tenant, body.identity),
        sourceIp: req.ip,
        details: { grants: body.grants, ttlSeconds },
      });
      const base = app.config.server.publicUrl;
      const q = `token=${encodeURIComponent(token)}`;
      return {
        token,
        expiresAt: new Date(expiresAt * 1000).toISOString(),
        joinUrl: `${base}/join?${q}`,
        embedUrl: `${base}/embed?${q}`,
      };
    },
  );
}
