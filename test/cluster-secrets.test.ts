/**
 * Two nodes on one PostgreSQL server agree on the secrets they generate: a
 * join token minted on one is accepted by the other. Both gateways run in this
 * process, on one ClickHouse endpoint (a separate process), each with its own
 * data directory, as two machines would.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, test } from 'vitest';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

let pg: PostgresServer;
let chdb: Awaited<ReturnType<typeof startChdbHttp>>;
let chdbDir: string;
const nodes: TestGateway[] = [];
const legacySecret = 'a-secret-the-previous-version-kept-in-its-data-dir';

beforeAll(async () => {
  pg = await startPostgres();
  chdbDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chdb-'));
  chdb = await startChdbHttp(chdbDir);
  // The first node upgrades a data dir of the previous version, whose HS256 secret was a file.
  const upgraded = mkdtempSync(path.join(os.tmpdir(), 'vigie-test-'));
  mkdirSync(path.join(upgraded, 'secrets'));
  writeFileSync(path.join(upgraded, 'secrets', 'jwt-hs256.secret'), legacySecret, { mode: 0o600 });
  for (const dataDir of [upgraded, undefined]) {
    nodes.push(
      await startGateway({
        dataDir,
        database: { url: pg.url },
        clickhouse: { url: chdb.url },
        // No configured secret: each node takes the one the cluster generated.
        auth: { hs256Secret: undefined },
      }),
    );
  }
});

afterAll(async () => {
  for (const n of nodes) await n.close();
  await chdb?.stop();
  await pg?.stop();
  rmSync(chdbDir, { recursive: true, force: true });
});

test('a join token minted on one node is accepted by another', async () => {
  const [a, b] = nodes as [TestGateway, TestGateway];
  const token = await a.mint({ room: 'across', identity: 'alice' });
  const client = await b.connect();
  const joined = await client.request('join', { token });
  assert.equal(joined.room, 'across');
  assert.equal(joined.tenant, 'acme');
});

test("the cluster's HS256 secret is the one the upgraded data dir had: its tokens stay valid", async () => {
  const token = await nodes[1]!.mint({ room: 'across', identity: 'bob' });
  const { payload } = await jwtVerify(token, new TextEncoder().encode(legacySecret), { algorithms: ['HS256'] });
  assert.equal(payload.sub, 'bob');
});
