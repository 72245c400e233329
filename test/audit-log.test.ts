/**
 * The audit log is evidence: truncation and rewrites are named, no entry is
 * dropped or forked across ClickHouse outages and restarts, the signing key can
 * rotate, and every administrative change is in it.
 */
import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as Minio from 'minio';
import { entryHash, type AuditEntry } from '../src/compliance/index.js';
import {
  ACME_KEY,
  appendAuditEntries,
  DPO_KEY,
  ROOMS_WRITE_KEY,
  TENANT_ADMIN_KEY,
  startGateway,
  type TestGateway,
} from './helpers/gateway.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import { startRadosgw } from './helpers/radosgw.js';
import { recordFromFirstFiles } from './helpers/recording.js';

let gw: TestGateway;
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-audit-'));
const ADMIN_KEY = `adm_${randomBytes(24).toString('base64url')}`;
const adminKeyHash = `sha256:${createHash('sha256').update(ADMIN_KEY).digest('hex')}`;
beforeAll(async () => {
  gw = await startGateway({
    dataDir,
    adminKeyHash,
    compliance: { checkpointEvery: 5 },
    webhooks: { allowPrivateTargets: true },
  });
});
afterAll(async () => {
  await gw?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const ch = () => gw.app.clickhouse.client;
const mutate = (query: string) => ch().command({ query, clickhouse_settings: { mutations_sync: '2' } });

async function chain(tenant: string, n: number) {
  await appendAuditEntries(gw, tenant, n);
  await gw.app.compliance!.audit.flush();
}

test('truncation: the newest entries and their checkpoint rows deleted together are named from the anchors outside ClickHouse', async () => {
  const audit = gw.app.compliance!.audit;
  await chain('trunc', 23); // checkpoints at 5, 10, 15, 20
  const clean = await audit.verify('trunc');
  assert.deepEqual([clean.ok, clean.entries, clean.checkpoints, clean.anchored], [true, 23, 4, 4]);
  const anchorFile = path.join(dataDir, 'audit', 'anchors.jsonl');
  assert.deepEqual(
    readFileSync(anchorFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((c) => c.tenant === 'trunc')
      .map((c) => c.seq),
    [5, 10, 15, 20],
  );

  // Whoever can write ClickHouse deletes the tail, including entries two checkpoints cover, and those checkpoints.
  await mutate(`ALTER TABLE vigie.audit_log DELETE WHERE tenant = 'trunc' AND seq >= 12`);
  await mutate(`ALTER TABLE vigie.audit_checkpoints DELETE WHERE tenant = 'trunc' AND seq >= 10`);
  const r = await audit.verify('trunc');
  assert.equal(r.ok, false);
  assert.equal(r.entries, 11);
  const named = (kind: string) => r.problems.filter((p) => p.kind === kind).map((p) => p.seq);
  // Every checkpoint whose entry is missing: 15 and 20, whose rows are gone from ClickHouse too.
  for (const seq of [15, 20]) {
    const p = r.problems.find((q) => q.seq === seq && /covered by a signed checkpoint, is missing/.test(q.detail));
    assert.ok(p, `checkpoint ${seq} is named: ${JSON.stringify(r.problems)}`);
  }
  assert.deepEqual(
    named('checkpoint').sort((a, b) => a - b),
    [10, 15, 20],
    'the deleted checkpoint rows, and the checkpoints whose entries are gone',
  );
  assert.ok(
    r.problems.some(
      (p) => p.seq === 10 && p.detail.includes('deleted from audit_checkpoints') && p.detail.includes(anchorFile),
    ),
    'the anchors still hold the deleted checkpoint rows',
  );
  assert.ok(
    r.problems.some((p) => p.kind === 'deleted' && p.seq === 12 && /truncated/.test(p.detail)),
    JSON.stringify(r.problems),
  );
  assert.deepEqual(r.problem, r.problems[0]);

  // Through the API, for the DPO's tenant, the same report.
  const viaApi = await gw.app.inject({
    method: 'GET',
    url: '/v1/compliance/audit/verify',
    headers: { 'x-api-key': DPO_KEY.key },
  });
  assert.equal(viaApi.statusCode, 200);
  assert.equal(viaApi.json().ok, true, 'acme itself is intact');
});

test('an altered entry whose hash was recomputed is named as altered at its own position', async () => {
  const audit = gw.app.compliance!.audit;
  await chain('rehash', 12); // checkpoints at 5 and 10
  const [row] = await gw.query<AuditEntry & { ts: string }>(
    `SELECT tenant, seq, toUnixTimestamp64Milli(ts) AS ts, actor, action, target, subject, result, source_ip, details, prev_hash FROM vigie.audit_log WHERE tenant = 'rehash' AND seq = 7`,
  );
  const { ...body } = { ...row!, seq: Number(row!.seq), ts: Number(row!.ts), details: '{"i":999}' };
  const forged = entryHash(body);
  await mutate(
    `ALTER TABLE vigie.audit_log UPDATE details = '{"i":999}', hash = '${forged}' WHERE tenant = 'rehash' AND seq = 7`,
  );
  const r = await audit.verify('rehash');
  assert.equal(r.ok, false);
  assert.deepEqual([r.problem?.seq, r.problem?.kind], [7, 'altered'], JSON.stringify(r.problems));
  assert.match(r.problem!.detail, /hash was recomputed/);
  assert.ok(!r.problems.some((p) => p.kind === 'inserted'), 'not reported as an insertion at 8');

  // A checkpointed entry rewritten the same way is named at its position too.
  const [row10] = await gw.query<AuditEntry & { ts: string }>(
    `SELECT tenant, seq, toUnixTimestamp64Milli(ts) AS ts, actor, action, target, subject, result, source_ip, details, prev_hash FROM vigie.audit_log WHERE tenant = 'rehash' AND seq = 10`,
  );
  const forged10 = entryHash({ ...row10!, seq: 10, ts: Number(row10!.ts), actor: 'key:someone-else' });
  await mutate(
    `ALTER TABLE vigie.audit_log UPDATE actor = 'key:someone-else', hash = '${forged10}' WHERE tenant = 'rehash' AND seq = 10`,
  );
  const r2 = await audit.verify('rehash');
  assert.deepEqual(
    r2.problems.filter((p) => p.kind === 'altered').map((p) => p.seq),
    [7, 10],
    JSON.stringify(r2.problems),
  );
});

test('audited too: tenant changes, API keys, webhook changes, remote mute and removal', async () => {
  const op = { 'x-admin-key': ADMIN_KEY };
  const admin = { 'x-api-key': TENANT_ADMIN_KEY.key };
  const inject = (method: string, url: string, headers: Record<string, string>, payload?: object) =>
    gw.app.inject({ method: method as 'GET', url, headers, ...(payload ? { payload } : {}) });
  assert.equal((await inject('PUT', '/v1/admin/tenants/initech', op, { name: 'Initech' })).statusCode, 200);
  assert.equal((await inject('PUT', '/v1/admin/tenants/initech', op, { name: 'Initech SA' })).statusCode, 200);
  const key = (await inject('POST', '/v1/admin/tenants/initech/api-keys', op, { scopes: ['admin'] })).json();
  assert.equal((await inject('DELETE', `/v1/admin/tenants/initech/api-keys/${key.id}`, op)).statusCode, 204);
  const opHook = await inject('POST', '/v1/admin/tenants/initech/webhooks', op, { url: 'https://127.0.0.1:9/op' });
  assert.equal(opHook.statusCode, 201, opHook.body);
  assert.equal((await inject('DELETE', '/v1/admin/tenants/initech', op)).statusCode, 204);

  const hook = (await inject('POST', '/v1/webhooks', admin, { url: 'https://127.0.0.1:9/hook' })).json();
  assert.equal((await inject('POST', `/v1/webhooks/${hook.id}/enable`, admin)).statusCode, 200);
  assert.equal((await inject('DELETE', `/v1/webhooks/${hook.id}`, admin)).statusCode, 204);

  const peer = await gw.connect();
  const joined = await peer.request<{ peerId: string }>('join', {
    token: await gw.mint({ room: 'moderated', identity: 'loud@example.fr' }),
  });
  const rw = { 'x-api-key': ROOMS_WRITE_KEY.key };
  assert.equal(
    (await inject('POST', `/v1/rooms/moderated/participants/${joined.peerId}/mute`, rw, { kind: 'audio' })).statusCode,
    200,
  );
  assert.equal((await inject('DELETE', `/v1/rooms/moderated/participants/${joined.peerId}`, rw)).statusCode, 204);

  const rows = await gw.query<{
    tenant: string;
    actor: string;
    action: string;
    target: string;
    subject: string;
    details: string;
  }>(
    `SELECT tenant, actor, action, target, subject, details FROM vigie.audit_log WHERE tenant IN ('initech', 'acme') AND action IN ('tenant.create', 'tenant.update', 'tenant.delete', 'apikey.create', 'apikey.revoke', 'webhook.create', 'webhook.enable', 'webhook.delete', 'participant.mute', 'participant.remove') ORDER BY tenant, seq`,
  );
  const seen = rows.map((r) => `${r.tenant} ${r.actor} ${r.action} ${r.target}`);
  assert.deepEqual(seen, [
    `acme key:acmeadm1 webhook.create webhook:${hook.id}`,
    `acme key:acmeadm1 webhook.enable webhook:${hook.id}`,
    `acme key:acmeadm1 webhook.delete webhook:${hook.id}`,
    'acme key:acmerw1 participant.mute room:moderated',
    'acme key:acmerw1 participant.remove room:moderated',
    'initech operator tenant.create tenant:initech',
    'initech operator tenant.update tenant:initech',
    `initech operator apikey.create key:${key.id}`,
    `initech operator apikey.revoke key:${key.id}`,
    `initech operator webhook.create webhook:${opHook.json().id}`,
    'initech operator tenant.delete tenant:initech',
  ]);
  const mute = rows.find((r) => r.action === 'participant.mute')!;
  assert.equal(
    mute.subject,
    await gw.app.telemetry!.keys.pseudonymizer.pseudonym('acme', 'loud@example.fr'),
    'the muted person, pseudonymized',
  );
  assert.ok(
    !rows.some((r) => r.details.includes(hook.secret) || r.details.includes(opHook.json().secret)),
    'no webhook secret in the audit log',
  );
  assert.deepEqual(JSON.parse(rows.find((r) => r.action === 'apikey.create')!.details), { scopes: ['admin'] });
  assert.deepEqual(
    JSON.parse(rows.find((r) => r.action === 'tenant.update')!.details),
    { fields: ['name'] },
    'which settings changed, never their values',
  );
});

test('the signing key rotates: checkpoints signed by the retired key still verify by kid, and the JWKS keeps its public half', async () => {
  await chain('rotate', 5);
  const before = (await gw.app.inject('/.well-known/jwks.json')).json().keys.map((k: { kid: string }) => k.kid);
  await gw.close();
  // A new key: the generated one is replaced (as VIGIE_AUDIT_SIGNING_KEY_FILE pointing at a new file would).
  rmSync(path.join(dataDir, 'secrets', 'audit-signing-key.jwk'));
  gw = await startGateway({
    dataDir,
    adminKeyHash,
    compliance: { checkpointEvery: 5 },
    webhooks: { allowPrivateTargets: true },
  });
  await chain('rotate', 5);
  const jwks = (await gw.app.inject('/.well-known/jwks.json')).json().keys as Array<{ kid: string; d?: string }>;
  assert.equal(jwks.length, 2);
  assert.ok(
    jwks.every((k) => k.d === undefined),
    'public halves only',
  );
  assert.equal(jwks[0]!.kid, gw.app.compliance!.signer.kid, 'the current key first');
  assert.ok(jwks.some((k) => k.kid === before[0]) && before[0] !== jwks[0]!.kid, 'the retired key stays published');
  const kids = (
    await gw.query<{ jws: string }>(`SELECT jws FROM vigie.audit_checkpoints WHERE tenant = 'rotate' ORDER BY seq`)
  ).map((c) => JSON.parse(Buffer.from(c.jws.split('.')[0]!, 'base64url').toString()).kid);
  assert.deepEqual(kids, [before[0], jwks[0]!.kid]);
  const r = await gw.app.compliance!.audit.verify('rotate');
  assert.deepEqual([r.ok, r.entries, r.checkpoints], [true, 10, 2], JSON.stringify(r.problems));
  // The chain continued across the restart instead of starting again at 1.
  const seqs = (
    await gw.query<{ seq: string }>(`SELECT seq FROM vigie.audit_log WHERE tenant = 'rotate' ORDER BY seq`)
  ).map((s) => Number(s.seq));
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
});

test('VIGIE_TELEMETRY=false does not switch off the audit log or recording', async () => {
  // Its own engine, over HTTP: the embedded one holds one data directory per process, and gw has it.
  const chDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-audit-ch-'));
  const server = await startChdbHttp(chDir);
  const off = await startGateway({ telemetry: { enabled: false }, clickhouse: { url: server.url } });
  try {
    assert.ok(off.app.compliance, 'compliance is on');
    const minted = await off.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: { 'x-api-key': ACME_KEY.key },
      payload: { room: 'quiet', identity: 'x' },
    });
    assert.equal(minted.statusCode, 200, minted.body);
    assert.equal((await off.app.inject('/.well-known/jwks.json')).statusCode, 200);

    assert.ok(off.app.recording, 'recording is on');
    const room = await off.app.sfu.getOrCreateRoom('acme', 'quiet');
    const bot = await startFfmpegBot(room, { kind: 'audio', bitrateKbps: 32 });
    const control = (action: string) =>
      off.app.inject({
        method: 'POST',
        url: '/v1/rooms/quiet/recording',
        headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
        payload: { action },
      });
    assert.equal((await control('start')).statusCode, 200);
    await recordFromFirstFiles(off.app.config.dataDir, 1, 1000);
    assert.equal((await control('stop')).statusCode, 200);
    await bot.stop();
    assert.ok(await off.app.recording!.service.drain());
    const recs = await off.query<{ status: string }>(`SELECT status FROM vigie.recordings FINAL WHERE room = 'quiet'`);
    assert.deepEqual(
      recs.map((x) => x.status),
      ['ready'],
    );
    const [stats] = await off.query<{ c: string }>(`SELECT count() AS c FROM vigie.track_stats`);
    assert.equal(Number(stats!.c), 0, 'stats are not collected');

    const r = await off.app.compliance!.audit.verify('acme');
    assert.equal(r.ok, true);
    assert.deepEqual(
      (
        await off.query<{ action: string }>(`SELECT action FROM vigie.audit_log WHERE tenant = 'acme' ORDER BY seq`)
      ).map((x) => x.action),
      ['token.mint', 'recording.control', 'recording.control'],
    );
  } finally {
    await off.close();
    await server.stop();
    rmSync(chDir, { recursive: true, force: true });
  }
});

test('no entry dropped or forked: ClickHouse down mid-run, then down at start (the chain continues from the control plane), then back', async () => {
  const chDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-audit-ch-'));
  const gwDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-audit-gw-'));
  const server = await startChdbHttp(chDir);
  // The telemetry spool is as small as allowed and drops: audit entries must not share its fate.
  const opts = {
    dataDir: gwDir,
    clickhouse: { url: server.url, requestTimeoutMs: 2000 },
    writer: { flushIntervalMs: 100, spoolMaxBytes: 1 << 20, spoolFullPolicy: 'drop-newest' },
  };
  const mint = (g: TestGateway, identity: string) =>
    g.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: { 'x-api-key': ACME_KEY.key },
      payload: { room: 'durable', identity },
    });
  let g = await startGateway(opts);
  try {
    for (let i = 0; i < 3; i++) assert.equal((await mint(g, `before-${i}`)).statusCode, 200);
    await g.app.compliance!.audit.flush();

    // Mid-run outage: audited actions are still answered, each after its entry is committed in the control plane.
    await server.stop();
    for (let i = 0; i < 20; i++) assert.equal((await mint(g, `during-${i}`)).statusCode, 200);
    // Each answered action's entry is already committed (a crash now would lose none), not in a memory buffer.
    const waiting = async (gw: TestGateway) =>
      Number(
        (
          await gw.app.db.query<{ n: string }>(
            "SELECT count(*)::text AS n FROM audit_outbox WHERE tbl = 'audit_log' AND tenant = 'acme'",
          )
        ).rows[0]!.n,
      );
    assert.equal(await waiting(g), 20);
    // More than the whole telemetry spool (1 MiB, drop-newest) holds: no audit entry is given up for it.
    const blob = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 24; i++)
      await g.app.compliance!.audit.append({
        tenant: 'bulk',
        actor: 'system',
        action: 'bulk.test',
        details: { i, blob },
      });
    await g.close(); // still down: the outbox keeps what ClickHouse has not taken

    // Down at start: the heads are in the control plane, so audited actions continue the chain, not from seq 1.
    g = await startGateway(opts);
    assert.equal(g.app.compliance!.audit.ready, true);
    assert.equal((await mint(g, 'while-down')).statusCode, 200);
    assert.equal(await waiting(g), 21, 'waiting for ClickHouse, with the entries of the run before');

    await server.start();
    for (let i = 0; i < 2; i++) assert.equal((await mint(g, `after-${i}`)).statusCode, 200);
    const r = await g.app.compliance!.audit.verify('acme');
    assert.equal(r.ok, true, JSON.stringify(r.problems));
    assert.equal(r.entries, 26, 'every answered action has its entry, none twice');
    const rows = await g.query<{ seq: string; target: string }>(
      `SELECT seq, target FROM vigie.audit_log WHERE tenant = 'acme' AND action = 'token.mint' ORDER BY seq`,
    );
    assert.deepEqual(
      rows.map((x) => Number(x.seq)),
      Array.from({ length: 26 }, (_, i) => i + 1),
      'one chain, continued, not restarted at 1',
    );
    const bulk = await g.app.compliance!.audit.verify('bulk');
    assert.deepEqual([bulk.ok, bulk.entries], [true, 24]);
  } finally {
    await g.close();
    await server.stop();
    rmSync(chDir, { recursive: true, force: true });
    rmSync(gwDir, { recursive: true, force: true });
  }
});

test('with S3 storage, every checkpoint is anchored in the bucket under a COMPLIANCE lock, and verify compares the chain with the anchors', async () => {
  const rgw = await startRadosgw();
  const chDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-audit-ch-'));
  const server = await startChdbHttp(chDir);
  const bucket = 'vigie-anchors';
  const g = await startGateway({
    clickhouse: { url: server.url },
    compliance: { checkpointEvery: 3 },
    storage: {
      driver: 's3',
      s3Endpoint: rgw.endpoint,
      s3AccessKey: rgw.accessKey,
      s3SecretKey: rgw.secretKey,
      s3Region: rgw.region,
      s3Bucket: bucket,
      sse: 'none',
      country: 'FR',
      region: 'fr-par-test',
      provider: 'Ceph RGW (test)',
    },
  });
  const s3 = new Minio.Client({
    endPoint: rgw.host,
    port: rgw.port,
    useSSL: false,
    accessKey: rgw.accessKey,
    secretKey: rgw.secretKey,
    region: rgw.region,
    pathStyle: true,
  });
  try {
    const audit = g.app.compliance!.audit;
    for (let i = 1; i <= 7; i++)
      await audit.append({ tenant: 'anchored', actor: 'key:test', action: 'recording.read', target: `recording:${i}` });
    assert.match(g.app.compliance!.anchors.where, /^object store s3:.*COMPLIANCE lock/);
    assert.deepEqual(await audit.verify('anchored').then((r) => [r.ok, r.checkpoints, r.anchored]), [true, 2, 2]);

    const versions: Array<{ name: string; versionId: string }> = [];
    for await (const o of s3.listObjects(bucket, 'audit-anchors/anchored/', true, {
      IncludeVersion: true,
    }) as AsyncIterable<{ name: string; versionId: string }>)
      versions.push(o);
    assert.deepEqual(versions.map((v) => v.name).sort(), [
      'audit-anchors/anchored/00000000000000000003.json',
      'audit-anchors/anchored/00000000000000000006.json',
    ]);
    for (const v of versions) {
      const retention = (await s3.getObjectRetention(bucket, v.name, { versionId: v.versionId })) as { mode?: string };
      assert.equal(retention.mode, 'COMPLIANCE');
      await assert.rejects(
        s3.removeObject(bucket, v.name, { versionId: v.versionId, governanceBypass: true }),
        (e: { code?: string }) => e.code === 'AccessDenied',
        'not even the bucket owner can delete an anchor',
      );
    }
    // A delete marker hides the newest anchor from a plain listing; it stays a version.
    await s3.removeObject(bucket, 'audit-anchors/anchored/00000000000000000006.json');

    // The tail and every checkpoint row are deleted from ClickHouse.
    const cmd = (query: string) =>
      g.app.clickhouse.client.command({ query, clickhouse_settings: { mutations_sync: '2' } });
    await cmd(`ALTER TABLE vigie.audit_log DELETE WHERE tenant = 'anchored' AND seq >= 5`);
    await cmd(`ALTER TABLE vigie.audit_checkpoints DELETE WHERE tenant = 'anchored'`);
    const r = await audit.verify('anchored');
    assert.equal(r.ok, false);
    assert.equal(r.anchored, 2);
    assert.ok(
      r.problems.some(
        (p) => p.seq === 6 && p.kind === 'checkpoint' && /covered by a signed checkpoint, is missing/.test(p.detail),
      ),
      JSON.stringify(r.problems),
    );
    assert.ok(
      r.problems.some(
        (p) =>
          p.seq === 3 && p.kind === 'checkpoint' && /deleted from audit_checkpoints; object store s3:/.test(p.detail),
      ),
      JSON.stringify(r.problems),
    );
  } finally {
    await g.close();
    await server.stop();
    await rgw.stop();
    rmSync(chDir, { recursive: true, force: true });
  }
});
