import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { startGateway, nextNotification, expectCode, rawFrame, type TestGateway } from './helpers/gateway.js';
import { waitFor } from './helpers/browser.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ signaling: { ratePerSecond: 20, rateBurst: 40 } });
});
afterAll(() => gw.close());

async function openRaw(): Promise<WebSocket> {
  const ws = new WebSocket(gw.wsUrl);
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('error', j);
  });
  return ws;
}

const fakeDtls = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: `${'AB:'.repeat(31)}AB` }] };

test('health and readiness', async () => {
  assert.deepEqual((await gw.app.inject('/healthz')).json(), { status: 'ok' });
  const ready = await gw.app.inject('/readyz');
  assert.equal(ready.statusCode, 200);
  assert.equal(ready.json().workers.length, 2);
});

test('malformed, oversized and out-of-order messages get the right code, and the server keeps serving other peers', async () => {
  // A bystander in the same room, who must keep being served throughout.
  const bystander = await gw.connect();
  await bystander.request('join', { token: await gw.mint({ room: 'bad-input', identity: 'bystander' }) });

  const ws = await openRaw();
  const cases: Array<[string, string | Buffer, string, boolean?]> = [
    ['not JSON', '{oops', 'INVALID_REQUEST'],
    ['JSON array', '[1,2]', 'INVALID_REQUEST'],
    ['no id', JSON.stringify({ method: 'join', data: {} }), 'INVALID_REQUEST'],
    ['no method', JSON.stringify({ id: 1 }), 'INVALID_REQUEST'],
    ['unknown method', JSON.stringify({ id: 2, method: 'reboot' }), 'INVALID_REQUEST'],
    ['prototype key as method', JSON.stringify({ id: 3, method: '__proto__' }), 'INVALID_REQUEST'],
    ['binary frame', Buffer.from([1, 2, 3]), 'INVALID_REQUEST', true],
    [
      'oversized frame',
      JSON.stringify({ id: 4, method: 'join', data: { token: 'x'.repeat(70 * 1024) } }),
      'INVALID_REQUEST',
    ],
    ['request before join', JSON.stringify({ id: 5, method: 'getRouterRtpCapabilities', data: {} }), 'UNAUTHORIZED'],
    ['produce before join', JSON.stringify({ id: 6, method: 'produce', data: {} }), 'INVALID_REQUEST'],
    ['join without token', JSON.stringify({ id: 7, method: 'join', data: {} }), 'INVALID_REQUEST'],
    ['join with garbage token', JSON.stringify({ id: 8, method: 'join', data: { token: 'abc' } }), 'UNAUTHORIZED'],
  ];
  for (const [name, frame, code, binary] of cases) {
    const res = await rawFrame(ws, frame, binary);
    assert.equal(res.ok, false, name);
    assert.equal(res.error.code, code, `${name}: ${res.error.message}`);
  }

  // Now joined, out-of-order and invalid requests.
  const peer = await gw.connect();
  const joined = await peer.request('join', {
    token: await gw.mint({ room: 'bad-input', identity: 'mallory', grants: ['subscribe'] }),
  });
  assert.ok(joined.peerId);
  await expectCode(
    peer.request('join', { token: await gw.mint({ room: 'bad-input', identity: 'mallory' }) }),
    'INVALID_REQUEST',
  );
  await expectCode(peer.request('connectTransport', { transportId: 'nope', dtlsParameters: fakeDtls }), 'NOT_FOUND');
  await expectCode(peer.request('restartIce', { transportId: 'nope' }), 'NOT_FOUND');
  await expectCode(peer.request('createWebRtcTransport', { direction: 'sideways' }), 'INVALID_REQUEST');
  await expectCode(peer.request('createWebRtcTransport', { direction: 'send' }), 'FORBIDDEN');
  await expectCode(
    peer.request('produce', {
      transportId: 'x',
      kind: 'video',
      rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000 }] },
      source: 'camera',
    }),
    'FORBIDDEN',
  );
  const recv = await peer.request('createWebRtcTransport', { direction: 'recv' });
  await expectCode(
    peer.request('connectTransport', { transportId: recv.transportId, dtlsParameters: { fingerprints: [] } }),
    'INVALID_REQUEST',
  );
  await expectCode(
    peer.request('connectTransport', {
      transportId: recv.transportId,
      dtlsParameters: { fingerprints: [{ algorithm: 'md5', value: 'x' }] },
    }),
    'INVALID_REQUEST',
  );
  await expectCode(
    peer.request('consume', {
      transportId: recv.transportId,
      producerId: 'no-such-producer',
      rtpCapabilities: { codecs: [] },
    }),
    'NOT_FOUND',
  );
  await expectCode(peer.request('consume', { transportId: recv.transportId, producerId: 'x' }), 'INVALID_REQUEST');
  await expectCode(peer.request('resumeConsumer', { consumerId: 'nope' }), 'NOT_FOUND');
  await expectCode(peer.request('setPreferredLayers', { consumerId: 'nope', spatialLayer: 9 }), 'INVALID_REQUEST');
  await expectCode(peer.request('getRouterRtpCapabilities', { extra: true }), 'INVALID_REQUEST');
  for (let i = 0; i < 4; i++) await peer.request('createWebRtcTransport', { direction: 'recv' }).catch(() => undefined);
  await expectCode(peer.request('createWebRtcTransport', { direction: 'recv' }), 'FORBIDDEN');

  // A publisher with bad RTP parameters: mediasoup refuses them, the session lives on.
  const pub = await gw.connect();
  await pub.request('join', { token: await gw.mint({ room: 'bad-input', identity: 'pub' }) });
  const send = await pub.request('createWebRtcTransport', { direction: 'send' });
  await expectCode(
    pub.request('produce', {
      transportId: send.transportId,
      kind: 'video',
      rtpParameters: { codecs: [{ mimeType: 'video/NOPE', payloadType: 96, clockRate: 90000 }] },
      source: 'camera',
    }),
    'INVALID_REQUEST',
  );
  await expectCode(
    pub.request('consume', { transportId: send.transportId, producerId: 'x', rtpCapabilities: { codecs: [] } }),
    'INVALID_REQUEST',
  );
  await expectCode(
    pub.request('produce', {
      transportId: send.transportId,
      kind: 'video',
      rtpParameters: { codecs: [] },
      source: 'camera',
    }),
    'INVALID_REQUEST',
  );

  // The bystander was served all along and still is.
  const caps = await bystander.request('getRouterRtpCapabilities');
  assert.ok(caps.rtpCapabilities.codecs.some((c: { mimeType: string }) => c.mimeType === 'video/VP8'));
  assert.ok(
    ['audio/opus', 'video/VP9', 'video/H264'].every((m) =>
      caps.rtpCapabilities.codecs.some((c: { mimeType: string }) => c.mimeType === m),
    ),
  );
  ws.close();
});

test('a bug of ours is INTERNAL, logged with its stack and context (never the token), and leaves no half-joined peer; bad parameters stay INVALID_REQUEST', async () => {
  const first = await gw.connect();
  await first.request('join', { token: await gw.mint({ room: 'our-bug', identity: 'first' }) });
  const room = gw.app.sfu.getRoom('acme', 'our-bug')!;
  // A listener of the media plane with a bug, like "t.webhooks is not iterable": a TypeError that no client caused.
  const buggy = () => {
    throw new TypeError('t.webhooks is not iterable');
  };
  room.observer.on('newpeer', buggy);
  const token = await gw.mint({ room: 'our-bug', identity: 'second' });
  const second = await gw.connect();
  try {
    await expectCode(second.request('join', { token }), 'INTERNAL');
  } finally {
    room.observer.off('newpeer', buggy);
  }
  const line = gw
    .logs()
    .split('\n')
    .find((l) => l.includes('signaling request failed') && l.includes('t.webhooks is not iterable'));
  assert.ok(line, 'the failure is logged');
  const logged = JSON.parse(line!);
  assert.equal(logged.level, 50, 'at error level');
  assert.match(logged.err.stack, /TypeError: t\.webhooks is not iterable\n\s+at /, 'with its stack');
  assert.equal(logged.method, 'join');
  assert.ok(logged.requestId !== undefined && logged.conn, 'with the request and connection it came from');
  assert.ok(!gw.logs().includes(token), 'never the token');
  assert.deepEqual(
    [...room.peers.values()].map((p) => p.identity),
    ['first'],
    'the failed join left no peer behind',
  );
  // The same connection joins once the bug is gone.
  assert.equal((await second.request('join', { token })).room, 'our-bug');

  // The client's own bad parameters, refused by mediasoup, remain the client's error.
  const send = await second.request('createWebRtcTransport', { direction: 'send' });
  await expectCode(
    second.request('produce', {
      transportId: send.transportId,
      kind: 'audio',
      rtpParameters: {
        codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000 }],
        encodings: [{ ssrc: 'not-a-number' }],
      },
      source: 'mic',
    }),
    'INVALID_REQUEST',
  );
  await second.request('connectTransport', { transportId: send.transportId, dtlsParameters: fakeDtls });
  await expectCode(
    second.request('connectTransport', { transportId: send.transportId, dtlsParameters: fakeDtls }),
    'INVALID_REQUEST',
  );
});

test('JWT attacks at join are refused with UNAUTHORIZED or FORBIDDEN', async () => {
  const secret = new TextEncoder().encode(gw.config.auth.hs256Secret);
  const now = Math.floor(Date.now() / 1000);
  const make = (
    p: Record<string, unknown>,
    o: { alg?: string; kid?: string; iss?: string; aud?: string; exp?: number; nbf?: number } = {},
  ) => {
    const j = new SignJWT({ tenant: 'acme', room: 'jwt', grants: ['publish'], ...p })
      .setProtectedHeader({ alg: o.alg ?? 'HS256', ...(o.kid ? { kid: o.kid } : {}) })
      .setIssuer(o.iss ?? 'vigie')
      .setAudience(o.aud ?? 'vigie')
      .setSubject('eve')
      .setExpirationTime(o.exp ?? now + 300);
    if (o.nbf) j.setNotBefore(o.nbf);
    return j.sign(secret);
  };
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const cases: Array<[string, string, string, Record<string, unknown>?]> = [
    [
      'alg none',
      `${b64({ alg: 'none' })}.${b64({ tenant: 'acme', room: 'jwt', grants: ['admin'], sub: 'eve', iss: 'vigie', aud: 'vigie', exp: now + 300 })}.`,
      'UNAUTHORIZED',
    ],
    [
      'unknown kid (RS256, no JWKS here)',
      `${b64({ alg: 'RS256', kid: 'who' })}.${b64({ sub: 'eve' })}.c2ln`,
      'UNAUTHORIZED',
    ],
    ['wrong audience', await make({}, { aud: 'other' }), 'UNAUTHORIZED'],
    ['wrong issuer', await make({}, { iss: 'other' }), 'UNAUTHORIZED'],
    ['expired', await make({}, { exp: now - 3600 }), 'UNAUTHORIZED'],
    ['not yet valid', await make({}, { nbf: now + 3600 }), 'UNAUTHORIZED'],
    ['unknown tenant', await make({ tenant: 'initech' }), 'FORBIDDEN'],
    ['token for another room', await make({}), 'FORBIDDEN', { room: 'other-room' }],
    ['token for another tenant', await make({}), 'FORBIDDEN', { tenant: 'globex' }],
  ];
  const c = await gw.connect();
  for (const [name, token, code, extra] of cases) {
    await expectCode(c.request('join', { token, ...extra }), code).catch((e) => assert.fail(`${name}: ${e.message}`));
  }
  // The same connection can still join with a good token.
  const ok = await c.request('join', { token: await make({}), room: 'jwt', tenant: 'acme' });
  assert.equal(ok.room, 'jwt');
});

test('notifications flow, and a reconnect with the same identity replaces the old session', async () => {
  const a = await gw.connect();
  const b1 = await gw.connect();
  await a.request('join', { token: await gw.mint({ room: 'reconnect', identity: 'alice', name: 'Alice' }) });
  const bJoined = nextNotification(a, 'peerJoined');
  const first = await b1.request('join', { token: await gw.mint({ room: 'reconnect', identity: 'bob', name: 'Bob' }) });
  assert.equal(first.peers.length, 1);
  assert.equal(first.peers[0].name, 'Alice');
  assert.equal((await bJoined).name, 'Bob');

  const replaced = nextNotification(b1, 'sessionReplaced');
  const left = nextNotification(a, 'peerLeft', 10_000, (d: any) => d.peerId === first.peerId);
  const b1Closed = new Promise<any>((r) => b1.on('close', r));
  const b2 = await gw.connect();
  const second = await b2.request('join', {
    token: await gw.mint({ room: 'reconnect', identity: 'bob', name: 'Bob' }),
  });
  assert.notEqual(second.peerId, first.peerId);
  assert.equal((await replaced).reason, 'replaced');
  assert.equal((await left).reason, 'replaced');
  assert.equal((await b1Closed).code, 4000);
  const room = gw.app.sfu.getRoom('acme', 'reconnect')!;
  assert.equal(room.peers.size, 2, 'alice and the new bob session');

  const leftAgain = nextNotification(a, 'peerLeft');
  await b2.request('leave');
  assert.equal((await leftAgain).reason, 'left');
});

test('each connection is rate-limited', async () => {
  const c = await gw.connect();
  await c.request('join', { token: await gw.mint({ room: 'rate', identity: 'spammer' }) });
  const results = await Promise.allSettled(Array.from({ length: 120 }, () => c.request('getRouterRtpCapabilities')));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  const limited = results.filter(
    (r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'RATE_LIMITED',
  ).length;
  assert.equal(ok + limited, 120, 'every request is answered, served or refused');
  assert.ok(ok >= 35 && limited >= 40, `burst (40, less the join) served (${ok}), the rest refused (${limited})`);
  // After a pause the bucket refills and the connection is served again.
  await new Promise((r) => setTimeout(r, 1000));
  await c.request('getRouterRtpCapabilities');
});

test('a moderator (admin grant) publishes and subscribes, but records only with the record grant', async () => {
  const mod = await gw.connect();
  await mod.request('join', { token: await gw.mint({ room: 'moderated', identity: 'mod', grants: ['admin'] }) });
  assert.ok((await mod.request('createWebRtcTransport', { direction: 'send' })).transportId, 'admin implies publish');
  assert.ok((await mod.request('createWebRtcTransport', { direction: 'recv' })).transportId, 'admin implies subscribe');
  await assert.rejects(
    mod.request('startRecording'),
    (e: { code: string; message: string }) => e.code === 'FORBIDDEN' && /record grant/.test(e.message),
  );
});

test('every frame spends the budget: oversized, binary and invalid frames are rate-limited too', async () => {
  const ws = await openRaw();
  const junk: Array<[string | Buffer, boolean]> = [
    ['{oops', false],
    [Buffer.from([1, 2, 3]), true],
    [JSON.stringify({ id: 1, method: 'join', data: { token: 'x'.repeat(70 * 1024) } }), false],
  ];
  const codes: string[] = [];
  const all = new Promise<void>((resolve) => {
    ws.on('message', (d: Buffer) => {
      const msg = JSON.parse(d.toString());
      if (!msg.notification) codes.push(msg.error?.code);
      if (codes.length === 120) resolve();
    });
  });
  for (let i = 0; i < 120; i++) ws.send(junk[i % 3]![0], { binary: junk[i % 3]![1] });
  await all;
  const limited = codes.filter((c) => c === 'RATE_LIMITED').length;
  assert.ok(
    limited >= 40,
    `of 120 junk frames with a burst of 40, ${limited} were refused as RATE_LIMITED (the rest: INVALID_REQUEST)`,
  );
  ws.close();
});

test('a connection that keeps sending 25 times its rate is closed with 4008', async () => {
  const ws = await openRaw();
  ws.on('message', () => undefined);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  // 500 frames a second against a limit of 20, for at most 6 seconds.
  let id = 0;
  const flood = setInterval(() => {
    for (let i = 0; i < 10 && ws.readyState === ws.OPEN; i++)
      ws.send(JSON.stringify({ id: ++id, method: 'getRouterRtpCapabilities', data: {} }));
  }, 20);
  const code = await Promise.race([
    closed,
    new Promise<string>((r) => setTimeout(() => r('still open after 6 s'), 6000)),
  ]);
  clearInterval(flood);
  assert.equal(code, 4008, `closed after ${id} frames`);
  // The server goes on serving everyone else.
  const other = await gw.connect();
  assert.equal(
    (await other.request('join', { token: await gw.mint({ room: 'after-flood', identity: 'calm' }) })).room,
    'after-flood',
  );
});

test('tokens in URLs never reach the log', async () => {
  const token = await gw.mint({ room: 'logs', identity: 'carol' });
  await gw.app.inject(`/join?token=${token}`);
  await gw.app.inject(`/embed?token=${token}`);
  assert.ok(gw.logs().includes('token=[redacted]'));
  assert.ok(!gw.logs().includes(token));
  assert.ok(!gw.logs().includes(gw.config.auth.hs256Secret!));
});

test("join creates the recv transport when asked and the token allows subscribing; it counts as the peer's own", async () => {
  const join = async (identity: string, grants: Array<'publish' | 'subscribe'>, recvTransport?: boolean) => {
    const c = await gw.connect();
    const token = await gw.mint({ room: 'recv-with-join', identity, grants });
    return {
      c,
      joined: await c.request<any>('join', { token, ...(recvTransport === undefined ? {} : { recvTransport }) }),
    };
  };
  const peerOf = (peerId: string) => gw.app.sfu.getRoom('acme', 'recv-with-join')!.peers.get(peerId)!;

  const viewer = await join('viewer', ['subscribe'], true);
  const t = viewer.joined.recvTransport;
  assert.ok(t, 'the answer carries the transport');
  assert.equal(typeof t.transportId, 'string');
  assert.ok(t.iceCandidates.length > 0 && t.iceParameters.usernameFragment && t.dtlsParameters.fingerprints.length);
  const transport = peerOf(viewer.joined.peerId).transports.get(t.transportId);
  assert.equal(transport?.appData.direction, 'recv', 'the server has it, as a recv transport of this peer');
  // It is the peer's like any other: connecting it works once, and the transport limit counts it.
  await viewer.c.request('connectTransport', { transportId: t.transportId, dtlsParameters: fakeDtls });
  await expectCode(
    viewer.c.request('connectTransport', { transportId: t.transportId, dtlsParameters: fakeDtls }),
    'INVALID_REQUEST',
  );
  for (let i = 1; i < 4; i++) await viewer.c.request('createWebRtcTransport', { direction: 'recv' });
  await expectCode(viewer.c.request('createWebRtcTransport', { direction: 'recv' }), 'FORBIDDEN');

  // Not asked, or not allowed to subscribe: no transport.
  const plain = await join('plain', ['publish', 'subscribe']);
  assert.equal(plain.joined.recvTransport, undefined);
  assert.equal(peerOf(plain.joined.peerId).transports.size, 0);
  const speaker = await join('speaker', ['publish'], true);
  assert.equal(speaker.joined.recvTransport, undefined, 'a token without subscribe gets no recv transport');
  assert.equal(peerOf(speaker.joined.peerId).transports.size, 0);
  await expectCode((await gw.connect()).request('join', { token: 'x', recvTransport: 'yes' }), 'INVALID_REQUEST');

  // It goes with the peer.
  viewer.c.close();
  await waitFor('the transport to close with its peer', async () => transport!.closed, Boolean);
  plain.c.close();
  speaker.c.close();
});
