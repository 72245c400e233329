import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { schemaContext, MIGRATIONS } from '../src/clickhouse/index.js';
import { startGateway, nextNotification, type TestGateway } from './helpers/gateway.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import { waitFor } from './helpers/browser.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ writer: { flushIntervalMs: 100 } });
});
afterAll(() => gw.close());

const events = async (room: string) =>
  await gw.query<{ event: string; reason: string; attrs: Record<string, string> }>(
    `SELECT event, reason, attrs FROM vigie.call_events WHERE room = {r:String} ORDER BY ts`,
    { r: room },
  );

test('ICE restarts, pauses and resumes, and worker deaths are call events', async () => {
  const c = await gw.connect();
  await c.request('join', { token: await gw.mint({ room: 'events', identity: 'ev' }) });
  const t = await c.request('createWebRtcTransport', { direction: 'recv' });
  await c.request('restartIce', { transportId: t.transportId });
  const room = gw.app.sfu.getRoom('acme', 'events')!;
  const bot = await startFfmpegBot(room, { kind: 'audio', bitrateKbps: 32 });
  await bot.producer.pause();
  await bot.producer.resume();

  const closed = nextNotification(c, 'roomClosed');
  process.kill(room.slot.worker.pid!, 'SIGKILL');
  assert.equal((await closed).reason, 'worker-died');
  await bot.stop();

  const names = await waitFor(
    'events',
    async () => (await events('events')).map((e) => e.event),
    (e) => e.includes('room.closed'),
  );
  for (const e of [
    'room.created',
    'peer.joined',
    'transport.created',
    'ice.restart',
    'producer.created',
    'producer.paused',
    'producer.resumed',
    'room.closed',
  ])
    assert.ok(names.includes(e), `${e} in ${names.join(', ')}`);
  const roomClosed = (await events('events')).find((e) => e.event === 'room.closed')!;
  assert.equal(roomClosed.reason, 'worker-died');
  const died = await gw.query(`SELECT object_id, reason FROM vigie.call_events WHERE event = 'worker.died'`);
  assert.equal(died.length, 1, 'worker.died recorded');
  assert.match(died[0].reason, /SIGKILL/);
  const left = (await events('events')).filter((e) => e.event === 'peer.left').map((e) => e.reason);
  assert.ok(
    left.includes('room-closed:worker-died'),
    `peers of the closed room left with its reason: ${left.join(', ')}`,
  );
});

test('over the memory bound, batches go to the spool and still arrive', async () => {
  const { ClickHouseWriter, Spool } = await import('../src/telemetry/index.js');
  const { mkdtempSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const spool = new Spool(mkdtempSync(path.join(os.tmpdir(), 'vigie-bound-')), 1 << 24, 'drop-oldest', gw.app.log);
  await spool.open();
  const writer = new ClickHouseWriter(
    gw.app.clickhouse.client,
    spool,
    { database: 'vigie', batchRows: 50, flushIntervalMs: 50, maxBufferedRows: 100 },
    gw.app.log,
  );
  writer.start();
  for (let i = 0; i < 2000; i++)
    writer.write('call_events', {
      ts: Date.now(),
      tenant: 'bound',
      room: 'b',
      call_id: 'b',
      peer_id: '',
      participant: '',
      event: 'bound.test',
      object_id: String(i),
      reason: '',
      attrs: {},
    });
  assert.ok(writer.queuedRows <= 2000);
  assert.ok(await writer.drain());
  assert.ok(writer.counters.rowsSpooled > 0, 'some batches went through the spool');
  assert.equal(writer.counters.rowsDropped, 0);
  await writer.close();
  const [r] = await gw.query(
    `SELECT count() AS c, uniqExact(object_id) AS u FROM vigie.call_events WHERE tenant = 'bound'`,
  );
  assert.equal(Number(r.c), 2000);
  assert.equal(Number(r.u), 2000);
});

test('cluster mode: every statement runs ON CLUSTER with a Replicated engine', () => {
  const ctx = schemaContext('vigie', 'prod');
  for (const m of MIGRATIONS) {
    for (const sql of m.statements(ctx)) {
      if (/^\s*CREATE (TABLE|MATERIALIZED VIEW|VIEW)/.test(sql))
        assert.match(sql, /ON CLUSTER 'prod'/, sql.slice(0, 80));
      if (/ENGINE = /.test(sql))
        assert.match(
          sql,
          /ENGINE = Replicated\w*MergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/\{table\}', '\{replica\}'/,
          sql.slice(0, 80),
        );
    }
  }
  const single = schemaContext('vigie');
  assert.ok(MIGRATIONS[0]!.statements(single).every((s) => !s.includes('ON CLUSTER') && !s.includes('Replicated')));
});
