/**
 * The nodes of one PostgreSQL write to one ClickHouse: a node whose ClickHouse
 * does not carry the cluster's id (another server, or the embedded engine left
 * on by mistake) refuses to start with a ConfigError naming both, and the
 * compiled gateway exits 78 (EX_CONFIG); a node on the cluster's ClickHouse
 * starts. One PostgreSQL server, two ClickHouse endpoints (chdb over HTTP).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, test } from 'vitest';
import { ConfigError } from '../src/config/index.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { spawnCompiled } from './helpers/compiledGateway.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

let pg: PostgresServer;
const dirs: string[] = [];
const endpoints: Array<Awaited<ReturnType<typeof startChdbHttp>>> = [];
const nodes: TestGateway[] = [];

const tempDir = (prefix: string) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};

beforeAll(async () => {
  pg = await startPostgres();
  for (let i = 0; i < 2; i++) endpoints.push(await startChdbHttp(tempDir('vigie-chdb-')));
  // The first node founds the cluster on the first endpoint.
  nodes.push(
    await startGateway({ node: { id: 'node-1' }, database: { url: pg.url }, clickhouse: { url: endpoints[0]!.url } }),
  );
});

afterAll(async () => {
  for (const n of nodes) await n.close();
  for (const e of endpoints) await e.stop();
  await pg?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test("a node on the cluster's ClickHouse starts, and says which cluster it joined", async () => {
  const second = await startGateway({
    node: { id: 'node-2' },
    database: { url: pg.url },
    clickhouse: { url: endpoints[0]!.url },
  });
  nodes.push(second);
  assert.ok(nodes[0]!.app.clusterIdentity?.id);
  assert.deepEqual(second.app.clusterIdentity, nodes[0]!.app.clusterIdentity);
  const rows = await second.query<{ node_id: string }>(
    'SELECT DISTINCT node_id FROM vigie.cluster_identity ORDER BY node_id',
  );
  assert.deepEqual(
    rows.map((r) => r.node_id),
    ['node-1', 'node-2'],
  );
});

test('a node on another ClickHouse endpoint is refused with a ConfigError naming both', async () => {
  const cluster = nodes[0]!.app.clusterIdentity!;
  await assert.rejects(
    startGateway({ node: { id: 'node-3' }, database: { url: pg.url }, clickhouse: { url: endpoints[1]!.url } }),
    (err: Error) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, new RegExp(`are cluster ${cluster.id}, whose ClickHouse is ${endpoints[0]!.url}`));
      assert.match(err.message, new RegExp(`this node's ClickHouse \\(${endpoints[1]!.url}\\)`));
      assert.match(err.message, /carries no cluster id/);
      return true;
    },
  );
  const registered = (await nodes[0]!.app.nodes.registry.list()).map((n) => n.id);
  assert.ok(!registered.includes('node-3'), `the refused node never registered: ${registered}`);
});

test('a node left on the embedded ClickHouse exits 78 (EX_CONFIG) with the reason', async () => {
  const cluster = nodes[0]!.app.clusterIdentity!;
  const dataDir = tempDir('vigie-embedded-');
  const { gateway, output } = spawnCompiled(dataDir, { VIGIE_NODE_ID: 'node-embedded', VIGIE_DATABASE_URL: pg.url });
  const [code] = await once(gateway, 'exit');
  assert.equal(code, 78, output.text);
  assert.match(output.text, new RegExp(`this node's ClickHouse \\(embedded engine in ${dataDir}/clickhouse\\)`));
  assert.match(output.text, new RegExp(`are cluster ${cluster.id}`));
});
