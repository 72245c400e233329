/**
 * Recording benchmarks, with baselines measured in the same run:
 * 1. CPU of the recorder (ffmpeg -c copy) per recorded track, beside the CPU
 *    the mediasoup worker spends forwarding those tracks to it.
 * 2. Upload throughput of the S3 store (with its SHA-256, retention lock and
 *    verification) versus a raw minio-client upload of the same file to the
 *    same server (Ceph RGW started here).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as Minio from 'minio';
import { Recorder, S3ObjectStore } from '../src/recording/index.js';
import { startGateway } from '../test/helpers/gateway.js';
import { startFfmpegBot } from '../test/helpers/ffmpegBot.js';
import { startRadosgw } from '../test/helpers/radosgw.js';
import { benchTempDir, median } from './common.js';

const TRACKS = 4;
const RECORD_MS = Number(process.env.BENCH_RECORD_MS ?? 15_000);
const FILE_MB = Number(process.env.BENCH_FILE_MB ?? 64);
const ROUNDS = 3;
// The clip, the recordings and the upload's file, removed at exit (benchTempDir).
const dir = benchTempDir('rec');
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
const cpuMs = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicks;
};

// 1. Recording CPU per track.
const clip = path.join(dir, 'clip.webm');
execFileSync('ffmpeg', [
  '-loglevel',
  'error',
  '-f',
  'lavfi',
  '-i',
  'testsrc=size=640x480:rate=30',
  '-t',
  '20',
  '-c:v',
  'libvpx',
  '-b:v',
  '800k',
  '-deadline',
  'realtime',
  '-cpu-used',
  '8',
  '-g',
  '30',
  clip,
]);
const gw = await startGateway({ telemetry: { enabled: false }, media: { workers: 1 } });
const room = await gw.app.sfu.getOrCreateRoom('acme', 'bench-rec');
const bots = [];
for (let i = 0; i < TRACKS; i++)
  bots.push(await startFfmpegBot(room, { kind: 'video', bitrateKbps: 800, file: clip, name: `t${i}` }));
await new Promise((r) => setTimeout(r, 2000));
const worker = gw.app.sfu.pool.slots[0]!.worker;
const forwardOnly0 = await worker.getResourceUsage();
await new Promise((r) => setTimeout(r, RECORD_MS));
const forwardOnly1 = await worker.getResourceUsage();
const recorders = bots.map(
  (b, i) => new Recorder(room.router, [b.producer], path.join(dir, `rec-${i}`), 600, gw.app.log),
);
for (const r of recorders) await r.start();
await new Promise((r) => setTimeout(r, 2000));
const pids = recorders.map((r) => r.pid!);
const ff0 = pids.map(cpuMs);
const w0 = await worker.getResourceUsage();
await new Promise((r) => setTimeout(r, RECORD_MS));
const ff1 = pids.map(cpuMs);
const w1 = await worker.getResourceUsage();
for (const r of recorders) await r.stop();
for (const b of bots) await b.stop();
await gw.close();
const seconds = RECORD_MS / 1000;
const ffmpegPerTrack = ff1.reduce((s, v, i) => s + v - ff0[i]!, 0) / TRACKS / seconds / 10; // % of a core
const workerExtraPerTrack =
  (w1.ru_utime +
    w1.ru_stime -
    w0.ru_utime -
    w0.ru_stime -
    (forwardOnly1.ru_utime + forwardOnly1.ru_stime - forwardOnly0.ru_utime - forwardOnly0.ru_stime)) /
  TRACKS /
  seconds /
  10;

// 2. Upload throughput.
const rgw = await startRadosgw();
const file = path.join(dir, 'upload.bin');
const data = randomBytes(FILE_MB * 1024 * 1024);
writeFileSync(file, data);
const sha = createHash('sha256').update(data).digest('hex');
const raw = new Minio.Client({
  endPoint: rgw.host,
  port: rgw.port,
  useSSL: false,
  accessKey: rgw.accessKey,
  secretKey: rgw.secretKey,
  region: rgw.region,
  pathStyle: true,
  partSize: 8 * 1024 * 1024,
});
const store = new S3ObjectStore(
  {
    endpoint: rgw.endpoint,
    accessKey: rgw.accessKey,
    secretKey: rgw.secretKey,
    bucket: 'bench',
    region: rgw.region,
    sse: 'kms',
    kmsKeyId: rgw.kmsKeyId,
  },
  { country: 'FR', region: 'bench', provider: 'ceph' },
);
await store.init();
const rawRates: number[] = [];
const storeRates: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  let t = performance.now();
  await raw.fPutObject('bench', `raw-${i}`, file, {
    'x-amz-server-side-encryption': 'aws:kms',
    'x-amz-server-side-encryption-aws-kms-key-id': rgw.kmsKeyId,
  });
  rawRates.push(FILE_MB / ((performance.now() - t) / 1000));
  t = performance.now();
  const { versionId } = await store.put(`store-${i}`, file, {
    contentType: 'application/octet-stream',
    sha256: sha,
    lock: { mode: 'GOVERNANCE', retainUntil: new Date(Date.now() + 60_000) },
  });
  const st = await store.stat(`store-${i}`, versionId);
  if (st.sha256 !== sha || st.size !== data.length) throw new Error('verification failed');
  storeRates.push(FILE_MB / ((performance.now() - t) / 1000));
}
await rgw.stop();
console.log(
  JSON.stringify({
    bench: 'recording',
    recordingCpu: {
      tracks: TRACKS,
      trackKbps: 800,
      seconds,
      ffmpegPercentOfCorePerTrack: Number(ffmpegPerTrack.toFixed(2)),
      workerExtraPercentOfCorePerTrack: Number(workerExtraPerTrack.toFixed(2)),
    },
    upload: {
      fileMB: FILE_MB,
      rounds: ROUNDS,
      rawMBps: Number(median(rawRates).toFixed(1)),
      storeMBps: Number(median(storeRates).toFixed(1)),
      ratio: Number((median(storeRates) / median(rawRates)).toFixed(3)),
      note: 'store = multipart PUT with SSE-KMS + retention lock + stat/metadata verification',
    },
  }),
);
