/**
 * Upgrading a data dir of the version that kept the recordings catalog and
 * DSAR requests in ClickHouse: on the first start, both are imported into
 * PostgreSQL (each recording's latest version, each request's latest status),
 * once for the cluster, and nothing is lost. On the embedded engines (chdb and
 * PGlite in the data dir), and on a PostgreSQL server with two nodes starting
 * together (one import, not two).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import pino from 'pino';
import { afterAll, beforeAll, test } from 'vitest';
import { migrate } from '../src/clickhouse/migrations.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { startGateway, type TestGateway, VIEWER_KEY } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

const HELD = '11111111-1111-4111-8111-111111111111';
const DELETED = '22222222-2222-4222-8222-222222222222';
const READY = '33333333-3333-4333-8333-333333333333';
const ALICE = 'a'.repeat(32);
const T0 = Date.parse('2026-10-01T08:00:00.000Z');

const recording = (id: string, version: Record<string, unknown>) => ({
  id,
  session_id: 'session-1',
  tenant: 'acme',
  room: 'board',
  call_id: 'call-1',
  participants: [ALICE],
  tracks: ['t1'],
  codecs: ['audio/opus'],
  started_at: T0,
  ended_at: T0 + 60_000,
  duration_s: 60,
  size_bytes: 1234,
  sha256: 'f'.repeat(64),
  content_type: 'audio/ogg',
  storage_target: 'local',
  storage_country: 'FR',
  object_key: `acme/2026/10/01/call-1/${id}.ogg`,
  version_id: 'v1',
  retain_until: T0 + 86_400_000 * 400,
  lock_mode: 'governance',
  legal_hold: 0,
  retention_policy: 'default',
  status: 'ready',
  deleted_at: null,
  deletion_reason: '',
  updated_at: T0 + 60_000,
  ...version,
});

/** What the version before left in ClickHouse: several versions of a row (ReplacingMergeTree), several statuses. */
async function writeOldRows(client: ClickHouseClient): Promise<void> {
  await migrate(client, { database: 'vigie', log: pino({ level: 'silent' }) });
  const values = [
    recording(HELD, { status: 'uploading', version_id: '', updated_at: T0 + 1 }),
    recording(HELD, { updated_at: T0 + 2 }),
    recording(HELD, { legal_hold: 1, updated_at: T0 + 3 }),
    recording(DELETED, { updated_at: T0 + 1 }),
    recording(DELETED, {
      participants: [],
      status: 'deleted',
      deleted_at: T0 + 5,
      deletion_reason: 'retention:default',
      updated_at: T0 + 5,
    }),
    recording(READY, { started_at: T0 + 1000 }),
  ];
  await client.insert({ table: 'vigie.recordings', values, format: 'JSONEachRow' });
  await client.insert({
    table: 'vigie.dsar_requests',
    format: 'JSONEachRow',
    values: [
      {
        ts: T0,
        tenant: 'acme',
        request_id: 'req-access',
        kind: 'access',
        subject: ALICE,
        status: 'completed',
        summary: '[]',
      },
      {
        ts: T0 + 10,
        tenant: 'acme',
        request_id: 'req-erase',
        kind: 'erasure',
        subject: ALICE,
        status: 'received',
        summary: '',
      },
      {
        ts: T0 + 20,
        tenant: 'acme',
        request_id: 'req-erase',
        kind: 'erasure',
        subject: ALICE,
        status: 'completed',
        summary: '{}',
      },
    ],
  });
}

/** The data dir of the version before: its embedded ClickHouse holds the rows. */
let dataDir: string;
let embedded: TestGateway;
let pg: PostgresServer;
let chdb: Awaited<ReturnType<typeof startChdbHttp>>;
let chdbDir: string;
const nodes: TestGateway[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-upgrade-'));
  // chdb in a separate process writes the old rows into the data dir's engine, then lets it go.
  const writer = await startChdbHttp(path.join(dataDir, 'clickhouse'));
  const client = createClient({ url: writer.url });
  await writeOldRows(client);
  await client.close();
  await writer.stop();
  embedded = await startGateway({ dataDir });

  pg = await startPostgres();
  chdbDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chdb-'));
  chdb = await startChdbHttp(chdbDir);
  const remote = createClient({ url: chdb.url });
  await writeOldRows(remote);
  await remote.close();
  // Two nodes of the new version start together on the same PostgreSQL and ClickHouse.
  nodes.push(
    ...(await Promise.all(
      [1, 2].map((i) =>
        startGateway({ node: { id: `node-${i}` }, database: { url: pg.url }, clickhouse: { url: chdb.url } }),
      ),
    )),
  );
}, 240_000);

afterAll(async () => {
  await embedded?.close();
  for (const n of nodes) await n.close();
  await chdb?.stop();
  await pg?.stop();
  for (const d of [dataDir, chdbDir]) if (d) rmSync(d, { recursive: true, force: true });
});

async function assertImported(gw: TestGateway): Promise<void> {
  const { rows } = await gw.app.db.query<{ id: string; status: string; legal_hold: boolean; participants: string[] }>(
    'SELECT id, status, legal_hold, participants FROM recordings ORDER BY id',
  );
  assert.deepEqual(rows, [
    { id: HELD, status: 'ready', legal_hold: true, participants: [ALICE] },
    { id: DELETED, status: 'deleted', legal_hold: false, participants: [] },
    { id: READY, status: 'ready', legal_hold: false, participants: [ALICE] },
  ]);
  const requests = await gw.app.compliance!.dsar.list('acme', 10);
  assert.deepEqual(
    requests.map((r) => [r.requestId, r.kind, r.status, r.summary, r.receivedAt]),
    [
      ['req-erase', 'erasure', 'completed', '{}', new Date(T0 + 10).toISOString()],
      ['req-access', 'access', 'completed', '[]', new Date(T0).toISOString()],
    ],
  );
  // The API answers from PostgreSQL, with what the old catalog said.
  const res = await gw.app.inject({
    method: 'GET',
    url: '/v1/recordings?includeDeleted=true',
    headers: { 'x-api-key': VIEWER_KEY.key },
  });
  assert.equal(res.statusCode, 200, res.body);
  const listed = res.json().recordings as Array<Record<string, unknown>>;
  assert.deepEqual(
    listed.map((r) => [r.id, r.status, r.legalHold]),
    [
      [READY, 'ready', false],
      // Same start: the id breaks the tie, newest first.
      [DELETED, 'deleted', false],
      [HELD, 'ready', true],
    ],
  );
  const held = listed.find((r) => r.id === HELD)!;
  assert.equal(held.startedAt, new Date(T0).toISOString());
  assert.equal(held.retainUntil, new Date(T0 + 86_400_000 * 400).toISOString());
  assert.equal(held.sizeBytes, 1234);
  assert.equal(held.versionId, 'v1');
}

test('embedded engines: the catalog and DSAR requests of a data dir of the version before are imported at the first start, once', async () => {
  await assertImported(embedded);
  const { rows } = await embedded.app.db.query<{ source: string; rows: string }>(
    'SELECT source, rows FROM store_imports ORDER BY source',
  );
  assert.deepEqual(
    rows.map((r) => [r.source, Number(r.rows)]),
    [
      // The audit chains' heads are imported the same way (no chain in this data dir).
      ['clickhouse:audit_heads', 0],
      ['clickhouse:dsar_requests', 2],
      ['clickhouse:recordings', 3],
    ],
  );
  // A later start does not import again: a state changed since (here, the hold lifted) is not overwritten.
  await embedded.app.db.query('UPDATE recordings SET legal_hold = false WHERE id = $1', [HELD]);
  assert.equal(await embedded.app.recording!.catalog.importFromClickHouse(embedded.app.clickhouse), undefined);
  assert.equal(await embedded.app.compliance!.dsar.importFromClickHouse(embedded.app.clickhouse), undefined);
  const after = await embedded.app.db.query<{ legal_hold: boolean }>(
    'SELECT legal_hold FROM recordings WHERE id = $1',
    [HELD],
  );
  assert.equal(after.rows[0]!.legal_hold, false);
  assert.equal(
    Number((await embedded.app.db.query<{ c: string }>('SELECT count(*) AS c FROM recordings')).rows[0]!.c),
    3,
  );
});

test('PostgreSQL server: two nodes starting together import once, and both serve the imported catalog', async () => {
  for (const n of nodes) await assertImported(n);
  const { rows } = await nodes[0]!.app.db.query<{ source: string; rows: string }>(
    'SELECT source, rows FROM store_imports ORDER BY source',
  );
  assert.deepEqual(
    rows.map((r) => [r.source, Number(r.rows)]),
    [
      // The audit chains' heads are imported the same way (no chain in this data dir).
      ['clickhouse:audit_heads', 0],
      ['clickhouse:dsar_requests', 2],
      ['clickhouse:recordings', 3],
    ],
    'one import each, by whichever node took the lock first',
  );
});
