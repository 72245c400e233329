/**
 * The gateway's tenants on a real PostgreSQL server (VIGIE_DATABASE_URL): what
 * the admin API creates survives a restart on the same database (and a new,
 * empty data directory), a change made by another node reaches this one, and
 * no secret is ever logged.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, test } from 'vitest';
import type { Logger } from '../src/logging.js';
import { openDatabase } from '../src/store/index.js';
import { TenantRegistry } from '../src/tenants/index.js';
import { waitFor } from './helpers/browser.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

const ADMIN_KEY = `adm_${randomBytes(24).toString('base64url')}`;
let server: PostgresServer;
/** One ClickHouse for the gateway and its restart: nodes of one PostgreSQL share it (cluster identity). */
let clickhouse: Awaited<ReturnType<typeof startChdbHttp>>;
let clickhouseDir: string;
let gw: TestGateway | undefined;
/** Everything every gateway of this file logged. */
let logs = '';

const start = () =>
  startGateway({
    database: { url: server.url },
    clickhouse: { url: clickhouse.url },
    adminKeyHash: `sha256:${createHash('sha256').update(ADMIN_KEY).digest('hex')}`,
    webhooks: { allowPrivateTargets: true, allowHttp: true },
  });

beforeAll(async () => {
  server = await startPostgres();
  clickhouseDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chdb-'));
  clickhouse = await startChdbHttp(clickhouseDir);
  gw = await start();
});
afterAll(async () => {
  await gw?.close();
  await server?.stop();
  await clickhouse?.stop();
  if (clickhouseDir) rmSync(clickhouseDir, { recursive: true, force: true });
});

async function call(method: string, url: string, headers: Record<string, string>, payload?: object) {
  const res = await gw!.app.inject({ method: method as 'GET', url, headers, ...(payload ? { payload } : {}) });
  return { status: res.statusCode, body: res.body ? (res.json() as any) : undefined };
}

test('a tenant, its key and its webhook endpoint made through the admin API survive a restart on the same database; a revocation on another node reaches the gateway; no secret is logged', async () => {
  const op = { 'x-admin-key': ADMIN_KEY };
  assert.equal(gw!.app.db.kind, 'postgres');
  assert.equal((await call('PUT', '/v1/admin/tenants/initech', op, { name: 'Initech' })).status, 200);
  const key = await call('POST', '/v1/admin/tenants/initech/api-keys', op, { scopes: ['admin'] });
  assert.equal(key.status, 201);
  const hook = await call('POST', '/v1/admin/tenants/initech/webhooks', op, { url: 'http://127.0.0.1:9/hook' });
  assert.equal(hook.status, 201, JSON.stringify(hook.body));
  const secrets = [key.body.key, gw!.app.tenants.get('initech')!.apiKeys[0]!.hash.slice(7), hook.body.secret];
  const asInitech = { 'x-api-key': key.body.key };
  assert.equal((await call('GET', '/v1/webhooks', asInitech)).status, 200);

  // Restart on the same database, with a new data directory: everything comes from PostgreSQL.
  logs += gw!.logs();
  await gw!.close();
  gw = undefined;
  gw = await start();
  assert.equal(gw.app.tenants.get('initech')?.name, 'Initech');
  const listed = await call('GET', '/v1/webhooks', asInitech);
  assert.equal(listed.status, 200, 'the key still authenticates');
  assert.deepEqual(
    listed.body.endpoints.map((e: { id: string }) => e.id),
    [hook.body.id],
  );
  assert.equal(gw.app.tenants.get('initech')!.webhooks[0]!.secret, hook.body.secret, 'the signing secret is kept');

  // Another node, on its own connection to the same server, revokes the key: the gateway refuses it within moments.
  const db = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
  const other = await TenantRegistry.open({
    db,
    fileTenants: [],
    log: pino({ level: 'silent' }) as unknown as Logger,
  });
  try {
    await other.revokeApiKey('initech', key.body.id);
    const refused = await waitFor(
      'the revocation on the gateway',
      async () => call('GET', '/v1/webhooks', asInitech),
      (r) => r.status === 401,
    );
    assert.equal(refused.body.error.code, 'UNAUTHORIZED');
  } finally {
    await other.close();
    await db.close();
  }
  logs += gw.logs();
  assert.match(logs, /API key created/, 'the logs were captured');
  for (const secret of secrets) assert.equal(logs.includes(secret), false, 'no key, key hash or webhook secret logged');
});
