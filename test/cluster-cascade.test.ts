/**
 * A room that spans two nodes, with three Vigie nodes as separate processes (test/helpers/cluster.ts), each in its
 * own region, for a tenant with region affinity: a Chromium participant joins through the node that holds the room,
 * another through a node of another region, which serves them itself by extending the room (not by sending them to
 * the owner). Media flows both ways, ClickHouse holds one call id with rows from both nodes, and a recording started
 * and stopped through the REST API (on different nodes) gives one recording per participant, each in the object
 * store.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@clickhouse/client';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, test } from 'vitest';
import { generateApiKey } from '../src/auth/index.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import { type Cluster, type ClusterNode, startCluster } from './helpers/cluster.js';
import { recordFromFirstFiles } from './helpers/recording.js';

const KEY = generateApiKey('acme01');
const ROOM = 'spans-nodes';
const REGIONS = ['eu-west', 'eu-east', 'us-east'];

let cluster: Cluster;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let ch: ReturnType<typeof createClient>;
let db: Database;
let tmp: string;

beforeAll(async () => {
  cluster = await startCluster({
    tenants: [
      {
        id: 'acme',
        apiKeys: [{ id: 'acme01', hash: KEY.hash, scopes: ['tokens:mint', 'admin'] }],
        // Media stays in each participant's region: a join on a node of another region extends the room there.
        regionAffinity: true,
      },
    ],
    env: {
      VIGIE_WRITER_FLUSH_MS: '200',
      VIGIE_STATS_INTERVAL_MS: '1000',
      // A join that extends a room waits for the link to the owner; slow on a loaded 2-core machine.
      VIGIE_SIGNALING_JOIN_TIMEOUT_MS: '60000',
    },
    nodeEnv: (i) => ({ VIGIE_NODE_REGION: REGIONS[i]! }),
  });
  ch = createClient({ url: cluster.clickhouseUrl });
  db = await openDatabase({ url: cluster.pg.url, dataDir: '/nonexistent' });
  browser = await launchBrowser();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'vigie-cascade-'));
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await ch?.close();
  await db?.close();
  await cluster?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 120_000);

async function api(node: ClusterNode, method: string, route: string, body?: unknown): Promise<Response> {
  return fetch(`${node.url}${route}`, {
    method,
    headers: { 'x-api-key': KEY.key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function join(page: Page, node: ClusterNode, identity: string): Promise<void> {
  const res = await api(node, 'POST', '/v1/tokens', { room: ROOM, identity, ttlSeconds: 3600 });
  assert.equal(res.status, 200, await res.clone().text());
  const { token } = (await res.json()) as { token: string };
  const opened = await joinThroughPage(page, `${node.url}/join?token=${token}`, { name: identity });
  assert.equal(opened?.status(), 200);
}

/** The call a page is in and its peer id there, as the node that serves it answered its join. */
const infoOf = (page: Page) =>
  page.evaluate(() => {
    const info = (window as any).vigieCall?.info;
    return { callId: info?.callId as string | undefined, peerId: info?.peerId as string | undefined };
  });
/** What the page last heard of the call's recording (`recordingStarted`, `recordingStopped`), if anything. */
const recordingState = (page: Page) =>
  page.evaluate(
    () =>
      (window as any).vigieEvents
        .map((e: { type: string }) => e.type)
        .filter((t: string) => t === 'recordingStarted' || t === 'recordingStopped')
        .at(-1) as string | undefined,
  );

/** Where the room is placed, from the room directory every node shares. */
const placement = async () =>
  (
    await db.query<{ node_id: string; call_id: string }>(
      'SELECT node_id, call_id FROM room_placements WHERE tenant = $1 AND room = $2',
      ['acme', ROOM],
    )
  ).rows;

async function clickhouse<T>(query: string): Promise<T[]> {
  return (await ch.query({ query, query_params: { room: ROOM }, format: 'JSONEachRow' })).json<T>();
}

interface Recording {
  id: string;
  sessionId: string;
  callId: string;
  participants: string[];
  tracks: string[];
  sizeBytes: number;
  status: string;
}

test('a room spanning two nodes: a participant on each, media both ways, one call id in ClickHouse, one recording per participant', async () => {
  const [alice, bob] = [await browser.context.newPage(), await browser.context.newPage()];
  // Alice opens the room; it is placed on the least-loaded node (the one she reached, on a tie).
  await join(alice, cluster.nodes[0]!, 'alice');
  const { callId: call, peerId: alicePeer } = await waitFor(
    'alice in a call',
    () => infoOf(alice),
    (i) => i.callId !== undefined,
    90_000,
  );
  const [placed] = await placement();
  const owner = cluster.nodes.find((n) => n.id === placed?.node_id);
  assert.ok(owner, `the room is placed on a node of the cluster: ${JSON.stringify(placed)}`);
  assert.equal(placed!.call_id, call);

  // Bob joins through a node of another region: served there, in the owner's call.
  const edge = cluster.nodes.find((n) => n !== owner)!;
  await join(bob, edge, 'bob');
  const seen = await waitFor(
    'both in one call, each receiving the other’s video and audio',
    async () => ({
      info: await Promise.all([alice, bob].map(infoOf)),
      media: await Promise.all([alice, bob].map(receivedMedia)),
    }),
    (s) =>
      s.info.every((i) => i.callId === call) &&
      s.media.every((m) => m.framesDecoded > 10 && m.totalSamplesReceived > 0),
    90_000,
  );
  const bobPeer = seen.info[1]!.peerId!;
  assert.match(edge.output(), /room extended here/, `${edge.id} extended the room`);
  assert.deepEqual(await placement(), [{ node_id: owner.id, call_id: call }], 'the room stays placed on its owner');

  // One call in ClickHouse, written by both nodes: each its own participant's join, and its media statistics.
  const joins = await waitFor(
    'the joins of both participants in ClickHouse',
    () =>
      clickhouse<{ call_id: string; node: string; peer_id: string; participant: string }>(
        "SELECT call_id, node, peer_id, participant FROM vigie.call_events WHERE room = {room:String} AND event = 'peer.joined'",
      ),
    (r) => r.length >= 2,
    60_000,
  );
  assert.deepEqual([...new Set(joins.map((r) => r.call_id))], [call], 'one call id');
  assert.deepEqual(
    joins.map((r) => [r.peer_id, r.node]).sort(),
    [
      [alicePeer, owner.id],
      [bobPeer, edge.id],
    ].sort(),
    'alice joined on the owner, bob on the node of his region',
  );
  const stats = await waitFor(
    'media statistics of both nodes in ClickHouse',
    () =>
      clickhouse<{ call_id: string; node: string }>(
        'SELECT DISTINCT call_id, node FROM vigie.track_stats WHERE room = {room:String}',
      ),
    (r) => new Set(r.map((x) => x.node)).size >= 2,
    60_000,
  );
  assert.deepEqual([...new Set(stats.map((r) => r.call_id))], [call], 'one call id in the media statistics');
  assert.deepEqual([...new Set(stats.map((r) => r.node))].sort(), [owner.id, edge.id].sort());

  // Recording: started through the node of bob's region, stopped through the owner; each node records its own.
  const started = await api(edge, 'POST', `/v1/rooms/${ROOM}/recording`, { action: 'start' });
  assert.equal(started.status, 200, await started.clone().text());
  const { recordingId } = (await started.json()) as { recordingId: string };
  await waitFor(
    'both participants told that the call is recorded',
    () => Promise.all([alice, bob].map(recordingState)),
    (e) => e.every((x) => x === 'recordingStarted'),
    30_000,
  );
  await Promise.all([owner, edge].map((n) => recordFromFirstFiles(n.dataDir, 1, 2000)));
  const stopped = await api(owner, 'POST', `/v1/rooms/${ROOM}/recording`, { action: 'stop' });
  assert.equal(stopped.status, 200, await stopped.clone().text());
  await waitFor(
    'both participants told that the recording stopped',
    () => Promise.all([alice, bob].map(recordingState)),
    (e) => e.every((x) => x === 'recordingStopped'),
    30_000,
  );

  // The catalog (PostgreSQL), through either node: one recording per participant, in the one call and session.
  const list = async () =>
    ((await (await api(owner, 'GET', `/v1/recordings?room=${ROOM}`)).json()) as { recordings: Recording[] }).recordings;
  const recordings = await waitFor(
    'two recordings uploaded',
    list,
    (r) => r.length >= 2 && r.every((x) => x.status === 'ready'),
    120_000,
  );
  assert.equal(recordings.length, 2, `one recording per participant: ${JSON.stringify(recordings)}`);
  for (const r of recordings) {
    assert.equal(r.callId, call);
    assert.equal(r.sessionId, recordingId, 'one recording session across the nodes');
    assert.equal(r.participants.length, 1);
    assert.equal(r.tracks.length, 2, 'audio and video');
  }
  assert.deepEqual(
    recordings.map((r) => r.participants[0]).sort(),
    joins.map((r) => r.participant).sort(),
    'alice and bob, once each',
  );

  // Each object is in the store, whole, and holds the participant's audio and video.
  for (const r of recordings) {
    const res = await api(edge, 'GET', `/v1/recordings/${r.id}/download?mode=stream`);
    assert.equal(res.status, 200);
    const file = path.join(tmp, r.id);
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    assert.ok(r.sizeBytes > 0);
    assert.equal(statSync(file).size, r.sizeBytes);
    const streams = execFileSync(
      'ffprobe',
      ['-v', 'error', '-show_entries', 'stream=codec_type', '-of', 'csv=p=0', file],
      { encoding: 'utf8' },
    )
      .split('\n')
      .filter(Boolean)
      .sort();
    assert.deepEqual(streams, ['audio', 'video'], `recording ${r.id}`);
  }
});
