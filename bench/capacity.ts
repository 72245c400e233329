/**
 * Capacity of one node (issue #13): how many consumers one mediasoup worker
 * carries at 80% of a core, with Vigie (a gateway, telemetry on, sampling
 * every consumer) and with bare mediasoup (a router on a worker of this
 * process), with the same clients: one VP8 producer fed by ffmpeg (`-c copy`
 * of a pre-encoded clip, test/helpers/ffmpegBot.ts, in real time) and a
 * growing number of consumers, each on its own PlainTransport, whose RTP
 * (flowing, not paused) goes to a UDP sink in another process.
 *
 * A ramp adds STEP consumers at a time, lets them settle, and reads the
 * worker's CPU (getResourceUsage, user + system) over a window, until the
 * worker reaches 80% of a core or MAX consumers. The capacity is where the
 * ramp crosses 80% (interpolated between its two steps); a ramp that never
 * gets there (a machine too loaded to give the worker 80% of a core) is
 * extrapolated with a least-squares line through its steps, and says so.
 * Ramps alternate between the two, after a warm-up ramp of each. The worker's
 * CPU per packet the sink received is reported too, with its ratio: when
 * ffmpeg cannot keep real time (a loaded machine), consumers carry fewer
 * packets than the clip's rate and the per-consumer figures mean little.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { MEDIA_CODECS } from '../src/media/codecs.js';
import { Peer, type Room, resolveWorkerBin } from '../src/media/index.js';
import { startChdbHttp } from '../test/helpers/chdbHttpServer.js';
import { startFfmpegBot } from '../test/helpers/ffmpegBot.js';
import { startGateway } from '../test/helpers/gateway.js';
import { waitFor } from '../test/helpers/browser.js';
import { benchTempDir } from './common.js';

const STEP = Number(process.env.BENCH_STEP ?? 50);
const MAX = Number(process.env.BENCH_MAX_CONSUMERS ?? 500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 3000);
const SETTLE_MS = 1500;
const KBPS = Number(process.env.BENCH_KBPS ?? 2000);
const TARGET_CPU = 0.8;

const dir = benchTempDir('capacity');
const clip = path.join(dir, 'clip.webm');
execFileSync('ffmpeg', [
  // Noise, so that VP8 reaches its bitrate (a test pattern compresses to a fraction of it).
  ...['-loglevel', 'error', '-f', 'lavfi', '-i', 'color=c=gray:s=640x480:r=30,noise=alls=40:allf=t', '-t', '4'],
  ...['-c:v', 'libvpx', '-b:v', `${KBPS}k`, '-minrate', `${KBPS}k`, '-maxrate', `${KBPS}k`],
  ...['-deadline', 'realtime', '-cpu-used', '8', '-g', '30', clip],
]);

// The sink counts what it receives and says so on each line: the RTP is really flowing to every consumer.
const sink = spawn(
  process.execPath,
  [
    '-e',
    `const s=require('dgram').createSocket('udp4');let n=0;s.on('message',()=>n++);
     s.bind(0,'127.0.0.1',()=>{console.log(s.address().port);setInterval(()=>console.log(n),500)})`,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
let sinkPackets = 0;
const sinkPort = await new Promise<number>((resolve) =>
  sink.stdout!.once('data', (d) => {
    resolve(Number(String(d).trim().split('\n')[0]));
    sink.stdout!.on('data', (more) => (sinkPackets = Number(String(more).trim().split('\n').at(-1))));
  }),
);
const clickhouse = await startChdbHttp(path.join(dir, 'clickhouse'));

/** An SFU under test: a router on one worker, and what it must do for each new consumer. */
interface Sfu {
  worker: ms.Worker;
  room: Room;
  router: ms.Router;
  adopt: (transport: ms.PlainTransport, consumer: ms.Consumer, i: number) => void;
  close: () => Promise<void>;
}

async function bareSfu(): Promise<Sfu> {
  const worker = await mediasoup.createWorker({ workerBin: resolveWorkerBin(), logLevel: 'warn' });
  const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
  // The bot's helper needs only these of a room: bare mediasoup keeps no participants.
  const room = {
    tenant: 'bare',
    id: 'bare',
    closed: false,
    addPeer() {},
    removePeer() {},
    routerFor: async () => router,
    adoptProducer() {},
  };
  return { worker, router, room: room as unknown as Room, adopt: () => {}, close: async () => worker.close() };
}

async function vigieSfu(): Promise<Sfu> {
  const gw = await startGateway({
    telemetry: { enabled: true },
    // One room of every consumer: its participant limit out of the way.
    media: { workers: 1, maxPeersPerRoom: 1000 },
    clickhouse: { url: clickhouse.url },
  });
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'capacity');
  return {
    worker: gw.app.sfu.pool.slots[0]!.worker,
    router: room.router,
    room,
    // Each consumer is a participant's, as after a join: the room and its telemetry follow it.
    adopt: (transport, consumer, i) => {
      const viewer = new Peer(
        {
          identity: `viewer-${i}`,
          tenant: 'acme',
          room: 'capacity',
          grants: new Set(['subscribe']),
          expiresAt: Number.MAX_SAFE_INTEGER,
        },
        () => undefined,
      );
      room.addPeer(viewer);
      viewer.transports.set(transport.id, transport);
      viewer.consumers.set(consumer.id, consumer);
      viewer.observer.emit('newconsumer', consumer);
    },
    close: gw.close,
  };
}

const workerCpuMs = async (w: ms.Worker) => {
  const u = await w.getResourceUsage();
  return u.ru_utime + u.ru_stime;
};

interface Point {
  consumers: number;
  cpu: number;
  /** Packets per second the sink received during the window. */
  sinkPps: number;
}

/** One ramp on a new SFU: its points, and the consumers at 80% of a core. */
async function ramp(kind: 'bare' | 'vigie', max = MAX) {
  const sfu = kind === 'bare' ? await bareSfu() : await vigieSfu();
  const bot = await startFfmpegBot(sfu.room, { kind: 'video', bitrateKbps: KBPS, file: clip, name: 'producer' });
  const points: Point[] = [];
  let n = 0;
  try {
    while (n < max) {
      const before = sinkPackets;
      for (let k = 0; k < STEP; k++, n++) {
        const t = await sfu.router.createPlainTransport({
          listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
          rtcpMux: true,
          comedia: false,
        });
        await t.connect({ ip: '127.0.0.1', port: sinkPort });
        const c = await t.consume({ producerId: bot.producer.id, rtpCapabilities: sfu.router.rtpCapabilities });
        sfu.adopt(t, c, n);
      }
      // ffmpeg can take seconds to start on a loaded machine, and a video consumer forwards from a keyframe on.
      await waitFor(
        'RTP at the sink',
        async () => sinkPackets,
        (v) => v > before,
        60_000,
      );
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const [c0, p0, t0] = [await workerCpuMs(sfu.worker), sinkPackets, Date.now()];
      await new Promise((r) => setTimeout(r, WINDOW_MS));
      const [c1, p1, t1] = [await workerCpuMs(sfu.worker), sinkPackets, Date.now()];
      const point = { consumers: n, cpu: (c1 - c0) / (t1 - t0), sinkPps: Math.round(((p1 - p0) * 1000) / (t1 - t0)) };
      points.push(point);
      console.error(
        `[capacity] ${kind.padEnd(5)} ${String(n).padStart(4)} consumers: worker ${(100 * point.cpu).toFixed(1)}% of a core, sink ${point.sinkPps} packets/s, load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`,
      );
      if (point.sinkPps === 0) throw new Error(`${kind}: no RTP reaches the sink (ffmpeg: ${bot.stderr()})`);
      if (point.cpu >= TARGET_CPU) break;
    }
  } finally {
    await bot.stop();
    await sfu.close();
  }
  return { points, ...capacityOf(points) };
}

/** Where the points cross 80% of a core: interpolated when they do, else extrapolated with a least-squares line. */
function capacityOf(points: Point[]): { consumersAt80: number; how: 'interpolated' | 'extrapolated' } {
  const i = points.findIndex((p) => p.cpu >= TARGET_CPU);
  if (i > 0) {
    const [a, b] = [points[i - 1]!, points[i]!];
    const at = a.consumers + ((TARGET_CPU - a.cpu) * (b.consumers - a.consumers)) / (b.cpu - a.cpu);
    return { consumersAt80: Math.round(at), how: 'interpolated' };
  }
  const m = points.length;
  const mx = points.reduce((s, p) => s + p.consumers, 0) / m;
  const my = points.reduce((s, p) => s + p.cpu, 0) / m;
  const slope =
    points.reduce((s, p) => s + (p.consumers - mx) * (p.cpu - my), 0) /
    points.reduce((s, p) => s + (p.consumers - mx) ** 2, 0);
  return { consumersAt80: Math.round(mx + (TARGET_CPU - my) / slope), how: 'extrapolated' };
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const load = [loadavg()];
try {
  // Warm-up, not counted: a short ramp of each.
  await ramp('bare', 2 * STEP);
  await ramp('vigie', 2 * STEP);
  const results: Record<'bare' | 'vigie', Array<Awaited<ReturnType<typeof ramp>>>> = { bare: [], vigie: [] };
  for (let i = 0; i < ROUNDS; i++)
    for (const kind of (i % 2 ? ['vigie', 'bare'] : ['bare', 'vigie']) as Array<'bare' | 'vigie'>) {
      results[kind].push(await ramp(kind));
      load.push(loadavg());
    }
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const of = (kind: 'bare' | 'vigie') => ({
    consumersAt80: results[kind].map((r) => r.consumersAt80),
    how: results[kind].map((r) => r.how),
    // Worker CPU per consumer at the last step (ms of CPU per second per consumer).
    points: results[kind].map((r) => r.points.map((p) => [p.consumers, Number(p.cpu.toFixed(3)), p.sinkPps])),
    cpuPerConsumerMs: results[kind].map((r) =>
      Number(((1000 * r.points.at(-1)!.cpu) / r.points.at(-1)!.consumers).toFixed(3)),
    ),
  });
  // Worker CPU per packet forwarded to the sink, over every step of a kind's ramps: on a loaded machine ffmpeg falls
  // behind real time, so a consumer carries fewer packets than the clip's rate, and per packet is the fairer unit.
  const usPerPacket = (kind: 'bare' | 'vigie') => {
    const pts = results[kind].flatMap((r) => r.points).filter((p) => p.sinkPps > 0);
    return (1e6 * pts.reduce((s, p) => s + p.cpu, 0)) / pts.reduce((s, p) => s + p.sinkPps, 0);
  };
  const bare = mean(results.bare.map((r) => r.consumersAt80));
  const vigie = mean(results.vigie.map((r) => r.consumersAt80));
  console.log(
    JSON.stringify({
      bench: 'capacity',
      load: `1 VP8 producer at ${KBPS} kbit/s (640x480, 30 fps, ffmpeg -c copy), consumers on PlainTransports`,
      step: STEP,
      windowMs: WINDOW_MS,
      rounds: ROUNDS,
      bare: of('bare'),
      vigie: of('vigie'),
      ratio: Number((vigie / bare).toFixed(3)),
      workerUsPerPacket: {
        bare: Number(usPerPacket('bare').toFixed(2)),
        vigie: Number(usPerPacket('vigie').toFixed(2)),
      },
      ratioPerPacket: Number((usPerPacket('bare') / usPerPacket('vigie')).toFixed(3)),
      loadavg: load,
      target: 'ratio >= 0.95',
    }),
  );
} finally {
  sink.kill();
  // Before the folder holding its data is removed (at exit, by benchTempDir).
  await clickhouse.stop();
}
process.exit(0);
