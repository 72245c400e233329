/**
 * Writer throughput versus a raw @clickhouse/client insert of the same rows,
 * in the same batches, into the same engine (embedded ClickHouse) and table.
 * After a warm-up run of each, rounds alternate which goes first, and the
 * medians are compared (with a 95% interval from a paired bootstrap over the rounds).
 */
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createClickHouseClient, migrate } from '../src/clickhouse/index.js';
import { ClickHouseWriter, Spool } from '../src/telemetry/index.js';
import { benchTempDir, median, ratioInterval, rotated } from './common.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 200_000);
const BATCH = 5000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const log = pino({ level: 'warn' });
// The embedded engine's data and the writer's spools, removed at exit (benchTempDir).
const dataDir = benchTempDir('writer');
const client = await createClickHouseClient({
  dataDir,
  clickhouse: { user: 'default', database: 'vigie', requestTimeoutMs: 60_000 },
});
await migrate(client, { database: 'vigie', log });

const now = Date.now();
const rows = Array.from({ length: ROWS }, (_, i) => ({
  ts: now + i,
  tenant: 'bench',
  room: `room-${i % 50}`,
  call_id: `call-${i % 50}`,
  peer_id: `peer-${i % 500}`,
  participant: `p${i % 500}`,
  track_id: `track-${i % 1000}`,
  producer_id: `prod-${i % 500}`,
  kind: i % 2 ? 'audio' : 'video',
  direction: 'inbound',
  source: 'camera',
  codec: 'video/VP8',
  ssrc: i,
  spatial_layer: -1,
  temporal_layer: -1,
  interval_ms: 5000,
  bitrate_bps: 500_000 + i,
  packets: 400,
  bytes: 300_000,
  packets_lost: 1,
  loss_fraction: 0.0025,
  jitter_ms: 3.5,
  rtt_ms: 20,
  nack_count: 0,
  pli_count: 0,
  fir_count: 0,
  score: 10,
  frame_rate: 30,
  frame_width: 640,
  frame_height: 480,
  mos: null,
  video_quality: 4.2,
}));

async function truncate() {
  await client.command({ query: 'TRUNCATE TABLE vigie.track_stats' });
}

async function raw(): Promise<number> {
  await truncate();
  const t0 = performance.now();
  for (let i = 0; i < ROWS; i += BATCH) {
    await client.insert({
      table: 'vigie.track_stats',
      values: rows.slice(i, i + BATCH),
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: `raw-${now}-${i}-${Math.random()}` },
    });
  }
  return ROWS / ((performance.now() - t0) / 1000);
}

async function viaWriter(): Promise<number> {
  await truncate();
  const spool = new Spool(mkdtempSync(path.join(dataDir, 'spool-')), 1 << 30, 'drop-oldest', log);
  await spool.open();
  const writer = new ClickHouseWriter(
    client,
    spool,
    { database: 'vigie', batchRows: BATCH, flushIntervalMs: 1000, maxBufferedRows: 1_000_000 },
    log,
  );
  writer.start();
  const t0 = performance.now();
  for (const r of rows) writer.write('track_stats', r);
  await writer.flush();
  const rate = ROWS / ((performance.now() - t0) / 1000);
  if (writer.counters.rowsWritten !== ROWS) throw new Error(`writer wrote ${writer.counters.rowsWritten} of ${ROWS}`);
  await writer.close();
  return rate;
}

const ways = { raw, writer: viaWriter };
const rates: Record<keyof typeof ways, number[]> = { raw: [], writer: [] };
const names = Object.keys(ways) as Array<keyof typeof ways>;
for (const name of names) await ways[name](); // warm-up, not counted
for (let i = 0; i < ROUNDS; i++) for (const name of rotated(names, i)) rates[name].push(await ways[name]());
const { raw: rawRates, writer: writerRates } = rates;
const [check] = await (
  await client.query({ query: 'SELECT count() AS c FROM vigie.track_stats', format: 'JSONEachRow' })
).json<{ c: string }>();
await client.close();
const result = {
  bench: 'writer-throughput',
  rows: ROWS,
  batchRows: BATCH,
  rounds: ROUNDS,
  rawRowsPerSec: Math.round(median(rawRates)),
  writerRowsPerSec: Math.round(median(writerRates)),
  ratio: Number((median(writerRates) / median(rawRates)).toFixed(3)),
  ratioCi95: ratioInterval(writerRates, rawRates),
  lastRunRowCount: Number(check!.c),
  target: 'ratio >= 0.8',
};
console.log(JSON.stringify(result));
