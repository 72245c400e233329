import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as Minio from 'minio';
import {
  GLOBEX_VIEWER_KEY,
  TENANT_ADMIN_KEY,
  VIEWER_KEY,
  DPO_KEY,
  startGateway,
  type TestGateway,
} from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import { startRadosgw, type Radosgw } from './helpers/radosgw.js';
import { recordFromFirstFiles } from './helpers/recording.js';

const policies = mkdtempSync(path.join(os.tmpdir(), 'vigie-s3-policies-'));
cpSync(new URL('../retention-policies', import.meta.url), policies, { recursive: true });
writeFileSync(
  path.join(policies, 'short.yaml'),
  `name: short\ntenants: [acme]\ncategories:\n  recordings: { duration: 6s, action: delete, lockMode: governance }\n  track_stats: { duration: 395d, action: anonymize }\n  client_stats: { duration: 395d, action: anonymize }\n  call_events: { duration: 395d, action: anonymize }\n  participants: { duration: 395d }\n  transport_stats: { duration: 395d, action: anonymize }\n  call_quality: { duration: 395d }\n  access_log: { duration: 1y }\n  webhook_attempts: { duration: 90d }\n  audit_log: { duration: 6y }\n  dsar_exports: { duration: 30d }\n`,
);
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-s3-'));
let rgw: Radosgw;
let gw: TestGateway;
let s3: Minio.Client;
const BUCKET = 'vigie-recordings';
const settings = () => ({
  dataDir,
  writer: { flushIntervalMs: 100 },
  retention: { policiesDir: policies, sweepIntervalSeconds: 3600 },
  storage: {
    driver: 's3',
    s3Endpoint: rgw.endpoint,
    s3AccessKey: rgw.accessKey,
    s3SecretKey: rgw.secretKey,
    s3Region: rgw.region,
    s3Bucket: BUCKET,
    sse: 'kms',
    kmsKeyId: rgw.kmsKeyId,
    country: 'FR',
    region: 'fr-par-test',
    provider: 'Ceph RGW (test)',
  },
});

beforeAll(async () => {
  rgw = await startRadosgw();
  s3 = new Minio.Client({
    endPoint: rgw.host,
    port: rgw.port,
    useSSL: false,
    accessKey: rgw.accessKey,
    secretKey: rgw.secretKey,
    region: rgw.region,
    pathStyle: true,
  });
  gw = await startGateway(settings());
});
afterAll(async () => {
  await gw?.close();
  await rgw?.stop();
});

const api = (key: { key: string }, method: string, url: string, payload?: object) =>
  gw.app.inject({ method: method as 'GET', url, headers: { 'x-api-key': key.key }, ...(payload ? { payload } : {}) });
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a browser call recorded to S3: Object Lock retain-until from the policy, presigned download plays, tampering 403, locked delete refused, sweeper after expiry, legal hold', async () => {
  const browser = await launchBrowser();
  try {
    const pages = [];
    for (const identity of ['s3-agent', 's3-customer']) {
      const page = await browser.context.newPage();
      await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room: 's3-call', identity })}`);
      pages.push(page);
    }
    for (const page of pages)
      await waitFor(
        'media',
        () => receivedMedia(page),
        (m) => m.framesDecoded > 5,
        30_000,
      );
    assert.equal(
      (await api(TENANT_ADMIN_KEY, 'POST', '/v1/rooms/s3-call/recording', { action: 'start' })).statusCode,
      200,
    );
    await recordFromFirstFiles(gw.app.config.dataDir, 2, 2000);
    assert.equal(
      (await api(TENANT_ADMIN_KEY, 'POST', '/v1/rooms/s3-call/recording', { action: 'stop' })).statusCode,
      200,
    );
    assert.ok(await gw.app.recording!.service.drain());
  } finally {
    await browser.close();
  }
  const recs = (await api(VIEWER_KEY, 'GET', '/v1/recordings?room=s3-call')).json().recordings;
  assert.equal(recs.length, 2);
  const [a, b] = recs;

  // Read back straight from the bucket, not through Vigie.
  for (const r of recs) {
    const retention = (await s3.getObjectRetention(BUCKET, r.objectKey, { versionId: r.versionId })) as {
      mode: string;
      retainUntilDate: string;
    };
    assert.equal(retention.mode, 'GOVERNANCE');
    assert.ok(
      Math.abs(Date.parse(retention.retainUntilDate) - Date.parse(r.retainUntil)) < 2000,
      `${retention.retainUntilDate} vs ${r.retainUntil}`,
    );
    const stat = await s3.statObject(BUCKET, r.objectKey, { versionId: r.versionId });
    assert.equal(stat.size, r.sizeBytes);
    assert.equal(stat.metaData.sha256, r.sha256);
  }

  const dl = await api(VIEWER_KEY, 'GET', `/v1/recordings/${a.id}/download`);
  assert.equal(dl.statusCode, 302);
  const url = dl.headers.location as string;
  const body = Buffer.from(await (await fetch(url)).arrayBuffer());
  assert.equal(sha256(body), a.sha256);
  const file = path.join(dataDir, 'downloaded.webm');
  writeFileSync(file, body);
  const probe = JSON.parse(
    execFileSync(
      'ffprobe',
      ['-v', 'error', '-show_entries', 'format=duration:stream=codec_type', '-of', 'json', file],
      { encoding: 'utf8' },
    ),
  );
  assert.deepEqual(probe.streams.map((s: { codec_type: string }) => s.codec_type).sort(), ['audio', 'video']);
  assert.ok(
    Math.abs(Number(probe.format.duration) - a.durationS) <= 1,
    `ffprobe ${probe.format.duration}s vs ${a.durationS}s recorded`,
  );
  const tampered = url.replace(
    /X-Amz-Signature=([0-9a-f])/,
    (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`,
  );
  assert.equal((await fetch(tampered)).status, 403, 'a tampered signature is refused by S3');
  assert.equal((await api(GLOBEX_VIEWER_KEY, 'GET', `/v1/recordings/${a.id}`)).statusCode, 404);

  const early = await api(TENANT_ADMIN_KEY, 'DELETE', `/v1/recordings/${a.id}`);
  assert.equal(early.statusCode, 403, 'deleting before expiry fails');
  assert.match(early.json().error.message, /locked/);
  assert.equal((await api(DPO_KEY, 'PUT', `/v1/recordings/${b.id}/legal-hold`, { on: true })).statusCode, 200);
  assert.deepEqual(await s3.getObjectLegalHold(BUCKET, b.objectKey, { versionId: b.versionId }), { Status: 'ON' });
  assert.equal((await gw.app.recording!.store.stat(b.objectKey, b.versionId)).legalHold, true);

  await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(a.retainUntil) - Date.now()) + 1000));
  assert.equal(await gw.app.recording!.sweeper.sweep(), 1, 'one expired, one on legal hold');
  await assert.rejects(
    s3.statObject(BUCKET, a.objectKey, { versionId: a.versionId }),
    'the expired version is gone from the bucket',
  );
  assert.equal(
    (await s3.statObject(BUCKET, b.objectKey, { versionId: b.versionId })).size,
    b.sizeBytes,
    'the held one stays',
  );
});

test('S3 down during an upload, and Vigie restarted meanwhile: the recording is uploaded once S3 is back, with an equal checksum', async () => {
  const room = await gw.app.sfu.getOrCreateRoom('acme', 's3-outage');
  const video = await startFfmpegBot(room, { kind: 'video', bitrateKbps: 300 });
  await gw.app.recording!.service.start(room, 'test');
  await recordFromFirstFiles(gw.app.config.dataDir, 1, 1500);
  await rgw.stopGateway({ kill: true });
  await gw.app.recording!.service.stop(room, 'test');
  await video.stop();
  await waitFor(
    'upload failures',
    async () => gw.logs().match(/recording upload failed; will retry/g)?.length ?? 0,
    (n) => n >= 1,
  );
  const [pending] = await gw.query(`SELECT id, status, sha256 FROM vigie.recordings FINAL WHERE room = 's3-outage'`);
  assert.equal(pending.status, 'uploading');

  await gw.close(); // Vigie restarts while S3 is still down; the file waits on disk
  await rgw.startGateway();
  gw = await startGateway(settings());
  assert.ok(await gw.app.recording!.service.drain(120_000));
  await waitFor(
    'uploaded after restart',
    async () =>
      (await gw.query(`SELECT status FROM vigie.recordings FINAL WHERE id = {id:String}`, { id: pending.id }))[0]
        .status,
    (s) => s === 'ready',
    60_000,
  );
  const [row] = await gw.query(
    `SELECT object_key, version_id, sha256, size_bytes FROM vigie.recordings FINAL WHERE id = {id:String}`,
    { id: pending.id },
  );
  const stream = await s3.getObject(BUCKET, row.object_key, { versionId: row.version_id });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  assert.equal(
    sha256(Buffer.concat(chunks)),
    row.sha256,
    'checksum of what S3 holds equals the one computed before upload',
  );
  assert.equal(sha256(Buffer.concat(chunks)), pending.sha256);
  assert.match(gw.logs(), /resuming recording uploads left pending/);
});

test('large files go up in multipart, with SSE-KMS, and verify', async () => {
  const { randomBytes } = await import('node:crypto');
  const big = path.join(dataDir, 'big.bin');
  const data = randomBytes(20 * 1024 * 1024);
  writeFileSync(big, data);
  const store = gw.app.recording!.store;
  const { versionId } = await store.put('acme/multipart/test.bin', big, {
    contentType: 'application/octet-stream',
    sha256: sha256(data),
  });
  const stat = await s3.statObject(BUCKET, 'acme/multipart/test.bin', { versionId });
  assert.equal(stat.size, data.length);
  assert.match(stat.etag, /-\d+$/, `multipart ETag (<md5>-<parts>): ${stat.etag}`);
  assert.equal((await store.stat('acme/multipart/test.bin', versionId)).sha256, sha256(data));
  assert.equal(stat.metaData['x-amz-server-side-encryption'], 'aws:kms', 'S3 reports SSE-KMS');
  assert.equal(stat.metaData['x-amz-server-side-encryption-aws-kms-key-id'], rgw.kmsKeyId);
});
