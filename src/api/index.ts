/**
 * REST API for business apps and operators.
 *
 * - `GET /healthz`, `GET /readyz`: liveness and readiness (all workers up).
 * - `POST /v1/tokens`: mint a join token and link, authenticated by a tenant API key.
 *
 * Needs the `config`, `sfu`, `tokens` and `apiKeys` decorations. Errors use
 * one shape: `{ error: { code, message } }`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { z } from 'zod';
import { GRANTS, ROOM_ID, type ApiKeyPrincipal, type ApiKeyScope } from '../auth/index.js';
import { VigieError } from '../errors.js';
import { annotateRequest } from '../telemetry/httpTracing.js';

const mintBody = z.object({
  room: z.string().regex(ROOM_ID, 'room must be 1-64 letters, digits, _ or -'),
  identity: z.string().min(1).max(256),
  name: z.string().min(1).max(128).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  grants: z.array(z.enum(GRANTS)).min(1).max(GRANTS.length).default(['publish', 'subscribe']),
  ttlSeconds: z.number().int().min(30).optional(),
});

export function apiKeyFrom(req: FastifyRequest): string | undefined {
  const header = req.headers['x-api-key'];
  if (typeof header === 'string') return header;
  const auth = req.headers.authorization;
  return auth?.startsWith('Bearer vk_') ? auth.slice('Bearer '.length) : undefined;
}

export function requireApiKey(app: FastifyInstance, req: FastifyRequest, scope: ApiKeyScope): ApiKeyPrincipal {
  const principal = app.apiKeys.authenticate(apiKeyFrom(req));
  if (!principal.scopes.has(scope) && !principal.scopes.has('admin')) throw new VigieError('FORBIDDEN', `API key lacks the ${scope} scope`);
  return principal;
}

export default async function apiPlugin(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const pool = app.sfu.pool;
    const workers = pool.slots.map((s) => ({ index: s.index, pid: s.worker.pid, alive: !s.worker.died && !s.worker.closed, routers: s.routers, peers: s.peers }));
    const ready = pool.ready;
    // ClickHouse is reported but does not gate readiness: calls must go on while telemetry is spooled.
    const telemetry = app.telemetry && { schemaReady: app.clickhouse.schemaReady, queuedRows: app.telemetry.writer.queuedRows, spoolBytes: app.telemetry.writer.spoolBytes };
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', workers, telemetry });
  });

  await app.register(async (v1) => {
    await v1.register(rateLimit, {
      max: 120,
      timeWindow: '1 minute',
      // Per API key: one tenant's burst must not starve another's.
      keyGenerator: (req) => apiKeyFrom(req)?.split('_')[1] ?? req.ip,
      errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, error: { code: 'RATE_LIMITED', message: `rate limit of ${ctx.max} requests per ${ctx.after} exceeded` } }),
    });

    v1.post('/v1/tokens', async (req) => {
      const principal = requireApiKey(app, req, 'tokens:mint');
      annotateRequest(req, { tenant: principal.tenant });
      const body = mintBody.safeParse(req.body ?? {});
      if (!body.success) throw new VigieError('INVALID_REQUEST', body.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      const maxTtl = app.config.auth.maxTokenTtlSeconds;
      const ttlSeconds = body.data.ttlSeconds ?? Math.min(3600, maxTtl);
      if (ttlSeconds > maxTtl) throw new VigieError('INVALID_REQUEST', `ttlSeconds may not exceed ${maxTtl}`);
      const { token, expiresAt } = await app.tokens.mint({ ...body.data, tenant: principal.tenant, ttlSeconds });
      req.log.info({ tenant: principal.tenant, keyId: principal.keyId, room: body.data.room, grants: body.data.grants, ttlSeconds }, 'join token minted');
      const base = app.config.server.publicUrl;
      const q = `token=${encodeURIComponent(token)}`;
      return { token, expiresAt: new Date(expiresAt * 1000).toISOString(), joinUrl: `${base}/join?${q}`, embedUrl: `${base}/embed?${q}` };
    });
  });
}
