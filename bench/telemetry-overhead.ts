/**
 * CPU cost of telemetry: the same synthetic load (10 producers fed by ffmpeg,
 * each consumed 10 times) on a gateway with telemetry off, then on, in
 * alternating rounds. Measured: mediasoup worker CPU (getResourceUsage) plus
 * the gateway's Node CPU (process.cpuUsage). ffmpeg, the UDP sink and
 * ClickHouse run in child processes and are not counted: ffmpeg and the sink
 * are the load, the same both ways; ClickHouse is its own server in production
 * (here the embedded engine behind test/helpers/chdbHttpServer.ts, over HTTP).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Peer } from '../src/media/index.js';
import { startGateway } from '../test/helpers/gateway.js';
import { startFfmpegBot } from '../test/helpers/ffmpegBot.js';
import { startChdbHttp } from '../test/helpers/chdbHttpServer.js';

const PRODUCERS = 10;
const CONSUMERS_PER_PRODUCER = 10;
const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const STATS_INTERVAL_MS = Number(process.env.BENCH_STATS_INTERVAL_MS ?? 5000);

const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-bench-load-'));
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
  '500k',
  '-deadline',
  'realtime',
  '-cpu-used',
  '8',
  '-g',
  '30',
  clip,
]);

// The consumers' RTP goes to a sink in its own process, so receiving 50 Mbit/s is not counted.
const sink = spawn(
  process.execPath,
  [
    '-e',
    "const s=require('dgram').createSocket('udp4');s.on('message',()=>{});s.bind(0,'127.0.0.1',()=>console.log(s.address().port))",
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const sinkPort = await new Promise<number>((r) => sink.stdout!.once('data', (d) => r(Number(String(d).trim()))));

const clickhouse = await startChdbHttp(path.join(dir, 'clickhouse'));

async function round(telemetry: boolean): Promise<{ workerMs: number; nodeMs: number; rows: number }> {
  const gw = await startGateway({
    telemetry: { enabled: telemetry, statsIntervalMs: STATS_INTERVAL_MS },
    media: { workers: 1 },
    clickhouse: { url: clickhouse.url },
  });
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'load');
  const bots = [];
  for (let i = 0; i < PRODUCERS; i++)
    bots.push(await startFfmpegBot(room, { kind: 'video', bitrateKbps: 500, file: clip, name: `p${i}` }));
  for (let v = 0; v < CONSUMERS_PER_PRODUCER; v++) {
    const viewer = new Peer(
      {
        identity: `viewer-${v}`,
        tenant: 'acme',
        room: 'load',
        grants: new Set(['subscribe']),
        expiresAt: Number.MAX_SAFE_INTEGER,
      },
      () => undefined,
    );
    room.addPeer(viewer);
    const t = await room.router.createPlainTransport({
      listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
      rtcpMux: true,
      comedia: false,
    });
    await t.connect({ ip: '127.0.0.1', port: sinkPort });
    viewer.transports.set(t.id, t);
    for (const bot of bots) {
      const c = await t.consume({ producerId: bot.producer.id, rtpCapabilities: room.router.rtpCapabilities });
      viewer.consumers.set(c.id, c);
      viewer.observer.emit('newconsumer', c);
    }
  }
  await new Promise((r) => setTimeout(r, 3000)); // settle
  const worker = gw.app.sfu.pool.slots[0]!.worker;
  const w0 = await worker.getResourceUsage();
  const n0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, MEASURE_MS));
  const w1 = await worker.getResourceUsage();
  const n1 = process.cpuUsage(n0);
  const rows = gw.app.telemetry?.collector.samplesTaken.track_stats ?? 0;
  for (const b of bots) await b.stop();
  await gw.close();
  const r = {
    workerMs: w1.ru_utime + w1.ru_stime - (w0.ru_utime + w0.ru_stime),
    nodeMs: (n1.user + n1.system) / 1000,
    rows,
  };
  console.error(
    `[telemetry ${telemetry ? 'on ' : 'off'}] worker ${r.workerMs} ms, node ${Math.round(r.nodeMs)} ms, track rows ${rows}`,
  );
  return r;
}

const off: Array<Awaited<ReturnType<typeof round>>> = [];
const on: Array<Awaited<ReturnType<typeof round>>> = [];
for (let i = 0; i < ROUNDS; i++) {
  off.push(await round(false));
  on.push(await round(true));
}
sink.kill();
await clickhouse.stop();
const total = (rs: typeof off) => rs.reduce((s, r) => s + r.workerMs + r.nodeMs, 0);
const sum = (rs: typeof off, k: 'workerMs' | 'nodeMs') => Math.round(rs.reduce((s, r) => s + r[k], 0));
console.log(
  JSON.stringify({
    bench: 'telemetry-overhead',
    load: `${PRODUCERS} producers x ${CONSUMERS_PER_PRODUCER} consumers, VP8 ~500 kbit/s each (ffmpeg -c copy)`,
    statsIntervalMs: STATS_INTERVAL_MS,
    measureMsPerRound: MEASURE_MS,
    rounds: ROUNDS,
    off: { workerCpuMs: sum(off, 'workerMs'), nodeCpuMs: sum(off, 'nodeMs') },
    on: {
      workerCpuMs: sum(on, 'workerMs'),
      nodeCpuMs: sum(on, 'nodeMs'),
      trackRows: on.reduce((s, r) => s + r.rows, 0),
    },
    ratio: Number((total(on) / total(off)).toFixed(3)),
    target: 'ratio <= 1.05',
  }),
);
