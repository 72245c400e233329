/**
 * CPU cost of telemetry: the same synthetic load (10 producers fed by ffmpeg,
 * each consumed 10 times) on a gateway with telemetry off and on, in rounds
 * that alternate which goes first, after a warm-up round of each that is not
 * counted (the first gateway of the process pays its start-up: module loading,
 * JIT, the first worker). Measured: mediasoup worker CPU (getResourceUsage) plus
 * the gateway's Node CPU (process.cpuUsage). ffmpeg, the UDP sink and
 * ClickHouse run in child processes and are not counted: ffmpeg and the sink
 * are the load, the same both ways; ClickHouse is its own server in production
 * (here the embedded engine behind test/helpers/chdbHttpServer.ts, over HTTP).
 */
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import type { types as ms } from 'mediasoup';
import { Peer } from '../src/media/index.js';
import { envelopeSchema, REQUESTS } from '../src/signaling/protocol.js';
import { startGateway } from '../test/helpers/gateway.js';
import { startFfmpegBot } from '../test/helpers/ffmpegBot.js';
import { startChdbHttp } from '../test/helpers/chdbHttpServer.js';
import { startUdpRelay } from '../test/helpers/udpRelay.js';
import { benchTempDir, ratioInterval, rotated, sum } from './common.js';

// The load's size is settable only so that test/bench-cleanup.test.ts can run the bench in a few seconds.
const PRODUCERS = Number(process.env.BENCH_PRODUCERS ?? 10);
const CONSUMERS_PER_PRODUCER = Number(process.env.BENCH_CONSUMERS_PER_PRODUCER ?? 10);
const CLIP_S = Number(process.env.BENCH_CLIP_S ?? 20);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 3000);
const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const STATS_INTERVAL_MS = Number(process.env.BENCH_STATS_INTERVAL_MS ?? 5000);
// Tracks in trouble are sampled at this finer interval (the gateway's default, 1 s, unless set; 0 turns it off).
const FOCUS_INTERVAL_MS = process.env.BENCH_FOCUS_INTERVAL_MS ? Number(process.env.BENCH_FOCUS_INTERVAL_MS) : undefined;
// This many publishers lose 5% of their packets on the way in (a relay drops every 20th), in both modes: their
// tracks, and their viewers', are the ones in trouble.
const LOSSY_PRODUCERS = Number(process.env.BENCH_LOSSY_PRODUCERS ?? 0);
// A third gateway in each round, telemetry on, whose viewers' browsers also report their own getStats() summary
// (client stats) every BENCH_CLIENT_STATS_INTERVAL_MS, one inbound video per producer: counted from the frame's text
// on (see clientReports). Side by side with "on", it gives what the reports cost by themselves.
const CLIENT_STATS = process.env.BENCH_CLIENT_STATS === '1';
const CLIENT_STATS_INTERVAL_MS = Number(process.env.BENCH_CLIENT_STATS_INTERVAL_MS ?? 5000);
// How long client-stats rows wait for their insert: the gateway's default (10 s) unless set. A list ("10000,2000")
// runs one client-stats gateway per value in each round, side by side, to compare them in the same run.
const CLIENT_STATS_FLUSH_MS: Array<number | undefined> = process.env.BENCH_CLIENT_STATS_FLUSH_MS
  ? process.env.BENCH_CLIENT_STATS_FLUSH_MS.split(',').map(Number)
  : [undefined];
if (CLIENT_STATS_FLUSH_MS.some((ms) => ms !== undefined && !(ms > 0)))
  throw new Error(
    `BENCH_CLIENT_STATS_FLUSH_MS: milliseconds above 0, separated by commas, not "${process.env.BENCH_CLIENT_STATS_FLUSH_MS}"`,
  );

const dir = benchTempDir('load');
const clip = path.join(dir, 'clip.webm');
execFileSync('ffmpeg', [
  '-loglevel',
  'error',
  '-f',
  'lavfi',
  '-i',
  'testsrc=size=640x480:rate=30',
  '-t',
  String(CLIP_S),
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

/**
 * A browser's client stats, as the gateway handles them: the text of the SDK's `clientStats` request (one inbound
 * video per consumer, with the fields Chromium gives), parsed, validated by the signaling schemas and handed to the
 * peer, and the answer serialized, every `everyMs` for each viewer. Not counted: the WebSocket's framing and
 * unmasking of the frame, its rate limiter, and the request's span (a no-op without an OpenTelemetry exporter).
 * Returns what stops the reports.
 */
function clientReports(
  viewers: Array<{ peer: Peer; consumers: ms.Consumer[] }>,
  everyMs: number,
): { stop: () => void; sent: () => number } {
  const started = Date.now();
  let seq = 0;
  const report = (consumers: ms.Consumer[]) => {
    const s = (Date.now() - started) / 1000;
    return {
      tracks: consumers.map((c) => ({
        kind: 'video',
        direction: 'inbound',
        consumerId: c.id,
        ssrc: c.rtpParameters.encodings![0]!.ssrc!,
        bytes: Math.round(s * 62_500),
        packets: Math.round(s * 60),
        packetsLost: 0,
        jitterMs: 2.5,
        jitterBufferDelayMs: 38.2,
        freezeCount: 0,
        totalFreezesDurationMs: 0,
        framesDecoded: Math.round(s * 30),
        framesPerSecond: 30,
        frameWidth: 640,
        frameHeight: 480,
      })),
      candidatePair: { candidateType: 'host', protocol: 'udp', rttMs: 0.8, availableOutgoingBitrate: 2_500_000 },
    };
  };
  const timers = viewers.map(({ peer, consumers }, i) => {
    // Staggered, as browsers that joined at different times are.
    const start = setTimeout(
      () => {
        const tick = () => {
          const text = JSON.stringify({ id: ++seq, method: 'clientStats', data: report(consumers) });
          const envelope = envelopeSchema.parse(JSON.parse(text));
          const data = REQUESTS.clientStats.parse(envelope.data);
          JSON.stringify({ id: envelope.id, ok: true, data: { accepted: peer.reportClientStats(data) } });
        };
        tick();
        interval = setInterval(tick, everyMs);
      },
      (everyMs * i) / viewers.length,
    );
    let interval: NodeJS.Timeout | undefined;
    return () => {
      clearTimeout(start);
      clearInterval(interval);
    };
  });
  return {
    stop: () => {
      for (const stop of timers) stop();
    },
    sent: () => seq,
  };
}

/** Telemetry off, on, or on with every viewer's client stats, their rows flushed every so many ms. */
type Mode = 'off' | 'on' | { flushMs: number | undefined };
const modeName = (mode: Mode) => (typeof mode === 'string' ? mode : `client ${mode.flushMs ?? 'default'}`);
interface Round {
  workerMs: number;
  nodeMs: number;
  rows: number;
  clientRows: number;
  reports: number;
}

async function round(sinkPort: number, clickhouseUrl: string, mode: Mode, counted: boolean): Promise<Round> {
  const gw = await startGateway({
    telemetry: {
      enabled: mode !== 'off',
      statsIntervalMs: STATS_INTERVAL_MS,
      clientStatsIntervalMs: CLIENT_STATS_INTERVAL_MS,
      ...(FOCUS_INTERVAL_MS !== undefined ? { focusIntervalMs: FOCUS_INTERVAL_MS } : {}),
    },
    media: { workers: 1 },
    clickhouse: { url: clickhouseUrl },
    ...(typeof mode === 'object' && mode.flushMs !== undefined
      ? { writer: { clientStatsFlushIntervalMs: mode.flushMs } }
      : {}),
  });
  const bots: Array<Awaited<ReturnType<typeof startFfmpegBot>>> = [];
  const relays: Array<{ close: () => Promise<void> }> = [];
  let reports: ReturnType<typeof clientReports> | undefined;
  try {
    const room = await gw.app.sfu.getOrCreateRoom('acme', 'load');
    for (let i = 0; i < PRODUCERS; i++) {
      const through =
        i < LOSSY_PRODUCERS
          ? async (port: number) => {
              const relay = await startUdpRelay({ ip: '127.0.0.1', port }, { dropEvery: 20 });
              relays.push(relay);
              return relay.port;
            }
          : undefined;
      bots.push(await startFfmpegBot(room, { kind: 'video', bitrateKbps: 500, file: clip, name: `p${i}`, through }));
    }
    const viewers: Array<{ peer: Peer; consumers: ms.Consumer[] }> = [];
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
      const consumers: ms.Consumer[] = [];
      for (const bot of bots) {
        const c = await t.consume({ producerId: bot.producer.id, rtpCapabilities: room.router.rtpCapabilities });
        viewer.consumers.set(c.id, c);
        viewer.observer.emit('newconsumer', c);
        consumers.push(c);
      }
      viewers.push({ peer: viewer, consumers });
    }
    if (typeof mode === 'object') reports = clientReports(viewers, CLIENT_STATS_INTERVAL_MS);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const worker = gw.app.sfu.pool.slots[0]!.worker;
    const w0 = await worker.getResourceUsage();
    const n0 = process.cpuUsage();
    const sent0 = reports?.sent() ?? 0;
    await new Promise((r) => setTimeout(r, MEASURE_MS));
    const w1 = await worker.getResourceUsage();
    const n1 = process.cpuUsage(n0);
    const r = {
      reports: (reports?.sent() ?? 0) - sent0,
      workerMs: w1.ru_utime + w1.ru_stime - (w0.ru_utime + w0.ru_stime),
      nodeMs: (n1.user + n1.system) / 1000,
      rows: gw.app.telemetry?.collector.samplesTaken.track_stats ?? 0,
      clientRows: gw.app.telemetry?.collector.samplesTaken.client_stats ?? 0,
    };
    console.error(
      `[telemetry ${modeName(mode).padEnd(14)}]${counted ? '' : ' (warm-up)'} worker ${r.workerMs} ms, node ${Math.round(r.nodeMs)} ms, track rows ${r.rows}, client rows ${r.clientRows}, reports ${r.reports}`,
    );
    return r;
  } finally {
    reports?.stop();
    for (const b of bots) await b.stop();
    for (const r of relays) await r.close();
    await gw.close();
  }
}

const clientModes: Array<{ flushMs: number | undefined }> = CLIENT_STATS
  ? CLIENT_STATS_FLUSH_MS.map((flushMs) => ({ flushMs }))
  : [];
const modes: Mode[] = ['off', 'on', ...clientModes];
const results = new Map<Mode, Round[]>(modes.map((mode) => [mode, []]));
let clickhouse: Awaited<ReturnType<typeof startChdbHttp>> | undefined;
try {
  const sinkPort = await new Promise<number>((r) => sink.stdout!.once('data', (d) => r(Number(String(d).trim()))));
  clickhouse = await startChdbHttp(path.join(dir, 'clickhouse'));
  // Not counted: the first gateway of the process carries its start-up (about 4–5 points of every ratio when it
  // was always an "off" round).
  for (const mode of modes) await round(sinkPort, clickhouse.url, mode, false);
  for (let i = 0; i < ROUNDS; i++)
    for (const mode of rotated(modes, i)) results.get(mode)!.push(await round(sinkPort, clickhouse.url, mode, true));
} finally {
  sink.kill();
  // Before the folder holding its data is removed (at exit, by benchTempDir).
  await clickhouse?.stop();
}
const off = results.get('off')!;
const on = results.get('on')!;
const totals = (rs: Round[]) => rs.map((r) => r.workerMs + r.nodeMs);
const total = (rs: Round[], k: 'workerMs' | 'nodeMs') => Math.round(sum(rs.map((r) => r[k])));
/** What one mode's measured rounds used, and the rows its telemetry sampled. */
const used = (rs: Round[]) => ({
  workerCpuMs: total(rs, 'workerMs'),
  nodeCpuMs: total(rs, 'nodeMs'),
  trackRows: sum(rs.map((r) => r.rows)),
  clientStatsRows: sum(rs.map((r) => r.clientRows)),
});
/** The ratio of the CPU summed over the measured rounds; its interval from a paired bootstrap over the rounds. */
const compared = (a: Round[], b: Round[]) => ({
  ratio: Number((sum(totals(a)) / sum(totals(b))).toFixed(3)),
  ratioCi95: ratioInterval(totals(a), totals(b), sum),
});
console.log(
  JSON.stringify({
    bench: 'telemetry-overhead',
    load: `${PRODUCERS} producers x ${CONSUMERS_PER_PRODUCER} consumers, VP8 ~500 kbit/s each (ffmpeg -c copy)`,
    statsIntervalMs: STATS_INTERVAL_MS,
    focusIntervalMs: FOCUS_INTERVAL_MS ?? 'default (1000)',
    lossyProducers: LOSSY_PRODUCERS,
    clientStats: CLIENT_STATS
      ? `a gateway per flush interval, telemetry on, a report every ${CLIENT_STATS_INTERVAL_MS} ms per viewer`
      : 'none',
    measureMsPerRound: MEASURE_MS,
    rounds: ROUNDS,
    warmUp: 'one round of each, not counted; then rounds alternate which goes first',
    off: used(off),
    on: used(on),
    ...compared(on, off),
    roundRatios: on.map((r, i) => Number(((r.workerMs + r.nodeMs) / (off[i]!.workerMs + off[i]!.nodeMs)).toFixed(3))),
    target: 'ratio <= 1.03 (issue #14)',
    // Telemetry with client stats against none, and against telemetry alone: what the reports add. The Node CPU
    // they add per report is the difference of the paired rounds' Node CPU.
    clients: clientModes.map((mode) => {
      const client = results.get(mode)!;
      const reports = sum(client.map((r) => r.reports));
      return {
        flushMs: mode.flushMs ?? 'default (10000)',
        ...used(client),
        reports,
        ...compared(client, off),
        toOn: compared(client, on),
        nodeMsPerReport: Number(((total(client, 'nodeMs') - total(on, 'nodeMs')) / Math.max(1, reports)).toFixed(3)),
      };
    }),
  }),
);
