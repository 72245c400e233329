/**
 * A room that spans two nodes (cascading). Node A (region eu-west) holds the room; a join for it reaches node B
 * (region eu-east) for a tenant with region affinity, so B serves the participant and extends the room over a
 * link to A: SRTP pipe transports between the nodes' routers, and an authenticated WebSocket for who is in the room.
 * Both gateways run in this process on one PostgreSQL server and one ClickHouse endpoint (a separate process), as
 * test/cluster-state.test.ts does; participants are ffmpeg RTP bots and RTP sinks, plus one signaling client on B.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import type { types as ms } from 'mediasoup';
import { afterAll, beforeAll, beforeEach, test } from 'vitest';
import WebSocket from 'ws';
import { LINK_PATH } from '../src/cascade/index.js';
import type { Room } from '../src/media/index.js';
import { waitFor } from './helpers/browser.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import type { FfmpegBot } from './helpers/ffmpegBot.js';
import { nextNotification, startGateway, TENANT_ADMIN_KEY, type TestGateway } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';
import { recordersWithSegment } from './helpers/recording.js';
import { flowing, startLoopBot, startSink } from './helpers/rtpSink.js';

let pg: PostgresServer;
let chdb: Awaited<ReturnType<typeof startChdbHttp>>;
let chdbDir: string;
let a: TestGateway;
let b: TestGateway;

beforeAll(async () => {
  pg = await startPostgres();
  chdbDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chdb-'));
  chdb = await startChdbHttp(chdbDir);
  const node = async (id: string, region: string) => {
    const gw = await startGateway({
      node: { id, region },
      nodes: { heartbeatSeconds: 1, deadAfterSeconds: 6 },
      database: { url: pg.url },
      clickhouse: { url: chdb.url },
      writer: { flushIntervalMs: 100 },
      media: { workers: 1 },
      // A join that extends a room waits for the link; on a loaded 2-core machine that was seen beyond 10 s.
      signaling: { joinTimeoutMs: 60_000 },
      acmeRegionAffinity: true,
    });
    // The public URL is known once the gateway listens: published now rather than at the next heartbeat.
    await gw.app.nodes.registry.heartbeat();
    return gw;
  };
  a = await node('node-a', 'eu-west');
  b = await node('node-b', 'eu-east');
});

// A failed test prints what the two gateways warned of (a refused link, a dial that failed, and why): CI keeps no other
// trace of them. Seen once in CI: the first two joins on B answered UNAVAILABLE within milliseconds, then every later
// one worked.
beforeEach(({ onTestFailed }) =>
  onTestFailed(() => {
    for (const [name, node] of [
      ['A', a],
      ['B', b],
    ] as const)
      for (const line of node?.logs().split('\n') ?? [])
        if (/"level":(40|50|60)/.test(line)) console.error(`[node ${name}] ${line}`);
  }),
);

afterAll(async () => {
  await b?.close();
  await a?.close();
  await chdb?.stop();
  await pg?.stop();
  rmSync(chdbDir, { recursive: true, force: true });
});

/** Opens `roomId` on node A with a bot in it, and waits until the room is placed on A. */
async function roomOnA(roomId: string, tenant = 'acme'): Promise<{ room: Room; bot: FfmpegBot }> {
  const room = await a.app.sfu.getOrCreateRoom(tenant, roomId, a.app.rooms.optionsFor(tenant, roomId));
  const bot = await startLoopBot(room, `bot-a-${roomId}`);
  await waitFor(
    'the room placed on node A',
    () => a.app.rooms.placement(tenant, roomId),
    (p) => p?.nodeId === 'node-a',
  );
  return { room, bot };
}

/** A REST call to a node, as a business app behind a load balancer would make it. */
async function api(node: TestGateway, method: string, url: string, body?: object) {
  const res = await fetch(`${node.url}${url}`, {
    method,
    headers: { 'x-api-key': TENANT_ADMIN_KEY.key, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, text: await res.text() };
}

async function joinOnB(roomId: string, identity: string) {
  const client = await b.connect();
  const joined = await client.request('join', { token: await b.mint({ room: roomId, identity }) });
  return { client, joined };
}

test('a join on a node of another region extends the room: one call, media both ways over SRTP, recorded per node', async () => {
  await a.app.rooms.declare('acme', 'spans', { recordingPolicy: 'always' });
  await waitFor(
    "node B to see the room's declaration",
    async () => b.app.rooms.get('acme', 'spans')?.options.recordingPolicy,
    (p) => p === 'always',
  );
  const { room: roomA, bot: botA } = await roomOnA('spans');

  // Bea joins through node B: the room is extended there, in the owner's call, with A's participant in it.
  const { joined } = await joinOnB('spans', 'bea');
  assert.equal(joined.callId, roomA.callId, 'the participant on B is in the call of node A');
  const roomB = b.app.sfu.getRoom('acme', 'spans')!;
  assert.ok(roomB, 'the room is open on node B');
  assert.equal(roomB.callId, roomA.callId);
  const seen = (joined.peers as Array<{ peerId: string; producers: Array<{ producerId: string }> }>).find(
    (p) => p.peerId === botA.peer.id,
  );
  assert.ok(seen, `the participant on B sees A's participant: ${JSON.stringify(joined.peers)}`);
  await waitFor(
    "A's track to be announced on B",
    async () => roomB.peers.get(botA.peer.id)?.producers.has(botA.producer.id),
    (has) => has === true,
  );

  // A participant on B sends too; each node has a receiver of the other's track.
  const botB = await startLoopBot(roomB, 'bot-b');
  await waitFor(
    "B's track to be announced on A",
    async () => roomA.peers.get(botB.peer.id)?.producers.has(botB.producer.id),
    (has) => has === true,
  );
  const sinkA = await startSink(roomA, 'sink-a');
  const sinkB = await startSink(roomB, 'sink-b');
  await flowing(await sinkA.consume(botB.producer.id), "RTP from B's participant to a receiver on A");
  await flowing(await sinkB.consume(botA.producer.id), "RTP from A's participant to a receiver on B");

  // The link: one pipe transport on each node, SRTP on both, carrying media both ways.
  const [linkA] = [...a.app.cascade.links];
  const [linkB] = [...b.app.cascade.links];
  assert.ok(linkA && linkB, 'each node holds the link');
  assert.equal(linkA.role, 'owner');
  assert.equal(linkB.role, 'edge');
  for (const [name, link] of [
    ['A', linkA],
    ['B', linkB],
  ] as const) {
    const t = link.transport!;
    assert.ok(t.srtpParameters?.keyBase64, `node ${name}'s pipe transport has SRTP`);
    const [stats] = (await t.getStats()) as ms.PipeTransportStat[];
    assert.ok((stats?.bytesReceived ?? 0) > 10_000, `node ${name}'s pipe transport received media`);
  }

  // One call in ClickHouse: each node writes its own participants' events, under A's call id, and no stand-in's.
  const rows = await waitFor(
    'the joins of both nodes in ClickHouse',
    () =>
      a.query<{ call_id: string; node: string; peer_id: string }>(
        `SELECT call_id, node, peer_id FROM vigie.call_events WHERE room = 'spans' AND event = 'peer.joined'`,
      ),
    (r) => r.length >= 5,
  );
  assert.deepEqual([...new Set(rows.map((r) => r.call_id))], [roomA.callId], 'one call id');
  const joinedOn = (nodeId: string) =>
    rows
      .filter((r) => r.node === nodeId)
      .map((r) => r.peer_id)
      .sort();
  assert.deepEqual(joinedOn('node-a'), [botA.peer.id, sinkA.peer.id].sort());
  assert.deepEqual(joinedOn('node-b'), [joined.peerId, botB.peer.id, sinkB.peer.id].sort());

  // Each node records its own sender, once: one recording per participant.
  await waitFor(
    'a recorder on each node',
    async () => [await recordersWithSegment(a.config.dataDir, 0), await recordersWithSegment(b.config.dataDir, 0)],
    ([onA, onB]) => onA === 1 && onB === 1,
    120_000,
  );
  assert.deepEqual([...a.app.recording!.service.recorderPids(roomA).keys()], [botA.peer.id]);
  assert.deepEqual([...b.app.recording!.service.recorderPids(roomB).keys()], [botB.peer.id]);
});

test('a track crosses the link only while something on the other node receives it', async () => {
  const { room: roomA, bot: botA } = await roomOnA('demand');
  // A participant on B who receives nothing: the room extends there, and A's track is announced to it.
  const { client } = await joinOnB('demand', 'dora');
  const roomB = b.app.sfu.getRoom('acme', 'demand')!;
  await waitFor(
    "A's track to be announced on B",
    async () => roomB.peers.get(botA.peer.id)?.producers.has(botA.producer.id),
    (has) => has === true,
  );
  const link = [...a.app.cascade.links].find((l) => l.room === roomA)!;
  const crossing = () => link.sending(botA.producer.id);
  assert.equal(crossing(), false, 'nobody on B receives it: it does not cross');
  assert.equal(roomB.isWanted(botA.producer.id), false);

  // A receiver on B: the track crosses, and reaches it.
  const sinkB = await startSink(roomB, 'sink-demand');
  const consumer = await sinkB.consume(botA.producer.id);
  await flowing(consumer, "RTP from A's participant to the receiver on B");
  assert.equal(crossing(), true, 'received on B: it crosses');

  // Paused by its receiver, the track stops crossing; resumed, it crosses again; once its consumer is gone, not.
  for (const [paused, expected] of [
    [true, false],
    [false, true],
  ] as const) {
    await roomB.setConsumerPaused(sinkB.peer, consumer.id, paused);
    await waitFor(
      `the track ${expected ? 'crossing again' : 'no longer crossing'}`,
      async () => crossing(),
      (c) => c === expected,
    );
  }
  consumer.close();
  await waitFor(
    'the track no longer crossing once nothing on B receives it',
    async () => crossing(),
    (c) => c === false,
  );
  await client.request('leave', {});
});

test('moderating a participant of the other node through the owner acts on the node that serves it', async () => {
  const { room: roomA } = await roomOnA('moderated');
  const { joined } = await joinOnB('moderated', 'bea');
  const roomB = b.app.sfu.getRoom('acme', 'moderated')!;
  const botB = await startLoopBot(roomB, 'bot-b-moderated');
  await waitFor(
    "B's track to stand in on A",
    async () => roomA.peers.get(botB.peer.id)?.producers.has(botB.producer.id),
    (has) => has === true,
  );
  const onA = (method: string, url: string, body?: object) => api(a, method, url, body);

  // Muted through A: the track is paused where its sender is, so every node stops receiving it.
  const muted = await onA('POST', `/v1/rooms/moderated/participants/${botB.peer.id}/mute`, { kind: 'video' });
  assert.equal(muted.status, 200, muted.text);
  assert.deepEqual(JSON.parse(muted.text).muted, [botB.producer.id]);
  assert.equal(botB.producer.paused, true, "the producer on B is paused, not only A's stand-in");

  // Removed through A: the participant leaves B, and is banned there under their own identity.
  const removed = await onA('DELETE', `/v1/rooms/moderated/participants/${joined.peerId}`);
  assert.equal(removed.status, 204, removed.text);
  assert.equal(roomB.peers.has(joined.peerId), false, 'gone from the node that served them');
  await waitFor(
    'the participant gone from the owner too',
    async () => roomA.peers.has(joined.peerId),
    (has) => !has,
  );
  assert.equal(b.app.roomBans.isBanned('acme', 'moderated', 'bea'), true, 'banned under their identity');
});

test('a recording started on one node of the call starts on the other, and stops there too', async () => {
  const { room: roomA, bot: botA } = await roomOnA('relayed');
  const { client } = await joinOnB('relayed', 'rhea');
  const roomB = b.app.sfu.getRoom('acme', 'relayed')!;
  const botB = await startLoopBot(roomB, 'bot-b-relayed');
  await waitFor(
    "B's track to stand in on A",
    async () => roomA.peers.get(botB.peer.id)?.producers.has(botB.producer.id),
    (has) => has === true,
  );
  const recording = (gw: TestGateway) => gw.app.recording!.service;

  // Started through the owner: B records its own participant.
  const started = await api(a, 'POST', '/v1/rooms/relayed/recording', { action: 'start' });
  assert.equal(started.status, 200, started.text);
  await waitFor(
    "a recorder of B's participant on B",
    async () => [...recording(b).recorderPids(roomB).keys()],
    (ids) => ids.includes(botB.peer.id),
    60_000,
  );
  assert.deepEqual([...recording(a).recorderPids(roomA).keys()], [botA.peer.id], 'A records its own participant');

  // Stopped through the edge (the room is open there): A stops too.
  const stopped = await api(b, 'POST', '/v1/rooms/relayed/recording', { action: 'stop' });
  assert.equal(stopped.status, 200, stopped.text);
  await waitFor(
    'the recording stopped on A',
    async () => recording(a).isRecording(roomA),
    (on) => on === false,
  );
  await client.request('leave', {});
});

test("a link message of a kind this node does not know (a newer node's) is ignored: the call goes on", async () => {
  const { room: roomA } = await roomOnA('newer');
  await joinOnB('newer', 'nia');
  const roomB = b.app.sfu.getRoom('acme', 'newer')!;
  const linkA = [...a.app.cascade.links].find((l) => l.room === roomA)!;
  const linkB = [...b.app.cascade.links].find((l) => l.room === roomB)!;
  linkA.socket.send(JSON.stringify({ t: 'from-a-newer-version', anything: [1, 2] }));
  // What follows on the link is still mirrored: a participant who arrives on A after it stands in on B.
  const late = await startLoopBot(roomA, 'bot-a-late');
  await waitFor(
    "the late participant's track announced on B",
    async () => roomB.peers.get(late.peer.id)?.producers.has(late.producer.id),
    (has) => has === true,
  );
  assert.equal(linkB.closed, false, 'the link is open');
  assert.equal(roomB.closed, false, 'the extension is open');
  // A message of a known kind that does not hold is still a broken link.
  linkA.socket.send(JSON.stringify({ t: 'producerClosed' }));
  await waitFor(
    'the extension closed on a malformed message',
    async () => roomB.closed,
    (c) => c,
  );
});

test('a demand for a track that ends meanwhile leaves the link open', async () => {
  const { room: roomA } = await roomOnA('ending');
  await joinOnB('ending', 'eve');
  const roomB = b.app.sfu.getRoom('acme', 'ending')!;
  const leaving = await startLoopBot(roomA, 'bot-a-leaving');
  await waitFor(
    "the leaving participant's track announced on B",
    async () => roomB.peers.get(leaving.peer.id)?.producers.has(leaving.producer.id),
    (has) => has === true,
  );
  const linkA = [...a.app.cascade.links].find((l) => l.room === roomA)!;
  // B wants the track just as it ends on A: the pipe consumer is gone by the time A acts on the demand.
  leaving.producer.close();
  linkA.socket.emit(
    'message',
    Buffer.from(JSON.stringify({ t: 'demand', producerId: leaving.producer.id, wanted: true })),
  );
  await waitFor(
    'the ended track gone from B',
    async () => roomB.peers.get(leaving.peer.id)?.producers.has(leaving.producer.id),
    (has) => has !== true,
  );
  assert.equal(linkA.closed, false, 'the link is open');
  assert.equal(roomB.closed, false, 'the extension is open');
});

test('a node link is refused without a valid token for that very call', async () => {
  const { room } = await roomOnA('guarded');
  const links = a.app.cascade.links.size;
  const url = new URL(LINK_PATH, a.wsUrl);
  url.search = new URLSearchParams({ tenant: 'acme', room: 'guarded', callId: room.callId }).toString();
  const status = (headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('error', reject);
    });
  const token = (key: string, claims: { aud?: string; callId?: string } = {}) =>
    new SignJWT({ callId: claims.callId ?? room.callId })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('node-b')
      .setAudience(claims.aud ?? 'node-a')
      .setSubject('acme/guarded')
      .setIssuedAt()
      .setExpirationTime('30s')
      .sign(new TextEncoder().encode(key));
  assert.equal(await status({}), 401, 'no token');
  assert.equal(await status({ authorization: `Bearer ${await token('not-the-cluster-secret')}` }), 401, 'wrong key');
  // A participant's join token (signed with the tenants' HS256 secret) is not a node's.
  const join = await a.mint({ room: 'guarded', identity: 'mallory' });
  assert.equal(await status({ authorization: `Bearer ${join}` }), 401, 'a join token');
  assert.equal(a.app.cascade.links.size, links, 'no link was opened');
  assert.ok(!a.logs().includes(join), 'the refused token is not logged');
});

test('closing the room on the owner closes its extension; the last participant leaving B ends the link', async () => {
  const { room: roomA, bot: botA } = await roomOnA('ends');
  const first = await joinOnB('ends', 'cleo');
  const roomB = b.app.sfu.getRoom('acme', 'ends')!;
  assert.equal(roomB.callId, roomA.callId);
  await waitFor(
    "B's participant to stand in on A",
    async () => roomA.peers.has(first.joined.peerId),
    (has) => has,
  );

  // Leaving B: its room there closes, and its participant is gone from A; A's call goes on.
  await first.client.request('leave', {});
  await waitFor(
    'the extension on B to close',
    async () => roomB.closed,
    (c) => c,
  );
  await waitFor(
    "B's participant to leave the room on A",
    async () => roomA.peers.has(first.joined.peerId),
    (has) => !has,
  );
  assert.equal(roomA.closed, false);
  assert.ok(roomA.peers.has(botA.peer.id));

  // Joined again, then the owner closes the room: the participant on B hears it, and the extension closes.
  const second = await joinOnB('ends', 'cleo');
  const roomB2 = b.app.sfu.getRoom('acme', 'ends')!;
  assert.equal(roomB2.callId, roomA.callId);
  const closed = nextNotification(second.client, 'roomClosed');
  roomA.close('closed-by-api');
  assert.equal((await closed).reason, 'closed-by-api');
  await waitFor(
    'the extension on B to close',
    async () => roomB2.closed,
    (c) => c,
  );
  await waitFor(
    'no link of the room left',
    async () => [...a.app.cascade.links, ...b.app.cascade.links].filter((l) => l.room.id === 'ends').length,
    (n) => n === 0,
  );
});

test('a link that goes silent is found dead: the extension closes, and the owner drops its participants', async () => {
  const { room: roomA } = await roomOnA('silent');
  const { client, joined } = await joinOnB('silent', 'dan');
  await waitFor(
    "B's participant to stand in on A",
    async () => roomA.peers.has(joined.peerId),
    (has) => has,
  );
  const linkA = [...a.app.cascade.links].find((l) => l.room === roomA)!;
  // Node A stops reading its end (as a frozen process or a cut network would): no message, no pong reaches B.
  const closed = nextNotification(client, 'roomClosed', 30_000);
  linkA.socket.pause();
  // Either end may find the link dead first: B (no pong from A), or A (it reads nothing either), which then cuts
  // the connection B sees closing.
  assert.match((await closed).reason, /^cascade-link-(dead|closed)$/);
  await waitFor(
    "B's participant to leave the room on A",
    async () => roomA.peers.has(joined.peerId),
    (has) => !has,
    30_000,
  );
  assert.equal(roomA.closed, false, "A's call goes on");
});

test('a tenant without region affinity is not extended: the join is sent to the owner (REDIRECT)', async () => {
  const { room } = await roomOnA('alone', 'globex');
  const client = await b.connect();
  const joining = client.request('join', {
    token: await b.mint({ tenant: 'globex', room: 'alone', identity: 'gus' }),
  });
  await assert.rejects(joining, (err: { code?: string; redirect?: { nodeId: string } }) => {
    assert.equal(err.code, 'REDIRECT');
    assert.equal(err.redirect?.nodeId, 'node-a');
    return true;
  });
  assert.equal(b.app.sfu.getRoom('globex', 'alone'), undefined, 'no room of its own opened on node B');
  assert.equal(a.app.sfu.getRoom('globex', 'alone'), room);
});

test("a recording started on the edge starts on the owner in the same session; a stop on the owner stops the edge's", async () => {
  const { room: roomA } = await roomOnA('relayed');
  const { joined } = await joinOnB('relayed', 'eve');
  const roomB = b.app.sfu.getRoom('acme', 'relayed')!;
  await waitFor(
    "B's participant to stand in on A",
    async () => roomA.peers.has(joined.peerId),
    (has) => has,
  );
  const [onA, onB] = [a.app.recording!.service, b.app.recording!.service];
  const { recordingId } = await onB.start(roomB, 'test');
  await waitFor(
    'the owner to record in the same session',
    async () => onA.recordingId(roomA),
    (id) => id === recordingId,
  );
  await onA.stop(roomA, 'stopped-by-api');
  await waitFor(
    "the edge's recording to stop",
    async () => onB.isRecording(roomB),
    (recording) => !recording,
  );
  assert.equal(onA.isRecording(roomA), false, 'the echo of the stop does not start the owner again');
});
