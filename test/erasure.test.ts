import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { dsarErase } from '../src/compliance/index.js';
import { ClickHouseWriter, Spool } from '../src/telemetry/index.js';
import { DPO_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { startRadosgw, type Radosgw } from './helpers/radosgw.js';
import { waitFor } from './helpers/browser.js';
import { closedPort } from './helpers/ports.js';

// Erasure reaches everything that can be linked to the person: ClickHouse rows (access records
// included), every version of their recordings in a real S3 server (Ceph RGW), their DSAR
// archives, the webhook journal, the telemetry spool; then their salt is destroyed, so what
// the law makes us keep (audit trail, request records) can no longer be linked to them.

const CAROL = 'carol.durand@example.fr';
const BRUNO = 'bruno.petit@example.fr';
const BUCKET = 'vigie-erasure';

let rgw: Radosgw;
let gw: TestGateway;
beforeAll(async () => {
  rgw = await startRadosgw();
  gw = await startGateway({
    writer: { flushIntervalMs: 100 },
    // A webhook endpoint that is down: deliveries wait in the outbox with the identities in their bodies.
    acmeWebhooks: [
      {
        id: 'hook1',
        url: `https://127.0.0.1:${await closedPort()}/hook`,
        secret: 'whsec_0123456789abcdefghijklmnop',
        events: ['*'],
      },
    ],
    webhooks: { allowPrivateTargets: true, backoffBaseMs: 3_600_000 },
    storage: {
      driver: 's3',
      s3Endpoint: rgw.endpoint,
      s3AccessKey: rgw.accessKey,
      s3SecretKey: rgw.secretKey,
      s3Region: rgw.region,
      s3Bucket: BUCKET,
      country: 'FR',
      region: 'fr-par-test',
      provider: 'Ceph RGW (test)',
    },
  });
});
afterAll(async () => {
  await gw?.close();
  await rgw?.stop();
});

const dpo = (url: string, payload: object) =>
  gw.app.inject({ method: 'POST', url, headers: { 'x-api-key': DPO_KEY.key }, payload });
const filesText = (dir: string) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((f) => f.isFile())
    .map((f) => ({
      file: path.relative(dir, path.join(f.parentPath, f.name)),
      text: readFileSync(path.join(f.parentPath, f.name), 'latin1'),
    }));

/** Every body pending in the webhook outbox, joined. */
const outboxBodies = async () =>
  (await gw.app.db.query<{ body: string }>('SELECT body FROM webhook_outbox ORDER BY seq')).rows
    .map((r) => r.body)
    .join('\n');

/** Two versions under one key (a retried upload), GOVERNANCE-locked; the catalog names only the last. */
async function storeRecording(who: string, pseudonym: string) {
  const store = gw.app.recording!.store;
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'vigie-rec-')), 'r.webm');
  const id = randomUUID();
  const key = `acme/2026/11/29/erase/${id}.webm`;
  const lock = { mode: 'GOVERNANCE' as const, retainUntil: new Date(Date.now() + 86400_000) };
  let versionId = '';
  for (const attempt of [1, 2]) {
    writeFileSync(file, `video of ${who}, attempt ${attempt}`);
    ({ versionId } = await store.put(key, file, {
      contentType: 'video/webm',
      sha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
      lock,
    }));
  }
  const now = Date.now();
  await gw.app.recording!.catalog.putUpload({
    id,
    session_id: 's',
    tenant: 'acme',
    room: 'erase',
    call_id: 'c',
    participants: [pseudonym],
    tracks: [],
    codecs: [],
    started_at: now,
    ended_at: now,
    duration_s: 1,
    size_bytes: 10,
    sha256: '',
    content_type: 'video/webm',
    storage_target: store.name,
    storage_country: 'FR',
    object_key: key,
    version_id: versionId,
    retain_until: lock.retainUntil.getTime(),
    lock_mode: 'governance',
    legal_hold: 0,
    retention_policy: 'default',
    status: 'ready' as const,
    deleted_at: null,
    deletion_reason: '',
    updated_at: now,
  });
  return { id, key };
}

test('erasure reaches access records, every object version, DSAR archives, webhook bodies and the salt; what is kept can no longer be linked', async () => {
  // Both join a call (participants, events, webhooks with their identities).
  const clients = [];
  for (const identity of [CAROL, BRUNO]) {
    const c = await gw.connect();
    await c.request('join', {
      token: await gw.mint({ room: 'erase', identity, name: identity.split('@')[0]!.replace('.', ' ') }),
    });
    clients.push(c);
  }
  const keys = gw.app.telemetry!.keys.pseudonymizer;
  const [carol, bruno] = (await Promise.all([CAROL, BRUNO].map((i) => keys.existing('acme', i)))) as string[];
  assert.ok(carol && bruno && carol !== bruno);
  // Carol reads her room's recordings with her own token: an access record that is hers.
  const token = await gw.mint({ room: 'erase', identity: CAROL, grants: ['subscribe', 'recordings:read'] });
  assert.equal(
    (
      await gw.app.inject({
        method: 'GET',
        url: '/v1/recordings?room=erase',
        headers: { authorization: `Bearer ${token}` },
      })
    ).statusCode,
    200,
  );
  const carolRec = await storeRecording(CAROL, carol);
  const brunoRec = await storeRecording(BRUNO, bruno);
  assert.equal((await gw.app.recording!.store.versions(carolRec.key)).length, 2);
  await waitFor('deliveries pending', outboxBodies, (t) => t.includes(CAROL) && t.includes(BRUNO));
  for (const c of clients) c.close();
  const [access] = await gw.query(`SELECT count() AS c FROM vigie.access_log WHERE subject = {p:String}`, { p: carol });
  assert.ok(Number(access.c) > 0, 'the access record names her pseudonym');
  const archive = await dpo('/v1/compliance/dsar/access', { identity: CAROL });
  assert.equal(archive.statusCode, 201, archive.body);

  const res = await dpo('/v1/compliance/dsar/erasure', { identity: CAROL });
  assert.equal(res.statusCode, 200, res.body);
  const result = res.json();
  assert.ok(
    result.erased.find((e: { table: string }) => e.table === 'access_log').rows > 0,
    JSON.stringify(result.erased),
  );
  assert.deepEqual(result.recordingsDeleted, [carolRec.id]);
  assert.equal(result.objectVersionsDeleted, 2, 'both versions, the orphan one included');
  assert.deepEqual(
    await gw.app.recording!.store.versions(carolRec.key),
    [],
    'no version of her recording is left in the bucket',
  );
  assert.equal(
    (await gw.app.recording!.store.versions(brunoRec.key)).length,
    2,
    "the other participant's recording is untouched",
  );
  assert.deepEqual(result.files.exportsDeleted, [archive.json().id]);
  assert.ok(result.files.webhookBodiesRedacted >= 1);
  assert.equal(result.saltDestroyed, true);

  // Nothing in ClickHouse holds her identity; her pseudonym only where the answer says it was kept.
  const tables = (
    await gw.query<{ name: string }>(
      `SELECT name FROM system.tables WHERE database = 'vigie' AND engine NOT IN ('View', 'MaterializedView')`,
    )
  ).map((t) => t.name);
  for (const t of tables) {
    const [hit] = await gw.query(
      `SELECT count() AS c FROM vigie.${t} WHERE position(toString(tuple(*)), {id:String}) > 0`,
      { id: CAROL },
    );
    assert.equal(Number(hit.c), 0, `identity found in ${t}`);
    const [ps] = await gw.query(
      `SELECT count() AS c FROM vigie.${t} WHERE position(toString(tuple(*)), {p:String}) > 0`,
      { p: carol },
    );
    if (Number(ps.c) > 0) assert.ok(['audit_log', 'dsar_requests'].includes(t), `pseudonym left in ${t}`);
  }
  // Nor any file under DATA_DIR (journal, exports, salts, spool, secrets), except the embedded engines' own storage:
  // ClickHouse's (checked above), and the control plane's, whose files (WAL) still hold the bytes of the audit entries
  // that passed through its outbox, kept in audit_log by design; no audit entry is waiting there any more.
  const { rows: waiting } = await gw.app.db.query<{ n: string }>(
    'SELECT count(*)::text AS n FROM audit_outbox WHERE strpos(body::text, $1) > 0',
    [carol],
  );
  assert.equal(waiting[0]!.n, '0');
  const engines = (f: { file: string }) => f.file.startsWith('clickhouse') || f.file.startsWith('postgres');
  for (const { file, text } of filesText(gw.config.dataDir).filter((f) => !engines(f))) {
    for (const needle of [CAROL, carol, 'carol durand'])
      assert.ok(!text.includes(needle), `${needle} found in ${file}`);
  }
  const bodies = await outboxBodies();
  for (const needle of [CAROL, carol, 'carol durand'])
    assert.ok(!bodies.includes(needle), `${needle} found in the webhook outbox`);
  assert.match(bodies, /bruno\.petit@example\.fr/, "the other participant's pending deliveries are intact");
  // The identity no longer leads to the pseudonym that stays in the audit trail: its salt is gone.
  assert.equal(await keys.existing('acme', CAROL), undefined);
  assert.notEqual(await keys.pseudonym('acme', CAROL), carol, 'recomputing gives an unrelated pseudonym');
  assert.equal(await keys.existing('acme', BRUNO), bruno);
  const verify = await gw.app.compliance!.audit.verify('acme');
  assert.equal(verify.ok, true, `the audit chain still verifies: ${JSON.stringify(verify)}`);
});

test('erasure removes the subject from the telemetry spool, and nobody else', async () => {
  // A writer whose ClickHouse is down: its rows wait in a real spool on disk.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-erase-spool-'));
  const log = pino({ level: 'silent' });
  const spool = new Spool(dir, 64 << 20, 'drop-oldest', log);
  await spool.open();
  const down = createClient({
    url: `http://127.0.0.1:${await closedPort()}`,
    request_timeout: 500,
    log: { level: ClickHouseLogLevel.OFF },
  });
  const writer = new ClickHouseWriter(
    down,
    spool,
    { database: 'vigie', batchRows: 1000, flushIntervalMs: 60_000, maxBufferedRows: 100_000 } as never,
    log,
  );
  onTestFinished(async () => {
    await writer.close();
    await down.close();
  });
  const keys = gw.app.telemetry!.keys.pseudonymizer;
  const [dave, erin] = await Promise.all(['dave@example.fr', 'erin@example.fr'].map((i) => keys.pseudonym('acme', i)));
  for (const [identity, p] of [
    ['dave@example.fr', dave],
    ['erin@example.fr', erin],
  ] as const) {
    writer.write('participants', {
      tenant: 'acme',
      participant: p,
      identity,
      display_name: identity,
      first_seen: Date.now(),
      updated_at: Date.now(),
    });
    writer.write('call_events', {
      ts: Date.now(),
      tenant: 'acme',
      room: 'spool',
      call_id: 'c',
      peer_id: 'x',
      participant: p,
      event: 'peer.joined',
      object_id: '',
      reason: '',
      attrs: {},
    });
  }
  // Erin's row names Dave: a freeze of his video that she saw (as the diagnosis writes it).
  writer.write('call_events', {
    ts: Date.now(),
    tenant: 'acme',
    room: 'spool',
    call_id: 'c',
    peer_id: 'y',
    participant: erin,
    event: 'quality.issue',
    object_id: 'consumer-1',
    reason: '',
    attrs: { issue: 'video_frozen', affected: erin, publisher: dave },
  });
  await writer.flush();
  const text = () =>
    readdirSync(dir)
      .map((f) => readFileSync(path.join(dir, f), 'utf8'))
      .join('');
  assert.ok(text().includes('dave@example.fr') && text().includes(dave!));
  const result = await dsarErase(
    {
      client: gw.app.clickhouse.client,
      db: 'vigie',
      flush: () => writer.flush(),
      rewriteHeld: (fn) => writer.rewriteHeld(fn),
      forget: () => keys.forget('acme', 'dave@example.fr'),
    },
    { tenant: 'acme', identity: 'dave@example.fr', pseudonym: dave! },
  );
  assert.equal(result.files.spoolRows, 2);
  assert.ok(!text().includes('dave@example.fr') && !text().includes(dave!), 'nothing of dave is left in the spool');
  assert.ok(text().includes('erin@example.fr') && text().includes(erin!), "erin's rows still wait for ClickHouse");
  assert.ok(text().includes('"publisher":"[erased]"'), 'her row that named him stays, without his name');
  assert.equal(spool.rows, 3);
});

test("erasure deletes the subject's recordings still waiting for upload, and they are never uploaded", async () => {
  const keys = gw.app.telemetry!.keys.pseudonymizer;
  const [fanny, gael] = await Promise.all(
    ['fanny@example.fr', 'gael@example.fr'].map((i) => keys.pseudonym('acme', i)),
  );
  // What a recorder leaves when the store cannot be reached: a media file and its upload manifest.
  const pending = path.join(gw.config.dataDir, 'recordings', 'pending');
  mkdirSync(pending, { recursive: true });
  const manifest = (who: string) => {
    const id = randomUUID();
    const file = path.join(pending, `${id}.webm`);
    writeFileSync(file, `media of ${who}`);
    const m = {
      id,
      sessionId: randomUUID(),
      tenant: 'acme',
      room: 'pending',
      callId: randomUUID(),
      participants: [who],
      tracks: [],
      codecs: [],
      startedAt: Date.now() - 5000,
      endedAt: Date.now(),
      file,
      contentType: 'video/webm',
      attempts: 3,
    };
    writeFileSync(path.join(pending, `${id}.json`), JSON.stringify(m));
    return m;
  };
  const fannys = manifest(fanny!);
  const gaels = manifest(gael!);

  const res = await dpo('/v1/compliance/dsar/erasure', { identity: 'fanny@example.fr' });
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json().files.pendingRecordingsDeleted, [fannys.id]);
  assert.equal(existsSync(fannys.file), false, 'the media file is gone');
  assert.equal(existsSync(path.join(pending, `${fannys.id}.json`)), false);
  assert.equal(existsSync(gaels.file), true, "gael's recording still waits for upload");

  // What is left is uploaded as usual; fanny's is not among it.
  assert.equal(await gw.app.recording!.service.resumePending(), 1);
  assert.ok(await gw.app.recording!.service.drain());
  const ids = (
    await gw.query<{ id: string }>(`SELECT id FROM vigie.recordings FINAL WHERE room = 'pending' AND status = 'ready'`)
  ).map((r) => r.id);
  assert.deepEqual(ids, [gaels.id]);
});
