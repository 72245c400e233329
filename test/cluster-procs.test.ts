/**
 * Three Vigie nodes as separate processes (test/helpers/cluster.ts: each on its own loopback address, one PostgreSQL
 * server, one ClickHouse endpoint, one object store): audited actions on all three at once make one chain, and the
 * webhook outbox keeps its promise when a node is killed (SIGKILL) with deliveries in flight.
 */
import assert from 'node:assert/strict';
import { createClient } from '@clickhouse/client';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, test } from 'vitest';
import { generateApiKey } from '../src/auth/index.js';
import { SignalingClient, SignalingError } from '../src/sdk/SignalingClient.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { type Cluster, type ClusterNode, clusterTenant, startCluster, WEBHOOK_ENV } from './helpers/cluster.js';
import {
  assertExactlyOnceInOrder,
  leftToResend,
  type Enqueued,
  logOutbox,
  slowReceivers,
} from './helpers/webhookLedger.js';

const MINT = generateApiKey('acme01');
const DPO = generateApiKey('acmedpo1');
const SECRET = 'whsec_cluster_0123456789abcdef';
const ENDPOINTS = ['hook-a', 'hook-b'];

let cluster: Cluster;
let hooks: Awaited<ReturnType<typeof slowReceivers>>;
let db: Database;
let enqueued: () => Promise<Enqueued[]>;
const clients: SignalingClient[] = [];

beforeAll(async () => {
  // Slow enough that a delivery is in flight most of the time.
  hooks = await slowReceivers(ENDPOINTS, SECRET, 150);
  cluster = await startCluster({
    tenants: [clusterTenant(MINT, hooks.receivers, SECRET, DPO)],
    // Checkpoints signed all along the concurrent appends, by whichever node appends the entry that is due.
    env: { ...WEBHOOK_ENV, VIGIE_AUDIT_CHECKPOINT_EVERY: '3' },
  });
  db = await openDatabase({ url: cluster.pg.url, dataDir: '/nonexistent' });
  enqueued = await logOutbox(db);
}, 300_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await db?.close();
  await cluster?.close();
  await hooks?.close();
}, 120_000);

const api = (node: ClusterNode, key: { key: string }, method: string, url: string, body?: object) =>
  fetch(`${node.url}${url}`, {
    method,
    headers: { 'x-api-key': key.key, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });

const mint = async (node: ClusterNode, room: string, identity: string): Promise<string> => {
  const res = await api(node, MINT, 'POST', '/v1/tokens', { room, identity });
  assert.equal(res.status, 200, `${node.id}: POST /v1/tokens ${await res.clone().text()}`);
  return ((await res.json()) as { token: string }).token;
};

test('ten concurrent audited actions on three nodes produce one chain that verifies', async () => {
  const [a, b, c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  // Ten audited actions (token.mint), spread over the three processes, all at once.
  await Promise.all(Array.from({ length: 10 }, (_, i) => mint([a, b, c][i % 3]!, `audit-${i}`, `auditor-${i}`)));
  // Verified on a node that did a third of them only.
  const res = await api(b, DPO, 'GET', '/v1/compliance/audit/verify');
  assert.equal(res.status, 200, await res.clone().text());
  const result = (await res.json()) as { ok: boolean; entries: number; checkpoints: number; problems: unknown[] };
  assert.deepEqual(result.problems, []);
  assert.equal(result.ok, true);
  assert.ok(result.checkpoints >= 3, `checkpoints every 3 entries were signed: ${result.checkpoints}`);

  // The chain itself: one entry per position, none twice (a fork), each of the ten actions once.
  const ch = createClient({ url: cluster.clickhouseUrl });
  try {
    const rows = await (
      await ch.query({
        query: "SELECT seq, hash, prev_hash, action, target FROM vigie.audit_log WHERE tenant = 'acme' ORDER BY seq",
        format: 'JSONEachRow',
      })
    ).json<{ seq: string; hash: string; prev_hash: string; action: string; target: string }>();
    assert.deepEqual(
      rows.map((r) => Number(r.seq)),
      rows.map((_, i) => i + 1),
      'seq 1..n, each once',
    );
    for (const [i, r] of rows.entries()) if (i > 0) assert.equal(r.prev_hash, rows[i - 1]!.hash, `link at ${r.seq}`);
    const mints = rows.filter((r) => r.action === 'token.mint').map((r) => r.target);
    assert.deepEqual(mints.sort(), Array.from({ length: 10 }, (_, i) => `room:audit-${i}`).sort());
  } finally {
    await ch.close();
  }
});

/**
 * Joins `room` through `node` as `identity`, following a REDIRECT to the node that serves the room as the SDK does:
 * a room.started and a participant.joined for every endpoint, wherever the room is placed.
 */
async function join(node: ClusterNode, room: string, identity: string): Promise<void> {
  const token = await mint(node, room, identity);
  let url = node.wsUrl;
  for (let hop = 0; ; hop++) {
    const client = new SignalingClient(new WebSocket(url) as never);
    clients.push(client);
    await client.opened;
    try {
      const joined = await client.request('join', { token });
      assert.equal(joined.room, room);
      return;
    } catch (err) {
      if (!(err instanceof SignalingError) || err.code !== 'REDIRECT' || !err.redirect || hop >= 3) throw err;
      client.close();
      url = err.redirect.url;
    }
  }
}

/** The participant.joined deliveries enqueued so far, by room. */
const joinedRooms = async () =>
  new Set(
    (await enqueued())
      .filter((e) => e.event === 'participant.joined')
      .map((e) => (JSON.parse(e.body) as { data: { room: string } }).data.room),
  );

test('webhooks exactly once by delivery id, in order per endpoint, across a SIGKILL of a node with deliveries in flight', async () => {
  const [a, b, c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  const victim = b;
  const rooms: string[] = [];
  // Events produced on the three nodes, in turn, until the victim is caught sending one (any node sends any
  // delivery: which one claims it is up to the outbox).
  let producing = true;
  const producer = (async () => {
    for (let i = 0; producing || i < 6; i++) {
      rooms.push(`hooks-${i}`);
      await join([a, b, c][i % 3]!, `hooks-${i}`, `guest-${i}`);
    }
  })();
  const caught = await waitFor(
    `${victim.id} to have a delivery in flight`,
    async () => hooks.holdFrom(victim.pid),
    (h) => h.length > 0,
    90_000,
  ).finally(() => (producing = false));
  await producer;
  // The victim's own events are in the outbox before it dies (an event is queued just after its cause: one a node
  // dies before queuing is not a delivery, and not what this checks).
  await waitFor(
    'the first events in the outbox',
    async () => joinedRooms(),
    (r) => rooms.every((room) => r.has(room)),
    30_000,
  );
  await victim.kill();
  // What the kill left to be sent again: the request caught above, and whatever the victim still held claimed.
  const orphanIds = await leftToResend(db, victim.id, caught);
  hooks.release();

  // More events, on the nodes left, once they hold the victim dead (its heartbeat older than
  // VIGIE_NODES_DEAD_AFTER_S, and a heartbeat more for each node to have read it): until then a new room may
  // still be placed on it, and its join sent there.
  await waitFor(
    `${victim.id} dead in the registry`,
    async () =>
      (
        await db.query<{ dead: boolean }>(
          "SELECT heartbeat_at < now() - interval '6 seconds' AS dead FROM nodes WHERE id = $1",
          [victim.id],
        )
      ).rows[0]?.dead,
    (dead) => dead === true,
    60_000,
  );
  // More events, on the nodes left.
  const first = rooms.length;
  for (let i = first; i < first + 8; i++) {
    rooms.push(`hooks-${i}`);
    await join([a, c][i % 2]!, `hooks-${i}`, `guest-${i}`);
  }
  await waitFor(
    'every enqueued delivery at its endpoint',
    async () => {
      const ids = new Set(hooks.arrivals.filter((x) => x.answered !== undefined).map((x) => x.id));
      const all = await enqueued();
      return { missing: all.filter((e) => !ids.has(e.id)).length, joined: await joinedRooms() };
    },
    (s) => s.missing === 0 && rooms.every((room) => s.joined.has(room)),
    90_000,
  );
  const all = await enqueued();
  // Every join made its two events, for each endpoint, and nothing was enqueued twice.
  for (const endpoint of ENDPOINTS)
    for (const room of rooms)
      for (const event of ['room.started', 'participant.joined'])
        assert.equal(
          all.filter((e) => e.endpoint_id === endpoint && e.event === event && JSON.parse(e.body).data.room === room)
            .length,
          1,
          `${endpoint}: one ${event} for ${room}`,
        );
  assertExactlyOnceInOrder(all, hooks.arrivals, orphanIds);
  // What the kill left in flight was sent again, by a node still alive: the lease expired, the delivery was not lost.
  for (const o of caught)
    assert.equal(hooks.arrivals.filter((x) => x.id === o.id).length, 2, `${o.id}: sent again after its node died`);
  for (const id of orphanIds)
    assert.ok(hooks.arrivals.filter((x) => x.id === id).length <= 2, `${id}: sent at most once more after the kill`);
  // Nothing is left pending: the dead node's claims were all taken over.
  assert.deepEqual((await db.query('SELECT id FROM webhook_outbox')).rows, []);
});
