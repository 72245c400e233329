/**
 * Placement and routing over three nodes on one PostgreSQL server (issue 13, "Nodes and rooms"): the first join of
 * a room places it on the least-loaded live node, a join that reaches another node is answered REDIRECT naming the
 * serving node, two nodes choosing at once still open one room, a draining node takes no new rooms and its rooms
 * move as their participants reconnect, and the SDK follows redirects and rejoins through another node when its
 * node is gone. All three gateways run in this process, on one ClickHouse endpoint (a separate process), as three
 * machines would.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, test } from 'vitest';
import type { SignalingClient, SignalingError } from '../src/sdk/SignalingClient.js';
import { launchBrowser, joinThroughPage, receivedMedia, waitFor } from './helpers/browser.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { expectCode, startGateway, type TestGateway } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

let pg: PostgresServer;
let chdb: Awaited<ReturnType<typeof startChdbHttp>>;
let chdbDir: string;
const nodes: TestGateway[] = [];
const closed = new Set<TestGateway>();
/** The participants that load nodes a and c in the first test (c's leaves when c drains). */
const loaders: SignalingClient[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  chdbDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chdb-'));
  chdb = await startChdbHttp(chdbDir);
  for (const id of ['node-a', 'node-b', 'node-c'])
    nodes.push(
      await startGateway({
        node: { id },
        database: { url: pg.url },
        clickhouse: { url: chdb.url },
        media: { workers: 2 },
        nodes: { heartbeatSeconds: 1 },
      }),
    );
  // Each node learns its URL once it listens (port 0): published now rather than at the next heartbeat.
  await publishLoads();
});

afterAll(async () => {
  for (const n of nodes) if (!closed.has(n)) await n.close();
  await chdb?.stop();
  await pg?.stop();
  rmSync(chdbDir, { recursive: true, force: true });
});

/** Every node publishes its URL and load now, as its heartbeat would within a second. */
async function publishLoads(): Promise<void> {
  for (const n of nodes) if (!closed.has(n)) await n.app.nodes.registry.heartbeat();
}

const byUrl = (url: string) => nodes.find((n) => n.wsUrl === url);
const named = (id: string) => nodes.find((n) => n.config.node.id === id)!;
/** The nodes where the room is open now. */
const servingNodes = (room: string) =>
  nodes.filter((n) => !closed.has(n) && n.app.sfu.getRoom('acme', room)).map((n) => n.config.node.id);

/** Joins through `gw` and follows REDIRECT answers as the SDK does; resolves with where the join was answered. */
async function joinVia(gw: TestGateway, token: string): Promise<{ client: SignalingClient; joined: any; at: string }> {
  let at = gw;
  for (let hop = 0; hop <= 3; hop++) {
    const client = await at.connect();
    try {
      return { client, joined: await client.request('join', { token }), at: at.config.node.id };
    } catch (err) {
      const e = err as SignalingError;
      client.close();
      if (e.code !== 'REDIRECT') throw err;
      const next = byUrl(e.redirect!.url);
      assert.ok(next, `the redirect names a node of the cluster: ${e.redirect!.url}`);
      assert.equal(e.redirect!.nodeId, next.config.node.id);
      at = next;
    }
  }
  throw new Error('more than 3 redirects');
}

/** The REDIRECT a join through `gw` gets (it fails if the join is served there). */
async function redirectOf(gw: TestGateway, token: string): Promise<{ nodeId: string; url: string }> {
  const client = await gw.connect();
  try {
    await client.request('join', { token });
  } catch (err) {
    const e = err as SignalingError;
    assert.equal(e.code, 'REDIRECT', e.message);
    return e.redirect!;
  } finally {
    client.close();
  }
  throw new Error(`the join was served by ${gw.config.node.id}, not redirected`);
}

test('the first join of a room places it on the least-loaded live node; joins through other nodes are sent there', async () => {
  const [a, b, c] = nodes as [TestGateway, TestGateway, TestGateway];
  // One participant on a and one on c (idle nodes tie, so each serves the join it received); b stays idle.
  for (const [gw, room] of [
    [a, 'load-a'],
    [c, 'load-c'],
  ] as const) {
    const loader = await joinVia(gw, await gw.mint({ room, identity: room }));
    assert.equal(loader.at, gw.config.node.id);
    loaders.push(loader.client);
  }
  await publishLoads();

  assert.deepEqual(await redirectOf(a, await a.mint({ room: 'meeting', identity: 'alice' })), {
    nodeId: 'node-b',
    url: b.wsUrl,
  });
  // Placed on b by a's decision: c sends its join there too, whatever its own view of the loads.
  assert.equal((await b.app.rooms.placement('acme', 'meeting'))?.nodeId, 'node-b');
  assert.deepEqual(await redirectOf(c, await c.mint({ room: 'meeting', identity: 'bob' })), {
    nodeId: 'node-b',
    url: b.wsUrl,
  });

  const alice = await joinVia(a, await a.mint({ room: 'meeting', identity: 'alice' }));
  const bob = await joinVia(c, await c.mint({ room: 'meeting', identity: 'bob' }));
  assert.deepEqual([alice.at, bob.at], ['node-b', 'node-b']);
  assert.deepEqual(
    bob.joined.peers.map((p: { peerId: string }) => p.peerId),
    [alice.joined.peerId],
    'one call: bob sees alice',
  );
  assert.deepEqual(servingNodes('meeting'), ['node-b']);
  // Once open, the placement carries the call's own id.
  const call = b.app.sfu.getRoom('acme', 'meeting')!.callId;
  await waitFor(
    'the placement to carry the call id',
    () => b.app.rooms.placement('acme', 'meeting'),
    (p) => p?.callId === call,
  );
  // Where the SDK rejoins if b is gone: the other live nodes.
  assert.deepEqual([...bob.joined.nodes].sort(), [a.wsUrl, c.wsUrl].sort());
});

test('two nodes that both choose themselves for a new room at once still open it on one node', async () => {
  const [a, , c] = nodes as [TestGateway, TestGateway, TestGateway];
  await publishLoads();
  // a and c carry one participant each: a tie, so each would serve its own join.
  for (let i = 0; i < 4; i++) {
    const room = `race-${i}`;
    const [x, y] = await Promise.all([
      joinVia(a, await a.mint({ room, identity: 'x' })),
      joinVia(c, await c.mint({ room, identity: 'y' })),
    ]);
    assert.equal(x.at, y.at, `${room}: both joins are served by one node`);
    assert.deepEqual(servingNodes(room), [x.at]);
    assert.equal(named(x.at).app.sfu.getRoom('acme', room)!.peers.size, 2);
    x.client.close();
    y.client.close();
    await waitFor(
      'the race room to close',
      async () => servingNodes(room),
      (s) => s.length === 0,
    );
  }
});

test('a draining node takes no new rooms, and its rooms move to another node as their participants reconnect', async () => {
  await publishLoads();
  // A call on some node s: its participant stays there while s drains.
  const stayer = await joinVia(nodes[2]!, await nodes[2]!.mint({ room: 'moving', identity: 'stayer' }));
  const s = named(stayer.at);
  const others = nodes.filter((n) => n !== s);
  const drained = s.app.drainSignaling(120);
  await waitFor(
    `${stayer.at} to be shown draining`,
    () => others[0]!.app.nodes.registry.list(),
    (list) => list.find((n) => n.id === stayer.at)?.draining === true,
  );
  await waitFor(
    `${stayer.at}'s placements to be released`,
    () => s.app.rooms.placement('acme', 'moving'),
    (p) => p === undefined,
  );
  // A new room is not placed on s, whichever node the join reaches.
  assert.notEqual((await redirectOf(s, await s.mint({ room: 'after-drain', identity: 'new' }))).nodeId, stayer.at);
  for (const via of others) {
    const joined = await joinVia(via, await via.mint({ room: `after-drain-${via.config.node.id}`, identity: 'n' }));
    assert.notEqual(joined.at, stayer.at);
    joined.client.close();
  }
  // A participant of s's room who reconnects (through s, as the SDK does first) is sent to another node, which
  // places the room; later reconnects, through any node, follow it there.
  const mover = await joinVia(s, await s.mint({ room: 'moving', identity: 'mover' }));
  assert.notEqual(mover.at, stayer.at);
  assert.equal((await s.app.rooms.placement('acme', 'moving'))?.nodeId, mover.at);
  for (const via of nodes) {
    const later = await joinVia(via, await via.mint({ room: 'moving', identity: `later-${via.config.node.id}` }));
    assert.equal(later.at, mover.at);
  }
  // The call in progress on s is untouched; the drain ends once its participants are gone.
  assert.equal(s.app.sfu.getRoom('acme', 'moving')?.peers.size, 1);
  for (const ws of s.app.websocketServer.clients) ws.close();
  await drained;
  // A drained node still sends joins elsewhere (with no other node it refuses them: test/drain.test.ts).
  await expectCode(
    (await s.connect()).request('join', { token: await s.mint({ room: 'moving', identity: 'stayer' }) }),
    'REDIRECT',
  );
});

async function openJoinPage(gw: TestGateway, identity: string, room: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => console.error(`[${identity}] page error:`, e.message));
  const token = await gw.mint({ room, identity, name: identity });
  const res = await joinThroughPage(page, `${gw.url}/join?token=${token}`);
  assert.equal(res?.status(), 200);
  return page;
}

/** Waits until the page receives the other participant's audio and video, decoded. */
const seesTheOther = (name: string, page: Page) =>
  waitFor(
    `${name} to receive audio and video`,
    async () => ({ ...(await receivedMedia(page)), events: await events(page) }),
    (m) => m.videoTracks === 1 && m.audioTracks === 1 && m.framesDecoded > 5 && m.totalSamplesReceived > 0,
    60_000,
  );

const events = (page: Page): Promise<string[]> =>
  page.evaluate(() =>
    (window as any).vigieEvents.map((e: { type: string; data?: unknown }) =>
      e.type === 'error' ? `error ${JSON.stringify(e.data)}` : e.type,
    ),
  );

let browser: Awaited<ReturnType<typeof launchBrowser>>;

test('two pages joining through two different nodes end up in one call; when its node dies, they rejoin through another', async () => {
  browser = await launchBrowser();
  try {
    await publishLoads();
    // The call is placed by a first participant (no media) on a node o that takes rooms; the first page opens on
    // o itself, the second on another node p, which redirects its join to o.
    const first = await joinVia(nodes[0]!, await nodes[0]!.mint({ room: 'browser-route', identity: 'first' }));
    const o = named(first.at);
    const p = nodes.find((n) => n !== o && !n.app.signalingDraining())!;
    const alice = await openJoinPage(o, 'alice', 'browser-route');
    const bob = await openJoinPage(p, 'bob', 'browser-route');
    await seesTheOther('bob', bob);
    await seesTheOther('alice', alice);
    assert.deepEqual(servingNodes('browser-route'), [first.at], 'one call on one node');
    assert.equal(o.app.sfu.getRoom('acme', 'browser-route')!.peers.size, 3);
    for (const page of [alice, bob])
      assert.ok(!(await events(page)).some((e) => e.startsWith('error')), 'the redirect is not seen');

    // o dies: it stops accepting connections and its sockets drop without a goodbye, as when its process is killed
    // (the procs part kills node processes with SIGKILL). Alice's page was served by o: her SDK must rejoin elsewhere.
    closed.add(o);
    o.app.server.close();
    for (const ws of o.app.websocketServer.clients) ws.terminate();
    await o.close();
    for (const [name, page] of [
      ['alice', alice],
      ['bob', bob],
    ] as const) {
      await waitFor(
        `${name} to rejoin`,
        () => events(page),
        (e) => e.includes('reconnected'),
        60_000,
      );
      await seesTheOther(name, page);
    }
    const survivors = servingNodes('browser-route');
    assert.equal(survivors.length, 1, 'one call again, on a live node');
    assert.equal(named(survivors[0]!).app.sfu.getRoom('acme', 'browser-route')!.peers.size, 2);
  } finally {
    await browser.close();
  }
});
