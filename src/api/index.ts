/**
 * REST API for business apps and operators. OpenAPI at `/docs/openapi.json`.
 *
 * - `GET /healthz`, `GET /readyz`: liveness and readiness (all workers up).
 * - `POST /v1/tokens`: join tokens and links (tokens.ts).
 * - `/v1/rooms…`: rooms and participants (rooms.ts).
 * - `/v1/webhooks…`: the tenant's webhook endpoints (webhooks.ts).
 * - `/v1/admin…`: the operator's tenant administration (admin.ts).
 *
 * Callers authenticate with a tenant API key (scoped) or a user JWT (principal.ts);
 * every call is confined to the caller's tenant. Bodies are validated by zod,
 * the same schemas documented in OpenAPI. Errors: `{ error: { code, message } }`.
 * Requests are rate-limited per API key.
 */
import type { FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import { VigieError } from '../errors.js';
import { adminRoutes } from './admin.js';
import { apiKeyFrom } from './principal.js';
import { roomRoutes } from './rooms.js';
import { tokenRoutes } from './tokens.js';
import { webhookRoutes } from './webhooks.js';
import { recordingRoutes } from './recordings.js';
import { complianceRoutes } from './compliance.js';

export { apiKeyFrom, authenticate, requireScope, type Principal } from './principal.js';

export default async function apiPlugin(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: { title: 'Vigie API', version: '1', description: 'Rooms, participants, join tokens, webhooks and tenant administration.' },
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          adminKey: { type: 'apiKey', in: 'header', name: 'x-admin-key' },
        },
      },
      security: [{ apiKey: [] }, { bearer: [] }],
    },
  });
  // Schemas are documentation here; zod validates in the handlers (one source of truth).
  app.setValidatorCompiler(() => () => true);

  app.get('/healthz', { schema: { tags: ['health'], summary: 'Liveness', security: [] } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { tags: ['health'], summary: 'Readiness: every mediasoup worker is up', security: [] } }, async (_req, reply) => {
    const pool = app.sfu.pool;
    const workers = pool.slots.map((s) => ({ index: s.index, pid: s.worker.pid, alive: !s.worker.died && !s.worker.closed, routers: s.routers, peers: s.peers }));
    // Draining (SIGTERM): not ready, so that a load balancer sends new calls elsewhere.
    const draining = app.signalingDraining?.() ?? false;
    const ready = pool.ready && !draining;
    // ClickHouse is reported but does not gate readiness: calls must go on while telemetry is spooled.
    const telemetry = app.telemetry && { schemaReady: app.clickhouse.schemaReady, queuedRows: app.telemetry.writer.queuedRows, spoolBytes: app.telemetry.writer.spoolBytes };
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : draining ? 'draining' : 'not-ready', workers, telemetry, webhooksPending: app.webhooks.pendingCount });
  });
  app.get('/docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // The public key that signs audit checkpoints and exports, for third parties to verify them.
  app.get('/.well-known/jwks.json', { schema: { tags: ['compliance'], summary: 'Public keys of audit checkpoints and exports', security: [] } }, async (_req, reply) => {
    if (!app.compliance) throw new VigieError('NOT_FOUND', 'compliance is unavailable on this gateway');
    return reply.header('cache-control', 'public, max-age=300').send({ keys: [app.compliance.signer.publicJwk] });
  });

  await app.register(async (v1) => {
    await v1.register(rateLimit, {
      max: app.config.api.ratePerMinute,
      timeWindow: '1 minute',
      // Per API key: one tenant's burst must not starve another's.
      keyGenerator: (req) => apiKeyFrom(req)?.split('_')[1] ?? req.ip,
      errorResponseBuilder: (_req, ctx) => new VigieError('RATE_LIMITED', `rate limit of ${ctx.max} requests per ${ctx.after} exceeded`),
    });
    await v1.register(tokenRoutes);
    await v1.register(roomRoutes);
    await v1.register(webhookRoutes);
    await v1.register(recordingRoutes);
    await v1.register(complianceRoutes);
    await v1.register(adminRoutes);
  });
}
