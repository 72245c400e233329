import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as Minio from 'minio';
import { IntegrityError } from '../src/recording/ObjectStore.js';
import { LocalObjectStore, S3ObjectStore } from '../src/recording/index.js';
import { startRadosgw, type Radosgw } from './helpers/radosgw.js';
import { startS3Proxy, type S3Proxy } from './helpers/s3Proxy.js';

// Recordings are what they claim to be: the store verifies the bytes, the lock and the legal
// hold go on the version in the same request, and a retry never leaves a second version.
// S3 runs against a real Ceph RADOS Gateway behind a real HTTP proxy that corrupts bodies
// and loses answers. Never skipped: startRadosgw() throws if Ceph is not installed.

const MiB = 1024 * 1024;
const where = { country: 'FR', region: 'test', provider: 'test' };
let rgw: Radosgw;
let proxy: S3Proxy;
let s3: Minio.Client;
let store: S3ObjectStore;
let bucket: string;
let dir: string;

beforeAll(async () => {
  rgw = await startRadosgw();
  proxy = await startS3Proxy(rgw);
  s3 = new Minio.Client({
    endPoint: rgw.host,
    port: rgw.port,
    useSSL: false,
    pathStyle: true,
    region: rgw.region,
    accessKey: rgw.accessKey,
    secretKey: rgw.secretKey,
  });
  bucket = `vigie-integrity-${randomBytes(4).toString('hex')}`;
  store = new S3ObjectStore(
    {
      endpoint: proxy.endpoint,
      accessKey: rgw.accessKey,
      secretKey: rgw.secretKey,
      bucket,
      region: rgw.region,
      sse: 'none',
    },
    where,
  );
  await store.init();
  dir = await mkdtemp(path.join(os.tmpdir(), 'vigie-integrity-'));
}, 180_000);

afterAll(async () => {
  await proxy?.close();
  await rgw?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function file(bytes: number): Promise<{ file: string; sha256: string }> {
  const data = randomBytes(bytes);
  const f = path.join(dir, `${randomBytes(6).toString('hex')}.webm`);
  await writeFile(f, data);
  return { file: f, sha256: createHash('sha256').update(data).digest('hex') };
}

async function versions(key: string): Promise<string[]> {
  const out: string[] = [];
  for await (const v of s3.listObjects(bucket, key, false, { IncludeVersion: true }) as AsyncIterable<{
    name: string;
    versionId: string;
  }>)
    if (v.name === key) out.push(v.versionId);
  return out;
}

const inOneHour = () => new Date(Date.now() + 3600_000);
/** Requests to `key` since `from`, without the listing and HEAD ones put() makes. */
const writesTo = (key: string, from: number) =>
  proxy.requests
    .slice(from)
    .filter((r) => r.url.split('?')[0] === `/${bucket}/${key}` && r.method !== 'HEAD' && r.method !== 'GET');

test('S3: one PUT carries the bytes, Content-MD5, x-amz-checksum-sha256, the retention and the legal hold; no later request sets them', async () => {
  const { file: f, sha256 } = await file(1000);
  const key = 'single/locked.webm';
  const from = proxy.requests.length;
  const { versionId } = await store.put(key, f, {
    contentType: 'video/webm',
    sha256,
    lock: { mode: 'GOVERNANCE', retainUntil: inOneHour() },
    legalHold: true,
  });
  const writes = writesTo(key, from);
  assert.deepEqual(
    writes.map((r) => `${r.method} ${r.url.split('?')[1] ?? ''}`),
    ['PUT '],
    'one PUT, and no ?retention or ?legal-hold request after it',
  );
  const h = writes[0]!.headers;
  assert.equal(
    h['content-md5'],
    createHash('md5')
      .update(await readFile(f))
      .digest('base64'),
  );
  assert.equal(h['x-amz-checksum-sha256'], Buffer.from(sha256, 'hex').toString('base64'));
  assert.equal(h['x-amz-object-lock-mode'], 'GOVERNANCE');
  assert.ok(h['x-amz-object-lock-retain-until-date']);
  assert.equal(h['x-amz-object-lock-legal-hold'], 'ON');
  const stored = await store.stat(key, versionId);
  assert.equal(stored.lockMode, 'GOVERNANCE');
  assert.ok(stored.retainUntil && stored.retainUntil > new Date());
  assert.equal(stored.legalHold, true);
  assert.deepEqual(await versions(key), [versionId]);
});

test('S3: a file whose bytes do not hash to the claimed SHA-256 is refused before anything is stored', async () => {
  const { file: f } = await file(1000);
  const key = 'single/lying.webm';
  await assert.rejects(store.put(key, f, { contentType: 'video/webm', sha256: 'ab'.repeat(32) }), IntegrityError);
  assert.deepEqual(await versions(key), []);
});

test('S3: a body corrupted on its way is refused by the server, and no version is kept', async () => {
  const { file: f, sha256 } = await file(1000);
  const key = 'single/corrupted.webm';
  proxy.fault = (r) => (r.method === 'PUT' && r.url.startsWith(`/${bucket}/${key}`) ? 'corrupt-body' : undefined);
  try {
    await assert.rejects(store.put(key, f, { contentType: 'video/webm', sha256 }), (e: { code?: string }) =>
      ['BadDigest', 'XAmzContentSHA256Mismatch'].includes(e.code ?? ''),
    );
  } finally {
    proxy.fault = () => undefined;
  }
  assert.deepEqual(await versions(key), []);
});

test('S3: when what the server reports for the new version does not match the file, the version is removed, not left as an orphan', async () => {
  const { file: f, sha256 } = await file(1000);
  const key = 'single/mismatch.webm';
  proxy.fault = (r) => (r.method === 'HEAD' && r.url.startsWith(`/${bucket}/${key}?`) ? 'alter-etag' : undefined);
  try {
    await assert.rejects(
      store.put(key, f, { contentType: 'video/webm', sha256, lock: { mode: 'GOVERNANCE', retainUntil: inOneHour() } }),
      IntegrityError,
    );
  } finally {
    proxy.fault = () => undefined;
  }
  assert.deepEqual(await versions(key), [], 'the unverified version (GOVERNANCE-locked) was removed');
});

test('S3: the answer to the PUT is lost after the server stored it; the retry returns that version and writes no other', async () => {
  const { file: f, sha256 } = await file(1000);
  const key = 'single/lost-answer.webm';
  let lost = 0;
  proxy.fault = (r) =>
    r.method === 'PUT' && r.url === `/${bucket}/${key}` && lost++ === 0 ? 'lose-answer' : undefined;
  const opts = {
    contentType: 'video/webm',
    sha256,
    lock: { mode: 'COMPLIANCE' as const, retainUntil: new Date(Date.now() + 120_000) },
  };
  try {
    await assert.rejects(store.put(key, f, opts));
    const [first] = await versions(key);
    assert.ok(first, 'the server kept the first attempt');
    const { versionId } = await store.put(key, f, opts);
    assert.equal(versionId, first);
  } finally {
    proxy.fault = () => undefined;
  }
  assert.equal((await versions(key)).length, 1, 'exactly one version: no orphan, locked or not');
});

test('S3 multipart: checksums on every part, the lock from the create request, and a lost completion answer leaves exactly one version', {
  timeout: 120_000,
}, async () => {
  const { file: f, sha256 } = await file(12 * MiB);
  const key = 'multipart/lost-answer.webm';
  let lost = 0;
  proxy.fault = (r) =>
    r.method === 'POST' && /[?&]uploadId=/.test(r.url) && r.url.startsWith(`/${bucket}/${key}?`) && lost++ === 0
      ? 'lose-answer'
      : undefined;
  const from = proxy.requests.length;
  const opts = {
    contentType: 'video/webm',
    sha256,
    lock: { mode: 'GOVERNANCE' as const, retainUntil: inOneHour() },
    legalHold: true,
  };
  let versionId: string;
  try {
    await assert.rejects(store.put(key, f, opts));
    ({ versionId } = await store.put(key, f, opts));
  } finally {
    proxy.fault = () => undefined;
  }
  assert.deepEqual(await versions(key), [versionId], 'exactly one version after the retry');
  const writes = writesTo(key, from);
  const create = writes.find((r) => r.method === 'POST' && /[?&]uploads/.test(r.url))!;
  assert.equal(create.headers['x-amz-object-lock-mode'], 'GOVERNANCE');
  assert.equal(create.headers['x-amz-object-lock-legal-hold'], 'ON');
  assert.equal(create.headers['x-amz-checksum-algorithm'], 'SHA256');
  const parts = writes.filter((r) => r.method === 'PUT' && /partNumber=/.test(r.url));
  assert.equal(parts.length, 2, 'two 8 MiB parts, once: the retry found the completed version');
  for (const p of parts)
    assert.ok(
      p.headers['content-md5'] && p.headers['x-amz-checksum-sha256'],
      `part ${p.url} carries Content-MD5 and x-amz-checksum-sha256`,
    );
  const stored = await store.stat(key, versionId);
  assert.equal(stored.size, 12 * MiB);
  assert.equal(stored.lockMode, 'GOVERNANCE');
  assert.equal(stored.legalHold, true);
});

test('local store: the SHA-256 is read back from the stored copy, lock and legal hold are written with the version, and a retry never adds a version', async () => {
  const root = path.join(dir, 'objects');
  const local = new LocalObjectStore(root, where);
  await local.init();
  const { file: f, sha256 } = await file(4096);
  const key = 'acme/2026/11/29/call/rec.webm';
  await assert.rejects(local.put(key, f, { contentType: 'video/webm', sha256: 'cd'.repeat(32) }), IntegrityError);
  assert.deepEqual(await readdir(path.join(root, key)), [], 'a refused put leaves nothing');
  // What a crashed attempt leaves: a half-copied file and a sidecar without its data.
  await writeFile(path.join(root, key, 'crashed.data.tmp'), 'partial');
  await writeFile(path.join(root, key, 'crashed.json'), '{}');
  const opts = {
    contentType: 'video/webm',
    sha256,
    lock: { mode: 'COMPLIANCE' as const, retainUntil: inOneHour() },
    legalHold: true,
  };
  const { versionId } = await local.put(key, f, opts);
  const again = await local.put(key, f, opts);
  assert.equal(again.versionId, versionId, 'the retry returns the version already stored');
  assert.deepEqual((await readdir(path.join(root, key))).sort(), [`${versionId}.data`, `${versionId}.json`]);
  const stored = await local.stat(key, versionId);
  assert.equal(stored.sha256, sha256);
  assert.equal(stored.lockMode, 'COMPLIANCE');
  assert.equal(stored.legalHold, true);
});
