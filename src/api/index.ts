/**
 * REST API for business apps and operators. OpenAPI at `/docs/openapi.json`.
 *
 * - `GET /healthz`, `GET /readyz`: liveness and readiness (all workers up).
 * - `POST /v1/tokens`: join tokens and links (tokens.ts).
 * - `/v1/rooms…`: rooms and participants (rooms.ts).
 * - `/v1/webhooks…`: the tenant's webhook endpoints (webhooks.ts).
 * - `GET /v1/calls/{callId}/diagnosis`: a call's quality issues and verdicts (calls.ts).
 * - `/v1/admin…`: the operator's tenant administration (admin.ts).
 *
 * Callers authenticate with a tenant API key (scoped) or a user JWT (principal.ts);
 * every call is confined to the caller's tenant. Bodies are validated by zod,
 * the same schemas documented in OpenAPI. Errors: `{ error: { code, message } }`.
 * Failed authentications are rate-limited per client address, and
 * authenticated requests per verified caller, so that nobody can spend another's budget.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import { VigieError } from '../errors.js';
import { adminRoutes } from './admin.js';
import { authenticate, requireOperator } from './principal.js';
import { roomRoutes } from './rooms.js';
import { tokenRoutes } from './tokens.js';
import { webhookRoutes } from './webhooks.js';
import { recordingRoutes } from './recordings.js';
import { complianceRoutes } from './compliance.js';
import { callRoutes } from './calls.js';
import forwarding from './forward.js';
import { errorResponses } from './schema.js';

export { apiKeyFrom, authenticate, requireScope, type Principal } from './principal.js';

export default async function apiPlugin(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Vigie API',
        version: '1',
        description: 'Rooms, participants, join tokens, webhooks and tenant administration.',
      },
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
  // Schemas are documentation here; zod validates in the handlers (one source of truth), and replies are
  // sent as the handlers build them (a response schema never strips a field).
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  // Every /v1 call answers a refusal or a failure with the error shape (the root error handler): documented once here.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/v1/'))
      route.schema = {
        ...route.schema,
        response: { ...errorResponses, ...(route.schema?.response as object | undefined) },
      };
  });

  app.get('/healthz', { schema: { tags: ['health'], summary: 'Liveness', security: [] } }, async () => ({
    status: 'ok',
  }));
  app.get(
    '/readyz',
    { schema: { tags: ['health'], summary: 'Readiness: every mediasoup worker is up', security: [] } },
    async (_req, reply) => {
      const pool = app.sfu.pool;
      const workers = pool.slots.map((s) => ({
        index: s.index,
        pid: s.worker.pid,
        alive: !s.worker.died && !s.worker.closed,
        routers: s.routers,
        peers: s.peers,
      }));
      // Draining (SIGTERM): not ready, so that a load balancer sends new calls elsewhere.
      const draining = app.signalingDraining?.() ?? false;
      const ready = pool.ready && !draining;
      // ClickHouse is reported but does not gate readiness: calls must go on while telemetry is spooled.
      const telemetry = app.telemetry && {
        schemaReady: app.clickhouse.schemaReady,
        queuedRows: app.telemetry.writer.queuedRows,
        spoolBytes: app.telemetry.writer.spoolBytes,
      };
      return reply.code(ready ? 200 : 503).send({
        status: ready ? 'ready' : draining ? 'draining' : 'not-ready',
        workers,
        telemetry,
        webhooksPending: await app.webhooks.pendingCount().catch(() => undefined),
      });
    },
  );
  app.get('/docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // Every public key that ever signed audit checkpoints and exports (current and retired), for third parties to verify
  // them.
  app.get(
    '/.well-known/jwks.json',
    { schema: { tags: ['compliance'], summary: 'Public keys of audit checkpoints and exports', security: [] } },
    async (_req, reply) => {
      if (!app.compliance) throw new VigieError('NOT_FOUND', 'compliance is unavailable on this gateway');
      return reply.header('cache-control', 'public, max-age=300').send({ keys: app.compliance.signer.publicJwks });
    },
  );

  await app.register(async (v1) => {
    // The API's actions are audited; until the audit log can continue its chains (ClickHouse read
    // once since start), they are refused with a retryable 503 rather than done unaudited or forked.
    v1.addHook('onRequest', async () => {
      if (app.compliance && !app.compliance.audit.ready)
        throw new VigieError(
          'UNAVAILABLE',
          'the audit log is not ready yet (ClickHouse cannot be read); retry shortly',
        );
    });
    // Before the rate limits: a call forwarded by another node counts against its caller's address.
    await v1.register(forwarding);
    await v1.register(rateLimit, { global: false });
    // The budget of a caller is spent only once its credential is verified: a key id
    // alone (which anyone can put in a forged key) no longer names whose budget to spend.
    const callers = new WeakMap<FastifyRequest, string>();
    const perCaller = v1.createRateLimit({
      max: app.config.api.ratePerMinute,
      timeWindow: '1 minute',
      keyGenerator: (req) => callers.get(req)!,
    });
    const authFailures = v1.createRateLimit({
      max: app.config.api.authFailuresPerMinute,
      timeWindow: '1 minute',
      keyGenerator: (req) => req.ip,
    });
    type Outcome = Awaited<ReturnType<typeof perCaller>>;
    const check = (reply: FastifyReply, r: Outcome, what: string) => {
      if (r.isAllowed || !r.isExceeded) return;
      reply.header('retry-after', r.ttlInSeconds);
      throw new VigieError('RATE_LIMITED', `rate limit of ${r.max} ${what} per minute exceeded`);
    };
    // onRequest of this scope runs before the routes' own hooks (the operator check of /v1/admin).
    v1.addHook('onRequest', async (req, reply) => {
      let caller: string;
      try {
        if (req.routeOptions.url?.startsWith('/v1/admin')) {
          requireOperator(app, req);
          caller = 'operator';
        } else {
          caller = (await authenticate(app, req)).caller;
        }
      } catch (err) {
        if (!(err instanceof VigieError) || err.code !== 'UNAUTHORIZED') return; // the handler meets it again
        check(reply, await authFailures(req), 'failed authentications');
        return; // the handler answers 401 (and records the attempt where it audits)
      }
      callers.set(req, caller);
      check(reply, await perCaller(req), 'requests');
    });
    await v1.register(tokenRoutes);
    await v1.register(roomRoutes);
    await v1.register(webhookRoutes);
    await v1.register(recordingRoutes);
    await v1.register(callRoutes);
    await v1.register(complianceRoutes);
    await v1.register(adminRoutes);
  });
}
