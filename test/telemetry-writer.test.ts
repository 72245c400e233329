import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClickHouseWriter, Spool } from '../src/telemetry/index.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ telemetry: { statsIntervalMs: 1000 }, writer: { flushIntervalMs: 200 } });
  await gw.app.clickhouse.client.command({
    query: `CREATE TABLE vigie.writer_test (id UInt32, batch String) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 1000`,
  });
});
afterAll(() => gw.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ch = () => gw.app.clickhouse.client;
const count = async (table: string, where = '1') =>
  Number((await gw.query<{ c: string }>(`SELECT count() AS c FROM vigie.${table} WHERE ${where}`))[0]!.c);

function writer(spool: Spool, batchRows = 10) {
  return new ClickHouseWriter(
    ch(),
    spool,
    { database: 'vigie', batchRows, flushIntervalMs: 100, maxBufferedRows: 10_000 },
    gw.app.log,
  );
}

test('outage: ClickHouse refuses inserts mid-run; after it is back, rows equal samples taken, with no duplicates', async () => {
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'outage');
  const bot = await startFfmpegBot(room, { kind: 'audio', bitrateKbps: 32 });
  const telemetry = gw.app.telemetry!;
  await sleep(2500);
  // The table disappears: every insert into it fails with a real engine error.
  await ch().command({ query: 'DETACH TABLE vigie.track_stats' });
  await sleep(3500);
  assert.ok(telemetry.writer.counters.insertErrors > 0, 'inserts failed during the outage');
  assert.ok(telemetry.writer.spoolBytes > 0, 'batches went to the spool');
  await ch().command({ query: 'ATTACH TABLE vigie.track_stats' });
  await sleep(2000);
  await bot.stop();
  await telemetry.collector.stop();
  assert.ok(await telemetry.writer.drain(), 'spool replayed');

  const samples = telemetry.collector.samplesTaken.track_stats;
  const [r] = await gw.query<{ n: string; distinct_samples: string }>(
    `SELECT count() AS n, uniqExact(track_id, ts) AS distinct_samples FROM vigie.track_stats`,
  );
  assert.ok(samples >= 6, `${samples} samples taken`);
  assert.equal(Number(r!.n), samples, 'one row per sample taken');
  assert.equal(Number(r!.distinct_samples), samples, 'no duplicates');
  assert.equal(telemetry.writer.counters.rowsDropped, 0);
  assert.match(gw.logs(), /ClickHouse insert failed; batch kept in the spool/);
  assert.match(gw.logs(), /spool replayed into ClickHouse/);
});

test('the spool survives a restart, skips a torn tail, and a replayed batch ClickHouse already had is not duplicated', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-spool-'));
  await ch().command({ query: 'DETACH TABLE vigie.writer_test' });
  const first = new Spool(dir, 1 << 20, 'drop-oldest', gw.app.log);
  await first.open();
  const w1 = writer(first);
  w1.start();
  for (let id = 0; id < 30; id++) w1.write('writer_test', { id, batch: 'restart' });
  await w1.flush();
  assert.equal(w1.counters.rowsSpooled, 30);
  await w1.close();

  // A crash mid-write leaves a torn record at the end of the segment.
  const [segment] = readdirSync(dir);
  appendFileSync(path.join(dir, segment!), Buffer.from([0x40, 0, 0, 0, 1, 2, 3, 4, 0x7b]));

  const second = new Spool(dir, 1 << 20, 'drop-oldest', gw.app.log);
  await second.open();
  assert.equal(second.rows, 30, 'three batches of ten are back');
  await ch().command({ query: 'ATTACH TABLE vigie.writer_test' });
  // ClickHouse took the first batch but the ack was lost: it is inserted again with its token.
  const head = (await second.peek())!;
  await ch().insert({
    table: 'vigie.writer_test',
    values: head.rows,
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: head.id },
  });
  const w2 = writer(second);
  w2.start();
  assert.ok(await w2.drain());
  await w2.close();
  assert.equal(await count('writer_test', "batch = 'restart'"), 30, 'every row once');
  assert.match(gw.logs(), /torn or corrupted record/);
});

test('a full spool follows its policy, and every row given up is counted and logged', async () => {
  await ch().command({ query: 'DETACH TABLE vigie.writer_test' });
  try {
    for (const policy of ['drop-oldest', 'drop-newest'] as const) {
      const spool = new Spool(mkdtempSync(path.join(os.tmpdir(), `vigie-${policy}-`)), 3000, policy, gw.app.log);
      await spool.open();
      const w = writer(spool);
      w.start();
      for (let id = 0; id < 200; id++) w.write('writer_test', { id, batch: `full-${policy}-padding-padding-padding` });
      await w.flush();
      assert.ok(w.counters.rowsDropped > 0, `${policy}: rows dropped`);
      assert.equal(
        w.counters.rowsDropped + spool.rows,
        200,
        `${policy}: every row is either kept or counted as dropped`,
      );
      assert.ok(spool.bytes <= 3000);
      await w.close();
    }
    assert.match(gw.logs(), /spool full: oldest segment dropped \(drop-oldest\)/);
    assert.match(gw.logs(), /spool full: batch dropped \(drop-newest\)/);
  } finally {
    await ch().command({ query: 'ATTACH TABLE vigie.writer_test' });
  }
});

test('an append racing the ack that empties its segment is not lost', async () => {
  const spool = new Spool(mkdtempSync(path.join(os.tmpdir(), 'vigie-race-')), 1 << 20, 'drop-oldest', gw.app.log);
  await spool.open();
  for (let round = 0; round < 50; round++) {
    await spool.append({ id: `a${round}`, table: 't', rows: [1] });
    const head = (await spool.peek())!;
    // The ack empties the segment the append is writing to, while the append is in flight.
    await Promise.all([spool.append({ id: `b${round}`, table: 't', rows: [2] }), spool.ack(head.id)]);
    assert.equal((await spool.peek())?.id, `b${round}`, `round ${round}`);
    await spool.ack(`b${round}`);
  }
  assert.equal(spool.rows, 0);
});

test('migrations are recorded and idempotent', async () => {
  const { migrate, MIGRATIONS } = await import('../src/clickhouse/index.js');
  assert.deepEqual(await migrate(ch(), { database: 'vigie', log: gw.app.log }), [], 'nothing left to apply');
  const rows = await gw.query<{ version: number }>(
    'SELECT version FROM vigie.schema_migrations FINAL ORDER BY version',
  );
  assert.deepEqual(
    rows.map((r) => Number(r.version)),
    MIGRATIONS.map((m) => m.version),
    'every migration recorded once',
  );
  const tables = (
    await gw.query<{ name: string }>("SELECT name FROM system.tables WHERE database = 'vigie' ORDER BY name")
  ).map((r) => r.name);
  for (const t of [
    'call_events',
    'call_quality_agg',
    'call_quality_mv',
    'call_summary',
    'client_stats',
    'participants',
    'track_stats',
    'transport_stats',
  ])
    assert.ok(tables.includes(t), t);
});
