/**
 * The one place where the gateway is wired: core services are decorated on the
 * root instance, and each capability is an encapsulated plugin that uses them.
 */
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { TokenService } from './auth/index.js';
import path from 'node:path';
import type { Config } from './config/index.js';
import { TenantRegistry } from './tenants/index.js';
import { VigieError, isComponentOutage } from './errors.js';
import { loggerOptions } from './logging.js';
import { Sfu, resolveWorkerBin } from './media/index.js';
import apiPlugin from './api/index.js';
import clickhousePlugin from './clickhouse/index.js';
import telemetryPlugin from './telemetry/index.js';
import diagnosisPlugin from './diagnosis/index.js';
import httpTracing from './telemetry/httpTracing.js';
import signalingPlugin, { type SignalingSession } from './signaling/index.js';
import webPlugin from './web/index.js';
import webhooksPlugin from './webhooks/index.js';
import retentionPlugin from './retention/index.js';
import recordingPlugin from './recording/index.js';
import compliancePlugin from './compliance/index.js';
import { RoomBans, RoomDirectory } from './media/index.js';
import demoPlugin, { type DemoSetup } from './demo/index.js';
import storePlugin, { sharedSecret, StoreUnavailableError } from './store/index.js';
import nodesPlugin, { isNodeLive } from './nodes/index.js';
import clusterIdentityPlugin from './nodes/clusterIdentity.js';
import cascadePlugin from './cascade/index.js';
import websocket from '@fastify/websocket';

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    tenants: TenantRegistry;
    rooms: RoomDirectory;
    /** Identities removed from a room, refused at join until their token expires. */
    roomBans: RoomBans;
    sfu: Sfu;
    tokens: TokenService;
    signalingSessions: Map<string, SignalingSession>;
    /** SIGTERM: refuse joins, let calls end, and resolve when they have or at the deadline (seconds). */
    drainSignaling: (deadlineSeconds?: number) => Promise<void>;
    signalingDraining: () => boolean;
  }
}

const corePlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const { config } = opts;
    const tenants = await TenantRegistry.open({
      db: app.db,
      fileTenants: config.tenants,
      legacyFile: path.join(config.dataDir, 'tenants.json'),
      log: app.log.child({ component: 'tenants' }),
    });
    app.addHook('onClose', async () => tenants.close());
    const hs256Secret = config.auth.hs256Secret ?? (await sharedSecret(app.db, 'jwt-hs256.secret', config.dataDir));
    // Declared rooms and bans live in PostgreSQL, shared by every node; rooms.json and room-bans.json of the
    // version before are imported on the first start. Opened before the workers start: a corrupt file stops the
    // start with no worker left behind.
    const log = app.log.child({ component: 'rooms' });
    const rooms = await RoomDirectory.open({
      db: app.db,
      nodeId: config.node.id,
      log,
      legacyFile: path.join(config.dataDir, 'rooms.json'),
      // A room placed on a node whose heartbeats stopped is taken over by the node its participants rejoin.
      isNodeLive: (nodeId, tx) => isNodeLive(tx, nodeId, config.nodes.deadAfterSeconds),
    });
    const roomBans = await RoomBans.open({ db: app.db, log, legacyFile: path.join(config.dataDir, 'room-bans.json') });
    const sfu = new Sfu(
      {
        pool: {
          size: config.media.workers,
          workerBin: resolveWorkerBin(config.media.workerBin),
          logLevel: config.media.workerLogLevel,
          webRtcServer: config.media.webRtcServer
            ? {
                ip: config.media.listenIp,
                announcedAddress: config.media.announcedAddress,
                basePort: config.media.webRtcServerPort,
                udp: config.media.enableUdp,
                tcp: config.media.enableTcp,
              }
            : undefined,
        },
        transport: config.media,
        maxPeersPerRoom: config.media.maxPeersPerRoom,
        routerConsumerBudget: config.media.routerConsumerBudget,
      },
      app.log.child({ component: 'sfu' }),
    );
    await sfu.start();
    app.decorate('config', config);
    app.decorate('tenants', tenants);
    rooms.follow(sfu);
    app.decorate('rooms', rooms);
    app.decorate('roomBans', roomBans);
    app.decorate('sfu', sfu);
    app.decorate('tokens', new TokenService({ ...config.auth, hs256Secret, tenant: (t) => tenants.get(t) }));
    // preClose: rooms close (and their last events are recorded) before the
    // onClose hooks flush the telemetry writer and close ClickHouse.
    app.addHook('preClose', async () => sfu.close());
    // Before the store closes (its onClose hook runs after this one): the rooms just closed release their placements.
    app.addHook('onClose', async () => {
      await rooms.close();
      await roomBans.close();
    });
  },
  { name: 'vigie-core', dependencies: ['vigie-store'] },
);

/**
 * `logStream` lets tests read what is logged (e.g. to prove secrets are not).
 * `demo` serves the embedded demo link (src/demo), which only `npm start` sets up.
 */
export async function buildApp(
  config: Config,
  opts: { logStream?: NodeJS.WritableStream; demo?: DemoSetup } = {},
): Promise<FastifyInstance> {
  const https = config.server.tlsCertFile
    ? { https: { cert: readFileSync(config.server.tlsCertFile), key: readFileSync(config.server.tlsKeyFile!) } }
    : {};
  const app = Fastify({
    ...https,
    logger: loggerOptions(config, opts.logStream),
    trustProxy: config.server.trustProxy,
    bodyLimit: 256 * 1024,
    // Plugins wait on outside components at start (ClickHouse migrations and TTLs, the retention guard's query, S3),
    // each bounded by its own request timeout; fastify's 10 s default failed starts on a loaded 2-core machine.
    pluginTimeout: 120_000,
  }) as unknown as FastifyInstance;

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    if (err instanceof StoreUnavailableError)
      req.log.warn({ reason: (err.cause as Error | undefined)?.message }, 'control plane unreachable: answered 503');
    if (err instanceof VigieError) return reply.code(err.httpStatus).send({ error: err.toJSON() });
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status === 429) return reply.code(429).send({ error: { code: 'RATE_LIMITED', message: err.message } });
    if (status >= 400 && status < 500)
      return reply.code(status).send({ error: { code: 'INVALID_REQUEST', message: err.message } });
    if (isComponentOutage(err)) {
      req.log.warn(
        { reason: err.message, code: (err as { code?: string }).code },
        'component unreachable: answered 503',
      );
      const message = 'a component this action needs (ClickHouse or the object store) is unreachable; retry shortly';
      return reply.code(503).send({ error: { code: 'UNAVAILABLE', message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  try {
    await app.register(httpTracing);
    await app.register(storePlugin, { config });
    await app.register(corePlugin, { config });
    await app.register(clickhousePlugin);
    // Before the node registers and anything writes telemetry or audit copies: a node on another ClickHouse than
    // its cluster's is refused.
    await app.register(clusterIdentityPlugin);
    await app.register(nodesPlugin);
    await app.register(telemetryPlugin);
    await app.register(diagnosisPlugin);
    await app.register(webhooksPlugin);
    await app.register(retentionPlugin);
    await app.register(recordingPlugin);
    await app.register(compliancePlugin);
    await app.register(apiPlugin);
    // WebSocket support, for the signaling socket and the nodes' room links. Frames above the configured limit get
    // an error response from signaling; this hard cap only stops a peer from making the server buffer something huge.
    await app.register(websocket, {
      options: { maxPayload: Math.max(config.signaling.maxFrameBytes * 4, 256 * 1024) },
    });
    await app.register(cascadePlugin);
    await app.register(signalingPlugin);
    await app.register(webPlugin);
    if (opts.demo) await app.register(demoPlugin, { demo: opts.demo });
  } catch (err) {
    // A plugin that refuses the start (e.g. a corrupt retention guard) must not leave the mediasoup workers or the
    // embedded engine behind: close() does not run the hooks of an app that never became ready.
    await app.sfu?.close().catch(() => undefined);
    await app.close().catch(() => undefined);
    throw err;
  }
  return app;
}
