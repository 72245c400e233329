import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { seedEmbeddedDatabase } from './pgliteTemplate.js';
import { gatewayDatabaseUrl, onPostgresServer } from './postgresSuite.js';
import { PassThrough } from 'node:stream';
import { WebSocket } from 'ws';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { generateApiKey, type Grant } from '../../src/auth/index.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import { SignalingClient } from '../../src/sdk/SignalingClient.js';

export const ACME_KEY = generateApiKey('acme01');
export const GLOBEX_KEY = generateApiKey('globex01');
export const REVOKED_KEY = generateApiKey('acmeold1');
export const ROOMS_ONLY_KEY = generateApiKey('acmero1');
export const ROOMS_WRITE_KEY = generateApiKey('acmerw1');
export const TENANT_ADMIN_KEY = generateApiKey('acmeadm1');
export const DPO_KEY = generateApiKey('acmedpo1');
export const VIEWER_KEY = generateApiKey('acmeview1');
export const GLOBEX_VIEWER_KEY = generateApiKey('globexv1');

/** Appends `n` audit entries (recording reads) to a tenant's chain; the caller flushes or checkpoints as it needs. */
export async function appendAuditEntries(gw: TestGateway, tenant: string, n: number): Promise<void> {
  for (let i = 1; i <= n; i++)
    await gw.app.compliance!.audit.append({
      tenant,
      actor: 'key:test',
      action: 'recording.read',
      target: `recording:${i}`,
      details: { i },
    });
}

/** A request to the gateway with the DPO key (in-process, through fastify's inject). */
export function dpoRequest(gw: TestGateway, method: string, url: string, payload?: object) {
  return gw.app.inject({
    method: method as 'GET',
    url,
    headers: { 'x-api-key': DPO_KEY.key },
    ...(payload ? { payload } : {}),
  });
}

export interface TestGateway {
  app: FastifyInstance;
  config: Config;
  url: string;
  wsUrl: string;
  logs: () => string;
  mint: (o: {
    room: string;
    identity: string;
    grants?: Grant[];
    tenant?: string;
    name?: string;
    ttlSeconds?: number;
  }) => Promise<string>;
  connect: () => Promise<SignalingClient>;
  /** Runs a query on the gateway's ClickHouse (the embedded engine) after flushing the writer and the audit journal. */
  query: <T = any>(sql: string, params?: Record<string, unknown>) => Promise<T[]>;
  close: () => Promise<void>;
}

/** A real gateway (real mediasoup workers) on an ephemeral port, with two tenants. */
export async function startGateway(overrides: Record<string, any> = {}): Promise<TestGateway> {
  // A given dataDir is kept on close, so a test can start a second gateway on it (restart).
  const dataDir: string = overrides.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'vigie-test-'));
  const embeddedDb = path.join(dataDir, 'postgres');
  // A test that names its store keeps it; every other gateway of a PostgreSQL run gets a database on the server.
  const database =
    overrides.database?.url || !onPostgresServer()
      ? overrides.database
      : { ...overrides.database, url: await gatewayDatabaseUrl(dataDir) };
  if (!database?.url && !existsSync(embeddedDb)) await seedEmbeddedDatabase(embeddedDb);
  const config = loadConfig(
    // A worker given by the test (e.g. one wrapped into a network namespace) wins over the environment's.
    { MEDIASOUP_WORKER_BIN: overrides.media?.workerBin ?? process.env.MEDIASOUP_WORKER_BIN },
    {
      dataDir,
      logLevel: 'info',
      server: { host: '127.0.0.1', port: 0, ...overrides.server },
      media: { workers: 2, listenIp: '127.0.0.1', rtcMinPort: 40000, rtcMaxPort: 40999, ...overrides.media },
      auth: { hs256Secret: 'test-secret-that-is-long-enough-0123456789', ...overrides.auth },
      signaling: overrides.signaling,
      ice: overrides.ice,
      telemetry: overrides.telemetry,
      writer: overrides.writer,
      clickhouse: overrides.clickhouse,
      database,
      node: overrides.node,
      nodes: overrides.nodes,
      webhooks: overrides.webhooks,
      quality: overrides.quality,
      storage: overrides.storage,
      recording: overrides.recording,
      retention: overrides.retention,
      compliance: overrides.compliance,
      api: overrides.api,
      adminKeyHash: overrides.adminKeyHash,
      tenants: overrides.tenants ?? [
        {
          id: 'acme',
          regionAffinity: overrides.acmeRegionAffinity,
          embedOrigins: overrides.embedOrigins ?? [],
          webhooks: overrides.acmeWebhooks ?? [],
          apiKeys: [
            { id: 'acme01', hash: ACME_KEY.hash, scopes: ['tokens:mint'] },
            { id: 'acmeold1', hash: REVOKED_KEY.hash, scopes: ['tokens:mint'], revoked: true },
            { id: 'acmero1', hash: ROOMS_ONLY_KEY.hash, scopes: ['rooms:read'] },
            { id: 'acmerw1', hash: ROOMS_WRITE_KEY.hash, scopes: ['rooms:read', 'rooms:write'] },
            { id: 'acmeadm1', hash: TENANT_ADMIN_KEY.hash, scopes: ['admin'] },
            { id: 'acmedpo1', hash: DPO_KEY.hash, scopes: ['dpo'] },
            { id: 'acmeview1', hash: VIEWER_KEY.hash, scopes: ['recordings:read'] },
          ],
        },
        {
          id: 'globex',
          allowedLocations: overrides.globexLocations ?? ['FR'],
          apiKeys: [
            { id: 'globex01', hash: GLOBEX_KEY.hash, scopes: ['tokens:mint'] },
            { id: 'globexv1', hash: GLOBEX_VIEWER_KEY.hash, scopes: ['recordings:read', 'admin'] },
          ],
        },
      ],
    },
  );
  let logText = '';
  const logStream = new PassThrough();
  logStream.on('data', (chunk) => (logText += chunk.toString()));
  const app = await buildApp(config, { logStream });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
  } catch (err) {
    // A start refused by a plugin must not leave workers and the embedded engine open for the next test:
    // close() does not run the hooks of an app that never became ready, so the SFU is closed here.
    await app.close().catch(() => undefined);
    await (app as Partial<FastifyInstance>).sfu?.close();
    if (!overrides.dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const port = (app.server.address() as { port: number }).port;
  const url = `${config.server.tlsCertFile ? 'https' : 'http'}://127.0.0.1:${port}`;
  config.server.publicUrl = url;
  const wsUrl = `${config.server.tlsCertFile ? 'wss' : 'ws'}://127.0.0.1:${port}/ws`;
  const clients: SignalingClient[] = [];
  return {
    app,
    config,
    url,
    wsUrl,
    logs: () => logText,
    mint: async (o) =>
      (
        await app.tokens.mint({
          tenant: o.tenant ?? 'acme',
          room: o.room,
          identity: o.identity,
          name: o.name ?? o.identity,
          grants: o.grants ?? ['publish', 'subscribe'],
          ttlSeconds: o.ttlSeconds ?? 600,
        })
      ).token,
    connect: async () => {
      const c = new SignalingClient(new WebSocket(wsUrl) as never);
      clients.push(c);
      await c.opened;
      return c;
    },
    query: async <T>(sql: string, params: Record<string, unknown> = {}) => {
      await app.telemetry?.writer.flush();
      if (app.compliance?.audit.ready) await app.compliance.audit.flush();
      const rs = await app.clickhouse.client.query({ query: sql, query_params: params, format: 'JSONEachRow' });
      return rs.json<T>();
    },
    close: async () => {
      for (const c of clients) c.close();
      await app.close();
      if (!overrides.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the next notification `method` that matches, or rejects after `ms`. */
export function nextNotification<T = any>(
  client: SignalingClient,
  method: string,
  ms = 10_000,
  match: (d: T) => boolean = () => true,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${method} notification within ${ms} ms`));
    }, ms);
    const off = client.on(method, (d: T) => {
      if (!match(d)) return;
      clearTimeout(timer);
      off();
      resolve(d);
    });
  });
}

export async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    if ((err as { code?: string }).code === code) return;
    throw new Error(`expected ${code}, got ${(err as { code?: string }).code}: ${(err as Error).message}`);
  }
  throw new Error(`expected ${code}, but the request succeeded`);
}

/** Sends a raw frame on a signaling socket and returns the next response frame (not a notification). */
export function rawFrame(ws: WebSocket, frame: string | Buffer, binary = false): Promise<any> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no response')), 5000);
    const onMsg = (d: Buffer) => {
      const msg = JSON.parse(d.toString());
      if (msg.notification) return;
      clearTimeout(timer);
      ws.off('message', onMsg);
      resolve(msg);
    };
    ws.on('message', onMsg);
    ws.send(frame, { binary });
  });
}
