import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import type { types as ms } from 'mediasoup';
import {
  ROOMS_WRITE_KEY,
  TENANT_ADMIN_KEY,
  nextNotification,
  startGateway,
  type TestGateway,
} from './helpers/gateway.js';
import { recordersWithSegment } from './helpers/recording.js';
import { flowing, startLoopBot, startSink } from './helpers/rtpSink.js';
import { encodedLoop, startFfmpegBot } from './helpers/ffmpegBot.js';
import { waitFor } from './helpers/browser.js';

// A budget of two consumers per router: a handful of ffmpeg bots and RTP sinks spread a room over both workers.
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ media: { workers: 2, routerConsumerBudget: 2 } });
});
afterAll(() => gw.close());

/** Two bots and three sinks: the first router fills up, the second bot and the third sink land on another worker. */
async function spreadRoom(roomId: string) {
  const room = await gw.app.sfu.getOrCreateRoom('acme', roomId);
  const a = await startLoopBot(room, 'a');
  const s1 = await startSink(room, 's1');
  const s2 = await startSink(room, 's2');
  const s1FromA = await s1.consume(a);
  await s2.consume(a);
  const b = await startLoopBot(room, 'b');
  const s3 = await startSink(room, 's3');
  return { room, a, b, s1, s2, s3, s1FromA };
}

test('a room past its router consumer budget spreads to another worker, piped both ways, and stays one room', async () => {
  const pipes: ms.Transport[] = [];
  gw.app.sfu.observer.once('newroom', (room) => {
    room.router.observer.on('newtransport', (t) => t.type === 'pipe' && pipes.push(t));
  });
  const { room, a, b, s1, s3, s1FromA } = await spreadRoom('big');
  const [first, second] = room.routers;
  assert.equal(room.routers.length, 2, 'the room has a second router');
  assert.equal(s1.router, room.router, 'the first participants are on the first router');
  assert.equal(room.routerOf(a.peer), first!.router);
  assert.equal(room.routerOf(b.peer), second!.router, 'the second bot is served by the second router');
  assert.equal(s3.router, second!.router);
  assert.notEqual(second!.slot, first!.slot, 'the second router is on the other worker');

  // Media crosses the pipe both ways: a producer on the first router to a consumer on the second, and back.
  const s3FromA = await s3.consume(a);
  const s1FromB = await s1.consume(b);
  await flowing(s3FromA, 'RTP from a (first router) to s3 (second router)');
  await flowing(s1FromB, 'RTP from b (second router) to s1 (first router)');
  await flowing(s1FromA, 'RTP within the first router');
  // Once per producer and router: a second consumer of `a` on the second router reuses its pipe.
  const pipeConsumers = first!.consumers;
  const s4 = await startSink(room, 's4');
  assert.equal(s4.router, second!.router, 'the least-loaded router of a room on every worker takes a newcomer');
  await flowing(await s4.consume(a), 'RTP from a to s4 through the same pipe');
  assert.equal(first!.consumers, pipeConsumers, 'no second pipe consumer of a on the first router');

  // Load, for the node registry: each router's consumers, pipes included.
  const load = gw.app.sfu.load();
  const mine = load.routers.filter((r) => r.room === 'big');
  assert.deepEqual(
    mine.map((r) => r.routerId),
    [first!.router.id, second!.router.id],
  );
  assert.deepEqual(
    mine.map((r) => r.peers),
    [3, 3],
  );
  assert.equal(mine[0]!.consumers, first!.consumers);
  assert.ok(mine[0]!.consumers >= 4 && mine[1]!.consumers >= 3, JSON.stringify(mine));
  assert.equal(load.peers, 6);
  assert.equal(
    load.consumers,
    load.routers.reduce((n, r) => n + r.consumers, 0),
  );

  // One peer list, whatever the router: the REST API and a newcomer's join see all six.
  const listed = await gw.app.inject({
    url: '/v1/rooms/big/participants',
    headers: { 'x-api-key': ROOMS_WRITE_KEY.key },
  });
  assert.equal(listed.statusCode, 200);
  assert.deepEqual(
    listed
      .json()
      .participants.map((p: { identity: string }) => p.identity)
      .sort(),
    ['bot:a', 'bot:b', 'sink:s1', 'sink:s2', 'sink:s3', 'sink:s4'],
  );
  const watcher = await gw.connect();
  const joined = await watcher.request('join', { token: await gw.mint({ room: 'big', identity: 'watcher' }) });
  assert.equal(joined.callId, room.callId);
  assert.equal(joined.peers.length, 6);

  // Mute through the REST API of a participant on the second router: its consumer on the first router pauses.
  const muted = await gw.app.inject({
    method: 'POST',
    url: `/v1/rooms/big/participants/${b.peer.id}/mute`,
    headers: { 'x-api-key': ROOMS_WRITE_KEY.key },
    payload: { kind: 'video' },
  });
  assert.equal(muted.statusCode, 200);
  assert.deepEqual(muted.json().muted, [b.producer.id]);
  await waitFor(
    "s1's consumer of b to see its producer paused",
    async () => s1FromB.producerPaused,
    (p) => p,
  );

  // One call: every event of the room carries one call id.
  const callIds = await waitFor(
    'call events of both routers',
    () => gw.query<{ call_id: string }>("SELECT DISTINCT call_id FROM vigie.call_events WHERE room = 'big'"),
    (rows) => rows.length > 0,
  );
  assert.deepEqual(
    callIds.map((r) => r.call_id),
    [room.callId],
  );
  const consumersSeen = await gw.query<{ n: string }>(
    "SELECT count() AS n FROM vigie.call_events WHERE room = 'big' AND event = 'consumer.created'",
  );
  assert.equal(Number(consumersSeen[0]!.n), 5, 'consumers on both routers are recorded in the same call');
  // Each row names the worker its consumer is on: s1's and s2's on the first, s3's and s4's on the second.
  const byWorker = await gw.query<{ worker: string; router: string; n: string }>(
    "SELECT attrs['worker'] AS worker, attrs['router'] AS router, count() AS n FROM vigie.call_events " +
      "WHERE room = 'big' AND event = 'consumer.created' GROUP BY worker, router ORDER BY n DESC",
  );
  assert.deepEqual(
    byWorker.map((r) => [r.worker, r.router, Number(r.n)]),
    [
      [String(first!.slot.index), first!.router.id, 3],
      [String(second!.slot.index), second!.router.id, 2],
    ],
  );

  // A producer that closes takes its pipes along: its pipe producer on the second router goes, and its consumers.
  await a.stop();
  await waitFor(
    "a's pipe producer on the second router to close",
    async () => (await second!.router.dump()).mapProducerIdConsumerIds.some((m) => m.key === a.producer.id),
    (present) => !present,
  );
  await waitFor(
    "s3's and s4's consumers of a to close",
    async () => s3FromA.closed && s3.peer.consumers.size === 0,
    (closed) => closed,
  );

  // Closing the room through the API closes both routers and the pipes between them.
  assert.ok(pipes.length > 0, 'pipe transports were created on the first router');
  const closed = await gw.app.inject({
    method: 'DELETE',
    url: '/v1/rooms/big',
    headers: { 'x-api-key': ROOMS_WRITE_KEY.key },
  });
  assert.ok(closed.statusCode < 300, closed.body);
  assert.ok(room.closed);
  assert.ok(first!.router.closed && second!.router.closed, 'both routers closed');
  assert.ok(
    pipes.every((t) => t.closed),
    'pipes closed',
  );
  assert.equal(gw.app.sfu.load().routers.filter((r) => r.room === 'big').length, 0);
  assert.deepEqual(
    gw.app.sfu.pool.slots.map((s) => [s.routers, s.peers]),
    [
      [0, 0],
      [0, 0],
    ],
    'the workers carry nothing once the room is closed',
  );
});

test("a spread room's recording records each participant on the router its tracks are on", async () => {
  const { room, a, b } = await spreadRoom('rec');
  assert.notEqual(room.routerOf(b.peer), room.routerOf(a.peer), 'the two bots are on different routers');
  const recording = (action: 'start' | 'stop') =>
    gw.app.inject({
      method: 'POST',
      url: '/v1/rooms/rec/recording',
      headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
      payload: { action },
    });
  assert.equal((await recording('start')).statusCode, 200);
  await waitFor(
    'a recorder per bot to write a file',
    () => recordersWithSegment(gw.app.config.dataDir, 0),
    (n) => n === 2,
    120_000,
  );
  const stopped = await recording('stop');
  assert.equal(stopped.json().files, 2, 'one file per bot, the one on the second router included');
  assert.ok(await gw.app.recording!.service.drain());
});

test('a worker dying under the second router of a room: its participants rejoin, the call goes on', async () => {
  const { room, a, b, s1, s3, s1FromA } = await spreadRoom('span');
  await s3.consume(a);
  const s1FromB = await s1.consume(b);
  // A signaling participant: both routers are full and on every worker, so it joins the least loaded, the second.
  const c = await gw.connect();
  await c.request('join', { token: await gw.mint({ room: 'span', identity: 'c' }) });
  await c.request('createWebRtcTransport', { direction: 'recv' });
  const [first, second] = room.routers;
  assert.equal(room.routerOf(room.findPeerByIdentity('c')!), second!.router);
  // A voice on the second router is piped to the first, where the room's active-speaker observer listens.
  const voice = await startFfmpegBot(room, {
    kind: 'audio',
    bitrateKbps: 32,
    name: 'v',
    file: await encodedLoop('audio', 32),
  });
  onTestFinished(() => voice.stop());
  assert.equal(room.routerOf(voice.peer), second!.router);
  await waitFor(
    'the voice to reach the active-speaker observer on the first router',
    async () => (await first!.router.dump()).mapProducerIdObserverIds.find((m) => m.key === voice.producer.id),
    (m) => (m?.values.length ?? 0) === 1,
  );

  const closedC = nextNotification(c, 'roomClosed');
  process.kill(second!.slot.worker.pid!, 'SIGKILL');
  // The SDK rejoins on `worker-died` (as when a whole room's worker dies) and is placed on a live router.
  assert.deepEqual(await closedC, { reason: 'worker-died' });
  await waitFor(
    'the second router to be gone',
    async () => room.routers.length,
    (n) => n === 1,
  );
  assert.ok(!room.closed, 'the room stays open for the participants on the first router');
  assert.equal(room.routers[0], first);
  assert.deepEqual(s3.notices.find((n) => n.method === 'roomClosed')?.data, { reason: 'worker-died' });
  assert.deepEqual([...room.peers.values()].map((p) => p.identity).sort(), ['bot:a', 'sink:s1', 'sink:s2']);
  // The pipe's far end closes with the dead router; the worker then tells the consumers on the first router.
  await waitFor(
    "s1's consumer of b (its producer died with the worker) to close, and s1 to be told",
    async () => s1.notices.some((n) => n.method === 'consumerClosed' && n.data.consumerId === s1FromB.id),
    (told) => told && s1FromB.closed,
  );
  assert.ok(
    s1.notices.some((n) => n.method === 'peerLeft' && n.data.peerId === b.peer.id),
    's1 sees b leave',
  );
  const before = (await s1FromA.getStats()).find((s) => s.type === 'outbound-rtp')!.packetCount;
  await waitFor(
    'media on the first router to go on',
    async () => (await s1FromA.getStats()).find((s) => s.type === 'outbound-rtp')?.packetCount ?? 0,
    (n) => n > before + 20,
  );

  // The participant rejoins the same call on the same connection.
  const rejoined = await c.request('join', { token: await gw.mint({ room: 'span', identity: 'c' }) });
  assert.equal(rejoined.callId, room.callId);
  const t = await c.request('createWebRtcTransport', { direction: 'recv' });
  assert.ok(t.iceCandidates.length > 0);
  assert.ok(!room.routerOf(room.findPeerByIdentity('c')!).closed);
});
