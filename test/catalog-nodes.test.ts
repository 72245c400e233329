/**
 * Two nodes share one recordings catalog on a PostgreSQL server, and one
 * object store (a real S3: Ceph RGW): a recording uploaded by node A is
 * listed, put on legal hold and deleted through node B, and a hold set through
 * B stops A's retention sweeper. ClickHouse holds only the analytical copy:
 * the catalog works while it is down, and the copy catches up once it is back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, test } from 'vitest';
import { openDatabase } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { DPO_KEY, startGateway, type TestGateway, VIEWER_KEY } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';
import { type Radosgw, radosgwStorage, startRadosgw } from './helpers/radosgw.js';

// Recordings of tenant acme are kept 3 s (GOVERNANCE lock), so that the sweeper has something to delete.
const policies = mkdtempSync(path.join(os.tmpdir(), 'vigie-policies-'));
cpSync(new URL('../retention-policies', import.meta.url), policies, { recursive: true });
writeFileSync(
  path.join(policies, 'short.yaml'),
  'name: short\ntenants: [acme]\ncategories:\n' +
    '  recordings: { duration: 3s, action: delete, lockMode: governance }\n' +
    '  participants: { duration: 395d }\n  track_stats: { duration: 395d }\n  client_stats: { duration: 395d }\n' +
    '  call_events: { duration: 395d }\n  transport_stats: { duration: 395d, action: anonymize }\n' +
    '  call_quality: { duration: 395d }\n  access_log: { duration: 1y }\n  webhook_attempts: { duration: 90d }\n' +
    '  audit_log: { duration: 6y }\n  dsar_exports: { duration: 30d }\n',
);

let pg: PostgresServer;
let rgw: Radosgw;
let chdb: Awaited<ReturnType<typeof startChdbHttp>>;
let chdbDir: string;
const nodes: TestGateway[] = [];
/** Set while the test has ClickHouse stopped, so that a failed test still closes the nodes against a live one. */
let chdbDown = false;

beforeAll(async () => {
  pg = await startPostgres();
  rgw = await startRadosgw();
  chdbDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chdb-'));
  chdb = await startChdbHttp(chdbDir);
  for (const id of ['node-a', 'node-b'])
    nodes.push(
      await startGateway({
        node: { id },
        database: { url: pg.url },
        clickhouse: { url: chdb.url, requestTimeoutMs: 3000 },
        writer: { flushIntervalMs: 100 },
        retention: { policiesDir: policies, sweepIntervalSeconds: 3600 },
        storage: radosgwStorage(rgw, 'vigie-catalog-nodes'),
      }),
    );
}, 300_000);

afterAll(async () => {
  if (chdbDown) await chdb.start();
  for (const n of nodes) await n.close();
  await chdb?.stop();
  await rgw?.stop();
  await pg?.stop();
  for (const d of [chdbDir, policies]) if (d) rmSync(d, { recursive: true, force: true });
});

/** What a recorder leaves for upload: a media file and its manifest, picked up by the node's upload queue. */
function pendingRecording(gw: TestGateway, room: string, participant: string): string {
  const pending = path.join(gw.config.dataDir, 'recordings', 'pending');
  mkdirSync(pending, { recursive: true });
  const id = randomUUID();
  const file = path.join(pending, `${id}.webm`);
  writeFileSync(file, `media ${id}`);
  const now = Date.now();
  writeFileSync(
    path.join(pending, `${id}.json`),
    JSON.stringify({
      id,
      sessionId: randomUUID(),
      tenant: 'acme',
      room,
      callId: randomUUID(),
      participants: [participant],
      tracks: [],
      codecs: [],
      startedAt: now - 5000,
      endedAt: now,
      file,
      contentType: 'video/webm',
      attempts: 0,
    }),
  );
  return id;
}

const api = (gw: TestGateway, key: string, method: 'GET' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  gw.app.inject({ method, url, headers: { 'x-api-key': key }, payload });

test('a recording uploaded on node A is listed, held and deleted through node B, and B’s hold stops A’s sweeper, while ClickHouse is down', async () => {
  const [a, b] = nodes as [TestGateway, TestGateway];
  const alice = 'a'.repeat(32);
  const [held, deleted, expired] = [1, 2, 3].map(() => pendingRecording(a, 'board', alice)) as [string, string, string];
  assert.equal(await a.app.recording!.service.resumePending(), 3);
  assert.ok(await a.app.recording!.service.drain(), 'node A uploaded the three recordings');
  // ClickHouse goes down: the catalog does not need it.
  await chdb.stop();
  chdbDown = true;

  const listed = await api(b, VIEWER_KEY.key, 'GET', '/v1/recordings?room=board');
  assert.equal(listed.statusCode, 200, listed.body);
  const rows = listed.json().recordings as Array<{ id: string; status: string; retainUntil: string }>;
  assert.deepEqual(rows.map((r) => r.id).sort(), [held, deleted, expired].sort(), 'node B lists what A uploaded');
  assert.ok(rows.every((r) => r.status === 'ready'));

  const hold = await api(b, DPO_KEY.key, 'PUT', `/v1/recordings/${held}/legal-hold`, { on: true });
  assert.equal(hold.statusCode, 200, hold.body);
  assert.equal(hold.json().legalHold, true);
  const store = a.app.recording!.store;
  const heldRow = (await a.app.recording!.catalog.get('acme', held))!;
  assert.equal(heldRow.legal_hold, 1, 'node A reads the hold B set');
  assert.equal((await store.stat(heldRow.object_key, heldRow.version_id)).legalHold, true);

  // Deleting needs the lock to have expired (GOVERNANCE, 3 s).
  const lockEnds = Math.max(...rows.map((r) => Date.parse(r.retainUntil)));
  await waitFor(
    'the recordings’ locks to expire',
    async () => Date.now(),
    (now) => now > lockEnds + 500,
    30_000,
  );
  const del = await api(b, DPO_KEY.key, 'DELETE', `/v1/recordings/${deleted}`);
  assert.equal(del.statusCode, 204, del.body);

  // A's sweeper: the hold set through B keeps its recording; the other expired one goes.
  assert.equal(await a.app.recording!.sweeper.sweep(), 1);
  const after = await api(b, VIEWER_KEY.key, 'GET', '/v1/recordings?room=board&includeDeleted=true');
  const byId = new Map(
    (after.json().recordings as Array<Record<string, unknown>>).map((r) => [r.id as string, r] as const),
  );
  assert.deepEqual(
    [held, deleted, expired].map((id) => [byId.get(id)?.status, byId.get(id)?.legalHold]),
    [
      ['ready', true],
      ['deleted', false],
      ['deleted', false],
    ],
  );
  assert.equal(byId.get(deleted)!.deletionReason, 'deleted-by:key:acmedpo1');
  assert.equal(byId.get(expired)!.deletionReason, 'retention:short');
  assert.deepEqual(byId.get(expired)!.participants, [], 'the deletion record keeps no pseudonym');
  assert.equal((await store.stat(heldRow.object_key, heldRow.version_id)).legalHold, true, 'still stored');

  // Through A now: the held recording cannot be deleted; lifted through B, A's sweeper deletes it.
  const refused = await api(a, DPO_KEY.key, 'DELETE', `/v1/recordings/${held}`);
  assert.equal(refused.statusCode, 403, refused.body);
  assert.match(refused.json().error.message, /legal hold/);
  assert.equal((await api(b, DPO_KEY.key, 'PUT', `/v1/recordings/${held}/legal-hold`, { on: false })).statusCode, 200);
  assert.equal(await a.app.recording!.sweeper.sweep(), 1);
  assert.equal((await b.app.recording!.catalog.get('acme', held))!.status, 'deleted');
  assert.equal((await api(b, VIEWER_KEY.key, 'GET', '/v1/recordings?room=board')).json().recordings.length, 0);

  // ClickHouse is back: the analytical copy, written by the catalog's owner on each node, catches up.
  await chdb.start();
  chdbDown = false;
  await waitFor(
    'the ClickHouse copy of the catalog to catch up',
    () =>
      b.query<{ id: string; status: string; legal_hold: number }>(
        `SELECT id, status, legal_hold FROM vigie.recordings FINAL WHERE room = 'board' ORDER BY id`,
      ),
    (copy) => copy.length === 3 && copy.every((r) => r.status === 'deleted' && Number(r.legal_hold) === 0),
    60_000,
  );
});

test('a deletion and a legal hold racing on one recording from two connections: never both', async () => {
  const [a, b] = nodes as [TestGateway, TestGateway];
  // Two catalogs on two pools of the same server, as on two nodes.
  const other = await openDatabase({ url: pg.url, dataDir: 'memory://' });
  try {
    const { RecordingCatalog } = await import('../src/recording/index.js');
    const catalogs = [
      a.app.recording!.catalog,
      new RecordingCatalog({ db: other, copy: { write: () => undefined, flush: async () => {} }, log: b.app.log }),
    ];
    for (let i = 0; i < 20; i++) {
      const id = randomUUID();
      await catalogs[0]!.putUpload({
        id,
        session_id: 's',
        tenant: 'acme',
        room: 'race',
        call_id: 'c',
        participants: [],
        tracks: [],
        codecs: [],
        started_at: Date.now(),
        ended_at: Date.now(),
        duration_s: 1,
        size_bytes: 1,
        sha256: '',
        content_type: 'video/webm',
        storage_target: 'test',
        storage_country: 'FR',
        object_key: `acme/race/${id}.webm`,
        version_id: 'v',
        retain_until: Date.now() - 1000,
        lock_mode: 'none',
        legal_hold: 0,
        retention_policy: 'short',
        status: 'ready',
        deleted_at: null,
        deletion_reason: '',
        updated_at: Date.now(),
      });
      const [claim, hold] = await Promise.allSettled([
        catalogs[i % 2]!.claimDeletion('acme', id, ['ready']),
        catalogs[(i + 1) % 2]!.setLegalHold(
          'acme',
          id,
          true,
          () => undefined,
          async () => undefined,
        ),
      ]);
      const claimed = claim.status === 'fulfilled' && !claim.value.refusal;
      const heldOn = hold.status === 'fulfilled';
      assert.ok(claimed !== heldOn, `round ${i}: exactly one wins (claimed ${claimed}, held ${heldOn})`);
      const final = (await catalogs[0]!.get('acme', id))!;
      assert.equal(final.legal_hold === 1, heldOn);
      assert.equal(final.status === 'deleting', claimed);
    }
  } finally {
    await other.close();
  }
});
