import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  cpSync,
  type Dirent,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  complianceShortenings,
  FILE_RULES,
  STORE_TABLE_RULES,
  fileRule,
  loadPolicies,
  PolicyError,
  TABLE_RULES,
  ttlStatements,
} from '../src/retention/index.js';
import { retentionSchemaJson } from '../scripts/retention-schema.js';
import { DPO_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { encodedLoop, startFfmpegBot, type FfmpegBot } from './helpers/ffmpegBot.js';
import { waitFor } from './helpers/browser.js';
import { recordersWithSegment } from './helpers/recording.js';
import { onPostgresServer } from './helpers/postgresSuite.js';

const CATEGORIES_6Y = (rest: string) =>
  `categories:\n${rest}  participants: { duration: 395d }\n  transport_stats: { duration: 395d, action: anonymize }\n  call_quality: { duration: 395d }\n  access_log: { duration: 1y }\n  webhook_attempts: { duration: 90d }\n  audit_log: { duration: 6y }\n  dsar_exports: { duration: 30d }\n`;

// A short policy: recordings kept 3 s (GOVERNANCE), stats deleted after 1 s for tenant "acme".
const policies = mkdtempSync(path.join(os.tmpdir(), 'vigie-policies-'));
cpSync(new URL('../retention-policies', import.meta.url), policies, { recursive: true });
writeFileSync(
  path.join(policies, 'short.yaml'),
  `name: short\ntenants: [acme]\n${CATEGORIES_6Y('  recordings: { duration: 3s, action: delete, lockMode: governance }\n  track_stats: { duration: 1s, action: delete }\n  client_stats: { duration: 1s, action: anonymize }\n  call_events: { duration: 1s, action: anonymize }\n')}`,
);

const ADMIN_KEY = `adm_${randomBytes(24).toString('base64url')}`;
const adminKeyHash = `sha256:${createHash('sha256').update(ADMIN_KEY).digest('hex')}`;

let gw: TestGateway;
const bots: FfmpegBot[] = [];
beforeAll(async () => {
  gw = await startGateway({
    adminKeyHash,
    writer: { flushIntervalMs: 100 },
    retention: { policiesDir: policies, sweepIntervalSeconds: 3600 },
    recording: { segmentSeconds: 10 },
  });
});
afterAll(async () => {
  for (const b of bots) await b.stop().catch(() => undefined);
  await gw?.close();
});

// The bots send pre-encoded media: the segment boundaries are in media time, which a live encoder on a busy
// machine lets fall far behind the wall clock.
async function botPair(room: string) {
  const r = await gw.app.sfu.getOrCreateRoom('acme', room, gw.app.rooms.optionsFor('acme', room));
  const video = await startFfmpegBot(r, {
    kind: 'video',
    bitrateKbps: 200,
    name: `${room}-v`,
    file: await encodedLoop('video', 200),
  });
  const audio = await startFfmpegBot(r, {
    kind: 'audio',
    bitrateKbps: 32,
    name: `${room}-a`,
    file: await encodedLoop('audio', 32),
  });
  bots.push(video, audio);
  return { room: r, video, audio };
}
const catalog = (room: string) =>
  gw.query<{ id: string; status: string; legal_hold: number; participants: string[]; deletion_reason: string }>(
    `SELECT id, status, legal_hold, participants, deletion_reason FROM vigie.recordings FINAL WHERE room = {r:String} ORDER BY started_at`,
    { r: room },
  );
const putTenant = (tenant: string, body: object) =>
  gw.app.inject({
    method: 'PUT',
    url: `/v1/admin/tenants/${tenant}`,
    headers: { 'x-admin-key': ADMIN_KEY },
    payload: body,
  });

test('the published schema matches the loader, and every policy file validates', () => {
  assert.equal(
    readFileSync(new URL('../retention-policies/schema.json', import.meta.url), 'utf8'),
    retentionSchemaJson(),
    'run: npx tsx scripts/retention-schema.ts',
  );
  const loaded = loadPolicies(new URL('../retention-policies', import.meta.url).pathname);
  assert.deepEqual([...loaded.keys()].sort(), ['default', 'regulated']);
  const bad = mkdtempSync(path.join(os.tmpdir(), 'vigie-bad-policies-'));
  writeFileSync(path.join(bad, 'default.yaml'), 'name: default\ncategories:\n  recordings: { duration: forever }\n');
  assert.throws(
    () => loadPolicies(bad),
    (e: Error) =>
      e instanceof PolicyError &&
      /duration: a number and a unit/.test(e.message) &&
      /track_stats/.test(e.message) &&
      /access_log/.test(e.message),
  );
  // Anonymising a table keyed on the pseudonym, or the hash-chained audit log, is impossible: refused, not silently deleted.
  writeFileSync(
    path.join(bad, 'default.yaml'),
    `name: default\n${CATEGORIES_6Y('  recordings: { duration: 3s }\n  track_stats: { duration: 1s }\n  client_stats: { duration: 1s }\n  call_events: { duration: 1s }\n').replace('audit_log: { duration: 6y }', 'audit_log: { duration: 6y, action: anonymize }')}`,
  );
  assert.throws(
    () => loadPolicies(bad),
    (e: Error) =>
      e instanceof PolicyError && /categories\.audit_log\.action: "anonymize" is not possible/.test(e.message),
  );
});

test("COMPLIANCE locks: the guard compares each tenant's effective lock, not policy names; unknown policies are refused", async () => {
  const set = loadPolicies(new URL('../retention-policies', import.meta.url).pathname);
  const onRegulated = [{ id: 'bank', retentionPolicy: 'regulated' }];
  const { problems, locks } = complianceShortenings(new Map(), set, onRegulated);
  assert.deepEqual([problems, [...locks]], [[], [['bank', { policy: 'regulated', duration: 5 * 31_536_000 }]]]);
  // Moving the tenant to a weaker policy, or shrinking its policy, is refused; so is an unknown name.
  assert.match(
    complianceShortenings(locks, set, [{ id: 'bank', retentionPolicy: 'default' }]).problems[0]!,
    /tenant "bank".*promised a COMPLIANCE lock.*"default" locks them in governance mode/,
  );
  const shorter = structuredClone(set);
  shorter.get('regulated')!.categories.recordings.duration = 86400;
  assert.match(
    complianceShortenings(locks, shorter, onRegulated).problems[0]!,
    /cannot shrink from 157680000s \(policy "regulated"\) to 86400s/,
  );
  assert.match(
    complianceShortenings(locks, set, [{ id: 'bank', retentionPolicy: 'nope' }]).problems[0]!,
    /names the retention policy "nope", which does not exist/,
  );
  // The same lock under another name is fine: what counts is the effective duration.
  const renamed = structuredClone(set);
  renamed.set('mifid', { ...renamed.get('regulated')!, name: 'mifid' });
  renamed.delete('regulated');
  assert.deepEqual(complianceShortenings(locks, renamed, [{ id: 'bank', retentionPolicy: 'mifid' }]).problems, []);
  // A tenant no longer configured keeps its promise.
  assert.deepEqual([...complianceShortenings(locks, set, []).locks.keys()], ['bank']);

  // Through the admin API: an unknown policy and a weaker one are refused with a clear 400; the guard file records the promise.
  const unknown = await putTenant('globex', { retentionPolicy: 'nope' });
  assert.equal(unknown.statusCode, 400, unknown.body);
  assert.equal(unknown.json().error.code, 'INVALID_REQUEST');
  assert.match(unknown.json().error.message, /"nope", which does not exist/);
  assert.equal((await putTenant('globex', { retentionPolicy: 'regulated' })).statusCode, 200);
  await waitFor(
    "globex's promise in PostgreSQL",
    async () => (await promises(gw)).find((p) => p.tenant === 'globex'),
    (p) => p?.duration === 5 * 31_536_000 && p.policy === 'regulated',
  );
  const weaker = await putTenant('globex', { retentionPolicy: 'default' });
  assert.equal(weaker.statusCode, 400, weaker.body);
  assert.match(weaker.json().error.message, /tenant "globex".*COMPLIANCE/);
  assert.equal(gw.app.tenants.get('globex')!.retentionPolicy, 'regulated', 'the refused change is not applied');

  // Through a reload: shrinking the policy globex is on is refused, and the old set stays.
  writeFileSync(
    path.join(policies, 'regulated.yaml'),
    readFileSync(path.join(policies, 'regulated.yaml'), 'utf8').replace(
      'duration: 5y,   action: delete,    lockMode: compliance',
      'duration: 1y,   action: delete,    lockMode: compliance',
    ),
  );
  await assert.rejects(
    gw.app.retention.reload(),
    (e: Error) => e instanceof PolicyError && /globex.*cannot shrink/s.test(e.message),
  );
  assert.equal(gw.app.retention.policies().get('regulated')!.categories.recordings.duration, 5 * 31_536_000);
  cpSync(new URL('../retention-policies/regulated.yaml', import.meta.url), path.join(policies, 'regulated.yaml'));
  // A room cannot carry its own policy (it was never applied): refused, not ignored.
  const room = await gw.app.inject({
    method: 'POST',
    url: '/v1/rooms',
    headers: { 'x-api-key': (await import('./helpers/gateway.js')).ROOMS_WRITE_KEY.key },
    payload: { room: 'r1', retentionPolicy: 'regulated' },
  });
  assert.equal(room.statusCode, 400, room.body);
  assert.match(room.json().error.message, /retentionPolicy is set per tenant/);
});

test('per-tenant ClickHouse TTLs: expired stats rows are deleted, expired identities anonymised; unchanged TTLs are not re-applied', async () => {
  assert.equal((await putTenant('globex', { retentionPolicy: 'regulated' })).statusCode, 200);
  await gw.app.retention.applyTtls();
  const tables = ttlStatements('vigie', gw.app.retention.policies(), gw.app.tenants.list());
  const stmts = tables.flatMap((t) => t.statements);
  // acme deletes after 1 s; globex (regulated) anonymises instead, so its delete TTL is "never" (60 years).
  assert.ok(
    stmts.some((s) =>
      /track_stats MODIFY TTL .*transform\(tenant, \['acme', 'globex'\], \[1, 1892160000\], 1892160000\)/.test(s),
    ),
    stmts.join('\n'),
  );
  assert.ok(
    stmts.some((s) => /track_stats MODIFY COLUMN participant String TTL .*\[1892160000, 34128000\], 34128000/.test(s)),
  );
  assert.ok(
    stmts.some((s) => /audit_log MODIFY TTL .*\[189216000, 315360000\], 189216000/.test(s)),
    "the audit log follows each tenant's audit_log duration (6 y, 10 y)",
  );
  assert.deepEqual(await gw.app.retention.applyTtls(), [], 'nothing changed since the start: no ALTER');
  assert.equal((await putTenant('globex', { name: 'Globex Corp' })).statusCode, 200);
  assert.deepEqual(await gw.app.retention.applyTtls(), [], 'a change that does not touch retention: no ALTER');
  const old = Date.now() - 10_000;
  for (const tenant of ['acme', 'globex']) {
    gw.app.telemetry!.writer.write('call_events', {
      ts: old,
      tenant,
      room: 'ttl',
      call_id: 'ttl',
      peer_id: 'p',
      participant: `pseudo-${tenant}`,
      event: 'ttl.test',
      object_id: '',
      reason: '',
      attrs: {},
    });
    gw.app.telemetry!.writer.write('track_stats', {
      ts: old,
      tenant,
      room: 'ttl',
      call_id: 'ttl',
      peer_id: 'p',
      participant: `pseudo-${tenant}`,
      track_id: 't',
      producer_id: 't',
      kind: 'audio',
      direction: 'inbound',
      source: '',
      codec: '',
      ssrc: 1,
      spatial_layer: -1,
      temporal_layer: -1,
      interval_ms: 1000,
      bitrate_bps: 1,
      packets: 1,
      bytes: 1,
      packets_lost: 0,
      loss_fraction: 0,
      jitter_ms: null,
      rtt_ms: null,
      nack_count: 0,
      pli_count: 0,
      fir_count: 0,
      score: 10,
      frame_rate: null,
      frame_width: null,
      frame_height: null,
      mos: null,
      video_quality: null,
    });
  }
  await gw.app.telemetry!.writer.flush();
  for (const t of ['call_events', 'track_stats'])
    await gw.app.clickhouse.client.command({ query: `OPTIMIZE TABLE vigie.${t} FINAL` });
  const stats = await gw.query(`SELECT tenant FROM vigie.track_stats WHERE room = 'ttl' ORDER BY tenant`);
  assert.deepEqual(
    stats.map((r) => r.tenant),
    ['globex'],
    "acme's expired stats rows are deleted; globex keeps them (anonymised after 395 days)",
  );
  const events = await gw.query(
    `SELECT tenant, participant, peer_id FROM vigie.call_events WHERE room = 'ttl' ORDER BY tenant`,
  );
  assert.deepEqual(
    events,
    [
      { tenant: 'acme', participant: '', peer_id: '' },
      { tenant: 'globex', participant: 'pseudo-globex', peer_id: 'p' },
    ],
    'acme events kept, identity columns anonymised',
  );
});

test('the sweeper deletes expired recordings, skips legal holds, and records each deletion', async () => {
  const { room } = await botPair('sweep');
  await gw.app.recording!.service.start(room, 'test');
  await waitFor(
    'both recorders to write a file',
    () => recordersWithSegment(gw.app.config.dataDir, 0),
    (n) => n === 2,
    120_000,
  );
  await gw.app.recording!.service.stop(room, 'test');
  assert.ok(await gw.app.recording!.service.drain());
  const recs = await catalog('sweep');
  assert.equal(recs.length, 2);
  const [kept, expired] = recs;
  await gw.app.inject({
    method: 'PUT',
    url: `/v1/recordings/${kept!.id}/legal-hold`,
    headers: { 'x-api-key': DPO_KEY.key },
    payload: { on: true },
  });
  await new Promise((r) => setTimeout(r, 3500));
  assert.equal(await gw.app.recording!.sweeper.sweep(), 1);
  const after = new Map((await catalog('sweep')).map((r) => [r.id, r]));
  assert.equal(after.get(kept!.id)!.status, 'ready', 'legal hold stops the sweeper');
  assert.equal(after.get(expired!.id)!.status, 'deleted');
  assert.equal(after.get(expired!.id)!.deletion_reason, 'retention:short');
  const [rec] = await gw.query(
    `SELECT category, object_id, version_id, policy FROM vigie.retention_deletions WHERE object_id = {id:String}`,
    { id: expired!.id },
  );
  assert.equal(rec.policy, 'short');
  assert.ok(rec.version_id.length > 0);
});

test('consent: only participants who consent are recorded, and each answer is an event', async () => {
  await gw.app.rooms.declare('acme', 'consent', { consentRequired: true });
  const { room, video, audio } = await botPair('consent');
  await gw.app.recording!.service.start(room, 'test');
  gw.app.recording!.service.consent(room, video.peer, true);
  gw.app.recording!.service.consent(room, audio.peer, false);
  await waitFor(
    "the consenting participant's recorder to write a file",
    () => recordersWithSegment(gw.app.config.dataDir, 0),
    (n) => n === 1,
    120_000,
  );
  await gw.app.recording!.service.stop(room, 'test');
  assert.ok(await gw.app.recording!.service.drain());
  const recs = await catalog('consent');
  assert.equal(recs.length, 1);
  assert.deepEqual(recs[0]!.participants, [gw.app.telemetry!.keys.participant(video.peer)]);
  const events = (await gw.query(`SELECT event FROM vigie.call_events WHERE room = 'consent'`)).map((e) => e.event);
  assert.ok(events.includes('recording.consent_given') && events.includes('recording.consent_refused'));
});

test('long recordings are cut into segments; an ffmpeg crash is detected and reported', async () => {
  const { room } = await botPair('segments');
  await gw.app.recording!.service.start(room, 'test');
  await waitFor(
    'both recorders to start a second segment',
    () => recordersWithSegment(gw.app.config.dataDir, 1),
    (n) => n === 2,
    120_000,
  );
  await gw.app.recording!.service.stop(room, 'test');
  assert.ok(await gw.app.recording!.service.drain());
  assert.ok((await catalog('segments')).length >= 4, 'two participants × at least two 10 s segments');

  const crash = await botPair('crash');
  await gw.app.recording!.service.start(crash.room, 'test');
  const pids = await waitFor(
    'recorders',
    async () => gw.app.recording!.service.recorderPids(crash.room),
    (m) => m.size === 2 && [...m.values()].every(Boolean),
  );
  process.kill([...pids.values()][0]!, 'SIGKILL');
  await waitFor(
    'recording.failed event',
    async () =>
      (
        await gw.query(`SELECT count() AS c FROM vigie.call_events WHERE room = 'crash' AND event = 'recording.failed'`)
      )[0].c,
    (c) => Number(c) === 1,
  );
  await gw.app.recording!.service.stop(crash.room, 'test');
});

/**
 * The files under `dir`, relative, with `/`. A folder that goes while it is read is skipped: the embedded ClickHouse
 * engine merges parts in the background, in `tmp_merge_*` folders it removes (CI once failed on one with ENOENT).
 */
function relFiles(dir: string, under = ''): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(path.join(dir, under), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && under) return [];
    throw err;
  }
  return entries.flatMap((e) => {
    const rel = under ? `${under}/${e.name}` : e.name;
    return e.isDirectory() ? relFiles(dir, rel) : e.isFile() ? [rel] : [];
  });
}

test('every ClickHouse table and every file under DATA_DIR has a retention rule, and each table rule is applied as a TTL', async () => {
  // Files only some paths create: an audit export, a DSAR archive, a webhook journal.
  const from = new Date(Date.now() - 3600_000).toISOString();
  assert.equal(
    (
      await gw.app.inject({
        method: 'POST',
        url: '/v1/compliance/exports',
        headers: { 'x-api-key': DPO_KEY.key },
        payload: { from, to: new Date(Date.now() + 60_000).toISOString() },
      })
    ).statusCode,
    201,
  );
  assert.equal(
    (
      await gw.app.inject({
        method: 'POST',
        url: '/v1/compliance/dsar/access',
        headers: { 'x-api-key': DPO_KEY.key },
        payload: { identity: 'sweep-v' },
      })
    ).statusCode,
    201,
  );
  await gw.app.webhooks.queue.enqueue([
    {
      id: randomUUID(),
      tenant: 'acme',
      endpointId: 'gone',
      event: 'room.started',
      body: '{"room":"inventory"}',
      createdAt: Date.now(),
      attempts: 0,
      nextAt: Date.now(),
    },
  ]);
  // And what a call and a recording leave (made here too, so that this test does not depend on the ones before).
  await gw.app.telemetry!.keys.pseudonymizer.pseudonym('acme', 'inventory-user');
  await gw.app.roomBans.ban('acme', 'inventory', 'inventory-user', Date.now() / 1000 + 3600);
  const media = path.join(mkdtempSync(path.join(os.tmpdir(), 'vigie-inv-')), 'r.webm');
  writeFileSync(media, 'media');
  await gw.app.recording!.store.put(`acme/inventory/${randomUUID()}.webm`, media, {
    contentType: 'video/webm',
    sha256: createHash('sha256').update('media').digest('hex'),
  });

  const tables = await gw.query<{ name: string; comment: string; engine_full: string }>(
    `SELECT name, comment, engine_full FROM system.tables WHERE database = 'vigie' AND engine NOT IN ('View', 'MaterializedView')`,
  );
  assert.ok(tables.length >= 14, tables.map((t) => t.name).join());
  for (const t of tables) {
    const rule = TABLE_RULES[t.name];
    assert.ok(rule, `table ${t.name} has no retention rule: add it to TABLE_RULES in src/retention/inventory.ts`);
    if ('category' in rule) {
      assert.match(t.engine_full, / TTL toDateTime\(/, `${t.name}: its TTL is applied`);
      assert.match(t.comment, /^vigie-ttl:[0-9a-f]{16}$/, t.name);
    }
  }
  for (const name of [
    'participants',
    'transport_stats',
    'call_quality_agg',
    'access_log',
    'webhook_attempts',
    'audit_log',
  ])
    assert.ok('category' in TABLE_RULES[name]!, `${name} expires by its policy`);

  const files = relFiles(gw.config.dataDir);
  for (const expected of [
    /^exports\/[0-9a-f-]{36}\.tar$/,
    /^exports\/[0-9a-f-]{36}\.jsonl$/,
    /^objects\//,
    // The embedded control plane, unless this run puts it on a PostgreSQL server (npm run test:postgres).
    ...(onPostgresServer() ? [] : [/^postgres\//]),
    /^clickhouse\//,
  ]) {
    assert.ok(
      files.some((f) => expected.test(f)),
      `the run created a file matching ${expected}: ${files.filter((f) => !f.startsWith('clickhouse/')).join(', ')}`,
    );
  }
  const storeTables = (
    await gw.app.db.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
  ).rows.map((r) => r.name);
  assert.ok(storeTables.includes('subject_salts'), storeTables.join());
  for (const name of storeTables)
    assert.ok(
      STORE_TABLE_RULES[name],
      `PostgreSQL table ${name} has no retention rule: add it to STORE_TABLE_RULES in src/retention/inventory.ts`,
    );
  const unruled = files.filter((f) => !fileRule(f));
  assert.deepEqual(
    unruled,
    [],
    'files under DATA_DIR without a retention rule: add them to FILE_RULES in src/retention/inventory.ts',
  );
  assert.ok(
    FILE_RULES.some((r) => r.pattern.test('spool/seg-000000000001.log')),
    'the telemetry spool has its rule',
  );
});

test('the data directory sweep deletes expired exports and archives; finished webhook bodies leave the outbox', async () => {
  const dir = path.join(gw.config.dataDir, 'exports');
  const ids = [
    ...new Set(
      readdirSync(dir)
        .map((f) => /^[0-9a-f-]{36}/.exec(f)?.[0])
        .filter(Boolean),
    ),
  ] as string[];
  assert.ok(ids.length >= 2);
  const [old, ...young] = ids;
  const longAgo = new Date(Date.now() - 31 * 86400_000);
  for (const f of readdirSync(dir).filter((f) => f.startsWith(old!))) utimesSync(path.join(dir, f), longAgo, longAgo);
  await waitFor(
    'the delivery to a removed endpoint given up',
    async () => gw.app.webhooks.queue.size(),
    (n) => n === 0,
  );
  const { rows } = await gw.app.db.query("SELECT id FROM webhook_outbox WHERE body LIKE '%inventory%'");
  assert.deepEqual(rows, [], 'a delivery given up is deleted from the outbox, body included');

  const swept = await gw.app.retention.files.sweep();
  assert.deepEqual(swept.exportsDeleted, [old], 'only the export older than 30 days (dsar_exports) is deleted');
  assert.ok(!readdirSync(dir).some((f) => f.startsWith(old!)), 'its data and meta files are gone');
  for (const id of young)
    assert.ok(
      readdirSync(dir).some((f) => f.startsWith(`${id}.meta.json`)),
      'younger exports stay',
    );
  const [rec] = await gw.query(`SELECT category, policy FROM vigie.retention_deletions WHERE object_id = {id:String}`, {
    id: old,
  });
  assert.deepEqual(rec, { category: 'dsar_exports', policy: 'short' });
  assert.equal(swept.journalLinesRemoved, 0, 'the outbox has no history to compact, only a vacuum');
});

/** A recording of tenant `bank` under a COMPLIANCE lock, as the catalog's ClickHouse copy holds it. */
const lockedRecording = (gw: TestGateway) =>
  gw.app.telemetry!.writer.write('recordings', {
    id: randomUUID(),
    tenant: 'bank',
    room: 'r',
    call_id: 'c',
    participants: [],
    status: 'ready',
    lock_mode: 'compliance',
    object_key: 'k',
    version_id: 'v',
    retention_policy: 'regulated',
    started_at: Date.now(),
    ended_at: Date.now(),
    updated_at: Date.now(),
  });

const promises = async (gw: TestGateway) =>
  (
    await gw.app.db.query<{ tenant: string; policy: string; duration: string }>('SELECT * FROM retention_promises')
  ).rows.map((r) => ({ tenant: r.tenant, policy: r.policy, duration: Number(r.duration) }));

test('the COMPLIANCE-lock promises: lost while locked recordings exist, or a corrupt guard file to import, stops the start', async () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-guard-'));
  // ClickHouse in its own process: one process holds one embedded engine, and this file's gateway has it.
  const { startChdbHttp } = await import('./helpers/chdbHttpServer.js');
  const server = await startChdbHttp(mkdtempSync(path.join(os.tmpdir(), 'vigie-ch-guard-')));
  const opts = {
    dataDir,
    clickhouse: { url: server.url, requestTimeoutMs: 5000 },
    retention: { policiesDir: policies },
    tenants: [{ id: 'bank', retentionPolicy: 'regulated' }],
  };
  /** The start must be refused; a gateway that starts anyway is closed, so the failure does not leave it running. */
  const refused = async (o: typeof opts, why: RegExp) => {
    const started = await startGateway(o).catch((e: Error) => e);
    if (!(started instanceof Error)) await started.close();
    assert.ok(
      started instanceof PolicyError && why.test(started.message),
      `start refused with ${why}: got ${started instanceof Error ? started.message : 'a running gateway'}`,
    );
  };
  const bank = { policy: 'regulated', duration: 5 * 31_536_000 };
  try {
    const first = await startGateway(opts);
    lockedRecording(first);
    assert.deepEqual(await promises(first), [{ tenant: 'bank', ...bank }]);
    // The promises lost (a control plane restored from an old backup, say) while locked recordings exist.
    await first.app.db.query('DELETE FROM retention_promises');
    await first.close();
    await refused(opts, /retention promises .* are missing, but tenants bank have COMPLIANCE-locked recordings/);
    // The guard file of the version before the store is imported once: a corrupt one stops the start.
    const guard = path.join(dataDir, 'retention-applied.json');
    writeFileSync(guard, JSON.stringify({ version: 2 }));
    await refused(opts, /retention guard .* is corrupt/);
    writeFileSync(guard, JSON.stringify({ version: 2, locks: { bank } }));
    // A tenant configured with an unknown policy is refused at start as well.
    await refused(
      {
        ...opts,
        tenants: [
          { id: 'bank', retentionPolicy: 'regulated' },
          { id: 'other', retentionPolicy: 'nope' },
        ],
      },
      /"nope", which does not exist/,
    );
    const again = await startGateway(opts);
    assert.deepEqual(await promises(again), [{ tenant: 'bank', ...bank }], 'the file is imported');
    assert.ok(readdirSync(dataDir).includes('retention-applied.json.imported'), 'then set aside');
    await again.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    await server.stop();
  }
});

test('a node added to a cluster with COMPLIANCE-locked recordings keeps the promises the others made, and starts', async () => {
  const { startChdbHttp } = await import('./helpers/chdbHttpServer.js');
  const { startPostgres } = await import('./helpers/postgres.js');
  const clickhouse = await startChdbHttp(mkdtempSync(path.join(os.tmpdir(), 'vigie-ch-nodes-')));
  const pg = await startPostgres();
  const dirs: string[] = [];
  const node = (id: string, retentionPolicy = 'regulated') => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-node-'));
    dirs.push(dataDir);
    return startGateway({
      dataDir,
      node: { id },
      database: { url: pg.url },
      clickhouse: { url: clickhouse.url, requestTimeoutMs: 5000 },
      retention: { policiesDir: policies },
      tenants: [{ id: 'bank', retentionPolicy }],
    });
  };
  try {
    const a = await node('node-a');
    lockedRecording(a);
    await a.app.telemetry!.writer.flush();
    await a.close();
    // A new node, on an empty data dir: the promise node A made holds it too.
    const b = await node('node-b');
    assert.deepEqual(await promises(b), [{ tenant: 'bank', policy: 'regulated', duration: 5 * 31_536_000 }]);
    await b.close();
    await assert.rejects(node('node-c', 'default'), (e: Error) =>
      /COMPLIANCE lock cannot shrink|locks them in/.test(e.message),
    );
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await pg.stop();
    await clickhouse.stop();
  }
});

test('a ClickHouse that becomes ready after the start gets its TTLs then; spooled rows past their rule are dropped or anonymised first', async () => {
  const { startChdbHttp } = await import('./helpers/chdbHttpServer.js');
  const server = await startChdbHttp(mkdtempSync(path.join(os.tmpdir(), 'vigie-ch-later-')));
  await server.stop();
  const g = await startGateway({
    clickhouse: { url: server.url, requestTimeoutMs: 2000 },
    writer: { flushIntervalMs: 100 },
    retention: { policiesDir: policies, sweepIntervalSeconds: 3600 },
  });
  let up = false;
  try {
    assert.equal(g.app.clickhouse.schemaReady, false);
    assert.deepEqual(await g.app.retention.applyTtls(), []);
    const old = Date.now() - 10_000;
    const row = (tenant: string, participant: string) => ({
      ts: old,
      tenant,
      room: 'spool',
      call_id: 'c',
      peer_id: 'p',
      participant,
      event: 'spool.test',
      object_id: '',
      reason: '',
      attrs: {},
    });
    const w = g.app.telemetry!.writer;
    // acme (policy "short"): participants deleted after 395 d, call events anonymised after 1 s; globex (default): 395 d.
    w.write('participants', {
      tenant: 'acme',
      participant: 'pseudo-acme-map',
      identity: 'alice@acme',
      display_name: 'Alice',
      first_seen: old - 400 * 86400_000,
      updated_at: old - 400 * 86400_000,
    });
    w.write('call_events', row('acme', 'pseudo-acme-old'));
    w.write('call_events', row('globex', 'pseudo-globex-old'));
    await w.flush();
    const spoolText = () =>
      relFiles(path.join(g.config.dataDir, 'spool'))
        .map((f) => readFileSync(path.join(g.config.dataDir, 'spool', f), 'utf8'))
        .join('');
    assert.match(spoolText(), /alice@acme.*pseudo-acme-old/s, 'the rows wait in the spool');
    const swept = await g.app.retention.files.sweep();
    assert.equal(swept.spoolRowsRemoved, 1, 'the expired participants row is dropped');
    assert.doesNotMatch(spoolText(), /alice@acme|pseudo-acme-old/, 'the expired identity is gone from the spool');
    assert.match(spoolText(), /pseudo-globex-old/);

    await server.start();
    up = true;
    await waitFor(
      'TTLs applied once ClickHouse is ready',
      async () =>
        g.app.clickhouse.schemaReady
          ? (
              await g.query<{ c: string }>(
                `SELECT count() AS c FROM system.tables WHERE database = 'vigie' AND startsWith(comment, 'vigie-ttl:')`,
              )
            )[0]!.c
          : '0',
      (c) => Number(c) === Object.values(TABLE_RULES).filter((r) => 'category' in r).length,
      60_000,
    );
    assert.ok(await w.drain());
    assert.deepEqual(
      await g.query(`SELECT tenant, participant FROM vigie.call_events WHERE room = 'spool' ORDER BY tenant`),
      [
        { tenant: 'acme', participant: '' },
        { tenant: 'globex', participant: 'pseudo-globex-old' },
      ],
    );
    assert.equal(
      Number((await g.query(`SELECT count() AS c FROM vigie.participants`))[0].c),
      0,
      'the expired identity never reached ClickHouse',
    );
    assert.deepEqual(await g.app.retention.applyTtls(), [], 'applied once');
  } finally {
    // Closed with ClickHouse up, even when an assertion failed before it was started.
    if (!up) await server.start();
    await g.close();
    await server.stop();
  }
});
