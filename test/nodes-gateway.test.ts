/**
 * A gateway on a real PostgreSQL 15 server, as one node among others: it is in
 * the node registry (GET /v1/admin/nodes), other nodes' deaths show there, its
 * retention jobs run only while it holds their singleton locks, and its
 * telemetry rows name it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { ConfigError } from '../src/config/index.js';
import type { Logger } from '../src/logging.js';
import { type NodeInfo, NodeRegistry } from '../src/nodes/index.js';
import { TABLE_RULES } from '../src/retention/index.js';
import { type AdvisoryLease, type Database, openDatabase } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { registryOptions, startRegistryNode } from './helpers/nodes.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

const ADMIN_KEY = 'nodes-admin-key-0123456789';
const log = pino({ level: 'silent' }) as unknown as Logger;

describe('a gateway as a node on a PostgreSQL server', () => {
  let server: PostgresServer;
  /** Another node's connection to the same server. */
  let other: Database;
  let gw: TestGateway;
  let closed = false;
  let ttlLease: AdvisoryLease | undefined;
  let sweeperLease: AdvisoryLease | undefined;
  let heartbeats = 0;
  let sweeps = 0;

  beforeAll(async () => {
    server = await startPostgres();
    other = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
    // Another node already runs the one-node retention jobs when this gateway starts.
    ttlLease = await other.tryAdvisoryLock('vigie:retention-ttl');
    sweeperLease = await other.tryAdvisoryLock('vigie:retention-sweeper');
    assert.ok(ttlLease && sweeperLease);
    gw = await startGateway({
      database: { url: server.url },
      node: { id: 'gw-1', region: 'eu-west' },
      nodes: { heartbeatSeconds: 1, deadAfterSeconds: 2, singletonRetrySeconds: 1 },
      retention: { sweepIntervalSeconds: 1 },
      telemetry: { statsIntervalMs: 1000 },
      writer: { flushIntervalMs: 100 },
      adminKeyHash: `sha256:${createHash('sha256').update(ADMIN_KEY).digest('hex')}`,
    });
    gw.app.nodes.registry.observer.on('heartbeat', () => heartbeats++);
    gw.app.recording!.sweeper.observer.on('swept', () => sweeps++);
  });
  afterAll(async () => {
    if (!closed) await gw?.close();
    await ttlLease?.release();
    await sweeperLease?.release();
    await other?.close();
    await server?.stop();
  });

  const nodes = async (key = ADMIN_KEY) => {
    const res = await fetch(`${gw.url}/v1/admin/nodes`, { headers: { 'x-admin-key': key } });
    return { status: res.status, body: (await res.json()) as { self: string; nodes: NodeInfo[] } };
  };
  const nodeNamed = async (id: string) => (await nodes()).body.nodes.find((n) => n.id === id);

  test('GET /v1/admin/nodes lists this node, alive, with its URL, region and load; operators only', async () => {
    assert.equal((await nodes('wrong-key')).status, 401);
    const me = await waitFor(
      'this node with its public URL',
      () => nodeNamed('gw-1'),
      (n) => n?.publicUrl === gw.url,
    );
    assert.equal((await nodes()).body.self, 'gw-1');
    assert.equal(me?.alive, true);
    assert.equal(me?.draining, false);
    assert.equal(me?.region, 'eu-west');
    assert.equal(me?.load.workers, 2);
    assert.ok(me!.load.cpu >= 0 && me!.load.cpu <= 1);
  });

  test('another node appears in the list, and is shown dead once its heartbeats stop', async () => {
    const b = await startRegistryNode(server.url, 'gw-2');
    assert.equal((await nodeNamed('gw-2'))?.alive, true);
    b.kill('SIGKILL');
    const dead = await waitFor(
      'the killed node shown dead',
      () => nodeNamed('gw-2'),
      (n) => n?.alive === false,
    );
    assert.equal(dead?.stoppedAt, null);
    assert.equal((await nodeNamed('gw-1'))?.alive, true, 'this node is untouched');
  });

  test('a room placed on a node that died is taken over by this node when someone joins it here', async () => {
    // gw-2's heartbeats stopped in the test before: a room it held is orphaned.
    await other.query(
      `INSERT INTO room_placements (tenant, room, node_id, call_id, placed_at)
       VALUES ('acme', 'orphaned', 'gw-2', 'call-of-a-dead-node', now())`,
    );
    const client = await gw.connect();
    await client.request('join', { token: await gw.mint({ room: 'orphaned', identity: 'rejoiner' }) });
    // The room is placed as it opens, beside the join.
    const placement = await waitFor(
      'the placement taken over',
      async () =>
        (
          await other.query<{ node_id: string; call_id: string }>(
            "SELECT node_id, call_id FROM room_placements WHERE tenant = 'acme' AND room = 'orphaned'",
          )
        ).rows[0],
      (p) => p?.node_id === 'gw-1',
    );
    assert.equal(placement?.call_id, gw.app.sfu.getRoom('acme', 'orphaned')!.callId);
    client.close();
  });

  test('a second node with this node id is refused while this one lives', async () => {
    const twin = new NodeRegistry(other, registryOptions('gw-1', { publicUrl: () => 'http://twin.test' }), log);
    await assert.rejects(twin.start(), (err: Error) => err instanceof ConfigError && /"gw-1"/.test(err.message));
    assert.equal((await nodeNamed('gw-1'))?.publicUrl, gw.url);
  });

  test('retention TTLs and sweeps run only on the node holding their lock, and move here when it goes', async () => {
    const ttlTables = Object.entries(TABLE_RULES)
      .filter(([, r]) => 'category' in r)
      .map(([t]) => t);
    const applied = async () =>
      (
        await gw.query<{ name: string }>(
          `SELECT name FROM system.tables WHERE database = 'vigie' AND startsWith(comment, 'vigie-ttl:')`,
        )
      ).map((r) => r.name);
    // Three heartbeats, at the sweep's own period: time for sweeps to have run had this node not waited its turn.
    const from = heartbeats;
    await waitFor(
      'three heartbeats',
      async () => heartbeats,
      (n) => n >= from + 3,
    );
    assert.equal(sweeps, 0, 'no sweep while another node holds the sweeper');
    assert.deepEqual(await applied(), [], 'no TTL applied while another node holds the TTL job');

    // The other node dies (its connection ends): this node takes both jobs over.
    await ttlLease!.release();
    await sweeperLease!.release();
    ttlLease = sweeperLease = undefined;
    const tables = await waitFor('the TTLs applied here', applied, (t) => t.length === ttlTables.length);
    assert.deepEqual(tables.sort(), ttlTables.sort());
    await waitFor(
      'a sweep here',
      async () => sweeps,
      (n) => n >= 1,
    );
  });

  test('telemetry rows carry the node id', async () => {
    const c = await gw.connect();
    await c.request('join', { token: await gw.mint({ room: 'nodes-room', identity: 'n1' }) });
    await c.request('createWebRtcTransport', { direction: 'recv' });
    const bot = await startFfmpegBot(gw.app.sfu.getRoom('acme', 'nodes-room')!, { kind: 'audio', bitrateKbps: 32 });
    try {
      for (const table of ['call_events', 'transport_stats', 'track_stats']) {
        const rows = await waitFor(
          `${table} rows of the call`,
          () => gw.query<{ node: string }>(`SELECT node FROM vigie.${table} WHERE room = 'nodes-room'`),
          (r) => r.length > 0,
        );
        assert.deepEqual([...new Set(rows.map((r) => r.node))], ['gw-1'], table);
      }
    } finally {
      await bot.stop();
      c.close();
    }
  });

  test('a draining node is shown draining; a closed one, stopped', async () => {
    await gw.app.drainSignaling(1);
    await waitFor(
      'the node shown draining',
      () => nodeNamed('gw-1'),
      (n) => n?.draining === true,
    );
    await gw.close();
    closed = true;
    const watcher = new NodeRegistry(other, registryOptions('watcher', { deadAfterSeconds: 2 }), log);
    const me = (await watcher.list()).find((n) => n.id === 'gw-1');
    assert.equal(me?.alive, false);
    assert.ok(me?.stoppedAt, 'marked stopped on close');
  });
});
