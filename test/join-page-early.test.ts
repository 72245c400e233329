import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;

beforeAll(async () => {
  gw = await startGateway();
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
});

test('the embed page joins before its SDK bundle has loaded, and the SDK carries on that one connection (src/web/earlyJoin.ts)', async () => {
  const sender = await browser.context.newPage();
  await sender.goto(`${gw.url}/embed?token=${await gw.mint({ room: 'early', identity: 'sender' })}`);

  const page = await browser.context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  const sockets: string[] = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  // The SDK bundle is held back until the server has the participant in the room:
  // only a script that runs before it, and connects by itself, can get it there.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  await page.route('**/sdk/vigie-sdk.js', async (route) => {
    await held;
    await route.continue();
  });
  const token = await gw.mint({ room: 'early', identity: 'early-bird' });
  await page.goto(`${gw.url}/embed?token=${token}`, { waitUntil: 'commit' });
  const peer = await waitFor(
    'the participant in the room while the SDK is held',
    async () =>
      [...(gw.app.sfu.getRoom('acme', 'early')?.peers.values() ?? [])].find((p) => p.identity === 'early-bird'),
    Boolean,
  );
  assert.equal(
    await page.evaluate(() => typeof (window as { Vigie?: unknown }).Vigie),
    'undefined',
    'the SDK has not run yet',
  );
  assert.equal(await page.evaluate(() => location.search), '', 'the token left the address bar before any bundle ran');
  release();

  // The SDK takes the connection over: the same participant, no second socket, and the call works.
  await waitFor(
    'joined',
    () => page.evaluate(() => (window as any).vigieEvents?.map((e: { type: string }) => e.type) ?? []),
    (t: string[]) => t.includes('published'),
  );
  assert.equal(await page.evaluate(() => (window as any).vigieCall.info.peerId), peer!.id);
  await waitFor(
    'media from the sender',
    () => receivedMedia(page),
    (m) => m.videoTracks === 1 && m.framesDecoded > 5,
  );
  assert.deepEqual(sockets, [gw.wsUrl], 'one WebSocket, opened by the page script');
  assert.deepEqual([...gw.app.sfu.getRoom('acme', 'early')!.peers.values()].map((p) => p.identity).sort(), [
    'early-bird',
    'sender',
  ]);
  assert.deepEqual(errors, [], 'no CSP violation or script error');

  // And the other way: the newcomer's tracks, produced over the taken-over connection, reach the sender.
  await waitFor(
    'the sender to receive the newcomer',
    () => receivedMedia(sender),
    (m) => m.videoTracks === 1 && m.framesDecoded > 5,
  );
  await page.close();
  await sender.close();
});

test('the join page, on its pre-join screen, joins nobody until the click on "Join", then joins on the socket it opened meanwhile', async () => {
  const page = await browser.context.newPage();
  const sockets: string[] = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(`${gw.url}/join?token=${await gw.mint({ room: 'lobby', identity: 'patient' })}`);
  // The pre-join screen is up and the bundles have run: an early join would have reached the room by now.
  await page.waitForFunction(() => (window as any).vigieEvents?.some((e: { type: string }) => e.type === 'prejoin'));
  assert.equal(gw.app.sfu.getRoom('acme', 'lobby')?.peers.size ?? 0, 0, 'nobody in the room before the click');
  assert.deepEqual(sockets, [gw.wsUrl], 'the signaling socket is open on the pre-join screen');
  await page.click('#join-button');
  await waitFor(
    'joined after the click',
    async () => gw.app.sfu.getRoom('acme', 'lobby')?.peers.size ?? 0,
    (n) => n === 1,
  );
  assert.deepEqual(sockets, [gw.wsUrl], 'and the join went over it');
  await page.close();
});

test('the join answer carries the recv transport: the page asks for no createWebRtcTransport to receive, and receives on it', async () => {
  const sender = await browser.context.newPage();
  await joinThroughPage(sender, `${gw.url}/join?token=${await gw.mint({ room: 'recv-join', identity: 'sender' })}`);
  await waitFor(
    'the sender to publish',
    () => sender.evaluate(() => (window as any).vigieEvents?.some((e: { type: string }) => e.type === 'published')),
    Boolean,
  );

  const page = await browser.context.newPage();
  const sent: Array<{ method?: string; data?: any }> = [];
  page.on('websocket', (ws) => ws.on('framesent', ({ payload }) => sent.push(JSON.parse(String(payload)))));
  await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room: 'recv-join', identity: 'receiver' })}`);
  await waitFor(
    'media from the sender',
    () => receivedMedia(page),
    (m) => m.videoTracks === 1 && m.framesDecoded > 5,
  );
  const requests = sent.map((f) => `${f.method}${f.data?.direction ? ` ${f.data.direction}` : ''}`);
  assert.equal(sent.find((f) => f.method === 'join')?.data.recvTransport, true, 'the SDK asks for it with the join');
  assert.ok(!requests.includes('createWebRtcTransport recv'), `no recv transport requested: ${requests.join(', ')}`);
  assert.ok(requests.includes('consume'), 'it consumed');
  // The transport the page receives on is the one the server made with the join.
  const peerId = await page.evaluate(() => (window as any).vigieCall.info.peerId);
  const peer = gw.app.sfu.getRoom('acme', 'recv-join')!.peers.get(peerId)!;
  const recv = [...peer.transports.values()].filter((t) => t.appData.direction === 'recv');
  assert.equal(recv.length, 1);
  assert.equal(sent.find((f) => f.method === 'consume')?.data.transportId, recv[0]!.id);
  await page.close();
  await sender.close();
});

test('the pre-join screen has the browser work out its media capabilities: after the click, the join waits for no probe', async () => {
  const sender = await browser.context.newPage();
  await joinThroughPage(sender, `${gw.url}/join?token=${await gw.mint({ room: 'probe', identity: 'sender' })}`);
  const page = await browser.context.newPage();
  // Every RTCPeerConnection of the page, and whether it ever got a remote description: mediasoup-client's probes of
  // the native capabilities (Device.load) only make an offer and close; a transport's connection gets an answer.
  await page.addInitScript(() => {
    const pcs: Array<{ remote: boolean }> = [];
    const entries = new WeakMap<RTCPeerConnection, { remote: boolean }>();
    (window as any).pcs = pcs;
    const Native = window.RTCPeerConnection;
    const setRemote = Native.prototype.setRemoteDescription;
    Native.prototype.setRemoteDescription = function (this: RTCPeerConnection, ...args: unknown[]) {
      const entry = entries.get(this);
      if (entry) entry.remote = true;
      return setRemote.apply(this, args as never);
    } as typeof setRemote;
    window.RTCPeerConnection = class extends Native {
      constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
        super(...args);
        const entry = { remote: false };
        entries.set(this, entry);
        pcs.push(entry);
      }
    };
  });
  await page.goto(`${gw.url}/join?token=${await gw.mint({ room: 'probe', identity: 'prober' })}`);
  await page.waitForFunction(() => (window as any).vigieEvents?.some((e: { type: string }) => e.type === 'prejoin'));
  const pcs = () => page.evaluate(() => (window as any).pcs as Array<{ remote: boolean }>);
  const before = await pcs();
  assert.equal(before.length, 2, 'the two probes (receiving, sending) ran on the pre-join screen');
  await page.click('#join-button');
  await waitFor(
    'media from the sender',
    () => receivedMedia(page),
    (m) => m.videoTracks === 1 && m.framesDecoded > 5,
  );
  const after = (await pcs()).slice(before.length);
  assert.deepEqual(
    after.map((pc) => pc.remote),
    [true, true],
    'after the click, only the two transports (receive, send): no probe',
  );
  await page.close();
  await sender.close();
});
