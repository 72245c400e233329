import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import net from 'node:net';
import { WebSocket } from 'ws';
import { RoomBans } from '../src/media/index.js';
import { SignalingClient } from '../src/sdk/SignalingClient.js';
import { ROOMS_WRITE_KEY, expectCode, nextNotification, startGateway, type TestGateway } from './helpers/gateway.js';
import { waitFor } from './helpers/browser.js';

/**
 * The life of a session: heartbeat, join race, token refresh, removal and
 * remote mute, each against a real gateway and real mediasoup. Graceful drain:
 * test/drain.test.ts.
 */
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({
    signaling: { heartbeatTimeoutMs: 3000, tokenRefreshLeadSeconds: 4 },
    // No tolerance on exp: a request after the first token's expiry is really after it.
    auth: { clockSkewSeconds: 0 },
  });
});
afterAll(() => gw.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const api = async (method: string, url: string, body?: unknown) => {
  const res = await fetch(`${gw.url}${url}`, {
    method,
    headers: {
      'x-api-key': ROOMS_WRITE_KEY.key,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: res.status === 204 ? undefined : await res.json() };
};
const peerOf = (room: string, identity: string) =>
  [...(gw.app.sfu.getRoom('acme', room)?.peers.values() ?? [])].find((p) => p.identity === identity);

/** Valid Opus parameters: mediasoup accepts them on a send transport that is not even connected. */
const opus = {
  mid: '0',
  codecs: [
    { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: {}, rtcpFeedback: [] },
  ],
  headerExtensions: [],
  encodings: [{ ssrc: 11111111 }],
  rtcp: { cname: 'sessions-test' },
};
async function publishAudio(c: SignalingClient): Promise<string> {
  const send = await c.request('createWebRtcTransport', { direction: 'send' });
  return (
    await c.request('produce', { transportId: send.transportId, kind: 'audio', rtpParameters: opus, source: 'mic' })
  ).producerId;
}

test('heartbeat: a peer that stops answering (no close frame) is removed with reason "timeout"; a quiet live one stays', async () => {
  const watcher = await gw.connect();
  await watcher.request('join', { token: await gw.mint({ room: 'heartbeat', identity: 'watcher' }) });

  // A raw client that joins, then stops reading its socket: it answers no ping
  // and sends nothing, but never closes; the TCP connection stays up.
  const silent = new WebSocket(gw.wsUrl);
  await new Promise((r, j) => {
    silent.once('open', r);
    silent.once('error', j);
  });
  const token = await gw.mint({ room: 'heartbeat', identity: 'silent' });
  const silentJoined = await new Promise<any>((resolve) => {
    silent.once('message', (d) => resolve(JSON.parse(d.toString())));
    silent.send(JSON.stringify({ id: 2, method: 'join', data: { token } }));
  });
  assert.equal(silentJoined.ok, true);
  const left = nextNotification(watcher, 'peerLeft', 15_000, (d: any) => d.peerId === silentJoined.data.peerId);
  (silent as unknown as { _socket: { pause(): void } })._socket.pause();

  assert.equal((await left).reason, 'timeout');
  assert.equal(peerOf('heartbeat', 'silent'), undefined, 'the silent peer is gone from the room');
  // The watcher said nothing all that time either, but its client answered the pings.
  await sleep(3500);
  assert.ok(peerOf('heartbeat', 'watcher'), 'a quiet but live connection is kept');
  await watcher.request('getRouterRtpCapabilities');
  silent.terminate();
});

test('heartbeat, client side: when the network is cut, the SDK client gives up on the connection (4009) rather than wait for TCP, and the server drops the peer', async () => {
  // A TCP relay between client and gateway, whose "cut" stops forwarding both ways without closing anything.
  let cut!: () => void;
  const relay = net.createServer((client) => {
    const upstream = net.connect(Number(new URL(gw.url).port), '127.0.0.1');
    client.pipe(upstream);
    upstream.pipe(client);
    for (const s of [client, upstream]) s.on('error', () => undefined);
    cut = () => {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    };
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  try {
    const c = new SignalingClient(
      new WebSocket(`ws://127.0.0.1:${(relay.address() as net.AddressInfo).port}/ws`) as never,
    );
    await c.opened;
    const joined = await c.request('join', { token: await gw.mint({ room: 'hb-client', identity: 'behind-relay' }) });
    assert.equal(joined.heartbeatTimeoutMs, 3000, 'the server tells the client its heartbeat');
    const closed = new Promise<{ code: number; reason: string }>((r) => c.on('close', r));
    c.keepAlive(joined.heartbeatTimeoutMs);
    await sleep(2500);
    assert.equal(c.closeInfo, undefined, 'answered pings keep the connection');

    cut();
    const outcome = await Promise.race([
      closed,
      new Promise((r) => setTimeout(r, 15_000, 'no close within 15 s').unref()),
    ]);
    assert.deepEqual(outcome, { code: 4009, reason: 'heartbeat timeout' });
    await waitFor(
      'the server to drop the peer too',
      async () => peerOf('hb-client', 'behind-relay'),
      (p) => p === undefined,
      15_000,
    );
  } finally {
    relay.close();
  }
});

test('join race: a socket that closes while its join waits for the room never adds a peer', async () => {
  // Hold room creation until the client is gone, so the race is certain, not likely.
  const sfu = gw.app.sfu;
  const real = sfu.getOrCreateRoom.bind(sfu);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let entered = 0;
  sfu.getOrCreateRoom = async (...args: Parameters<typeof real>) => {
    entered++;
    await gate;
    return real(...args);
  };
  try {
    const ws = new WebSocket(gw.wsUrl);
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    ws.send(
      JSON.stringify({ id: 1, method: 'join', data: { token: await gw.mint({ room: 'race', identity: 'ghost' }) } }),
    );
    await waitFor(
      'the join to wait for its room',
      async () => entered,
      (n) => n === 1,
    );
    ws.terminate();
    await sleep(300);
    release();
    await sleep(500);
  } finally {
    sfu.getOrCreateRoom = real;
  }
  assert.equal(peerOf('race', 'ghost'), undefined, 'no peer for a closed session');
  await waitFor(
    'the room the failed join opened to close',
    async () => gw.app.sfu.getRoom('acme', 'race'),
    (r) => r === undefined,
    5000,
  );

  // Without a gate too: joins whose sockets drop at once, many times over.
  for (let i = 0; i < 10; i++) {
    const ws = new WebSocket(gw.wsUrl);
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    ws.send(
      JSON.stringify({
        id: 1,
        method: 'join',
        data: { token: await gw.mint({ room: `race-${i}`, identity: 'ghost' }) },
      }),
    );
    ws.terminate();
  }
  await sleep(1500);
  for (let i = 0; i < 10; i++) assert.equal(peerOf(`race-${i}`, 'ghost'), undefined, `race-${i}`);
});

test('token expiry in a long call: the server sends a fresh token before exp; requests after the first exp work, and a rejoin uses the fresh token', async () => {
  const firstToken = await gw.mint({ room: 'long-call', identity: 'marathon', ttlSeconds: 8 });
  const firstExp = JSON.parse(Buffer.from(firstToken.split('.')[1]!, 'base64url').toString()).exp as number;
  const c = await gw.connect();
  const refreshed = nextNotification<{ token: string; expiresAt: number }>(c, 'tokenRefreshed', 15_000);
  await c.request('join', { token: firstToken });
  const fresh = await refreshed;
  assert.ok(fresh.expiresAt > firstExp, 'the new token outlives the first');
  assert.ok(Date.now() / 1000 < firstExp, 'sent before the first token expired');
  const claims = await gw.app.tokens.verify(fresh.token);
  assert.deepEqual(
    [claims.tenant, claims.room, claims.identity, [...claims.grants].sort()],
    ['acme', 'long-call', 'marathon', ['publish', 'subscribe']],
  );

  await waitFor(
    'the first token to expire',
    async () => Date.now() / 1000,
    (now) => now > firstExp + 1,
    15_000,
  );
  await c.request('getRouterRtpCapabilities');
  assert.deepEqual(await c.request('clientStats', { tracks: [] }), { accepted: 0 });
  await expectCode(
    gw.connect().then((other) => other.request('join', { token: firstToken })),
    'UNAUTHORIZED',
  );

  // The SDK rejoins with the token it was last sent.
  const rejoin = await gw.connect();
  const again = await rejoin.request('join', { token: fresh.token });
  assert.equal(again.room, 'long-call');
  assert.equal(gw.app.sfu.getRoom('acme', 'long-call')!.peers.size, 1, 'the rejoin replaced the first session');
});

test('removal means removal: a removed identity cannot rejoin until its token expires or the ban is lifted', async () => {
  const stays = await gw.connect();
  await stays.request('join', { token: await gw.mint({ room: 'ban', identity: 'stays' }) });
  const token = await gw.mint({ room: 'ban', identity: 'troll' });
  const troll = await gw.connect();
  const joined = await troll.request('join', { token });
  const removed = nextNotification(troll, 'removed');
  assert.equal((await api('DELETE', `/v1/rooms/ban/participants/${joined.peerId}`)).status, 204);
  await removed;

  await expectCode(
    gw.connect().then((c) => c.request('join', { token })),
    'FORBIDDEN',
  );
  // A new token for the same identity does not get round it.
  await expectCode(
    gw.connect().then(async (c) => c.request('join', { token: await gw.mint({ room: 'ban', identity: 'troll' }) })),
    'FORBIDDEN',
  );
  // Only that identity, only that room.
  await (await gw.connect()).request('join', { token: await gw.mint({ room: 'ban', identity: 'other' }) });
  await (await gw.connect()).request('join', { token: await gw.mint({ room: 'elsewhere', identity: 'troll' }) });
  // Kept across a restart: the ban table names no one in clear, and is read back.
  const reopened = await RoomBans.open({ db: gw.app.db, log: gw.app.log });
  onTestFinished(() => reopened.close());
  assert.ok(reopened.isBanned('acme', 'ban', 'troll'));
  const { rows } = await gw.app.db.query('SELECT * FROM room_bans');
  assert.ok(rows.length > 0 && !JSON.stringify(rows).includes('troll'));

  assert.deepEqual((await api('POST', '/v1/rooms/ban/bans/lift', { identity: 'troll' })).body, { lifted: true });
  const back = await (await gw.connect()).request('join', { token });
  assert.equal(back.room, 'ban');
  assert.deepEqual((await api('POST', '/v1/rooms/ban/bans/lift', { identity: 'troll' })).body, { lifted: false });
});

test('remote mute is enforced: the muted track cannot be resumed, even after a rejoin, until a moderator unmutes it', async () => {
  const token = await gw.mint({ room: 'mute', identity: 'loud' });
  const c = await gw.connect();
  const joined = await c.request('join', { token });
  const producerId = await publishAudio(c);
  const muted = nextNotification(c, 'mutedByServer');
  assert.deepEqual((await api('POST', `/v1/rooms/mute/participants/${joined.peerId}/mute`, { kind: 'audio' })).body, {
    muted: [producerId],
  });
  assert.deepEqual(await muted, { producerId, kind: 'audio' });
  await expectCode(c.request('resumeProducer', { producerId }), 'FORBIDDEN');
  assert.equal(peerOf('mute', 'loud')!.producers.get(producerId)!.paused, true);
  await c.request('pauseProducer', { producerId });

  // Reconnecting does not lift it: the new session's audio starts paused and stays so.
  const c2 = await gw.connect();
  const mutedAgain = nextNotification(c2, 'mutedByServer');
  const rejoined = await c2.request('join', { token });
  const producer2 = await publishAudio(c2);
  assert.equal((await mutedAgain).producerId, producer2);
  assert.equal(peerOf('mute', 'loud')!.producers.get(producer2)!.paused, true);
  await expectCode(c2.request('resumeProducer', { producerId: producer2 }), 'FORBIDDEN');

  const unmuted = nextNotification(c2, 'unmutedByServer');
  assert.deepEqual((await api('POST', `/v1/rooms/mute/participants/${rejoined.peerId}/unmute`, {})).body, {
    unmuted: [producer2],
  });
  assert.equal((await unmuted).producerId, producer2);
  assert.equal(
    peerOf('mute', 'loud')!.producers.get(producer2)!.paused,
    true,
    'unmuting lets the participant turn it on; it does not turn it on',
  );
  await c2.request('resumeProducer', { producerId: producer2 });
  assert.equal(peerOf('mute', 'loud')!.producers.get(producer2)!.paused, false);
});
