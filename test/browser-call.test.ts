import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { Page } from 'playwright-core';
import { ROOMS_WRITE_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
// A business app on another origin, which embeds the call in an iframe.
const portal = Fastify();
let portalOrigin = '';
let embedToken = '';
portal.get('/', async (_req, reply) =>
  reply
    .type('text/html')
    .send(`<!doctype html><script>window.got=[];addEventListener('message',e=>{if(e.data&&e.data.source==='vigie')got.push({origin:e.origin,type:e.data.type})})</script>
<iframe id="call" allow="camera; microphone" src="${gw.url}/embed?token=${embedToken}"></iframe>`),
);

beforeAll(async () => {
  await portal.listen({ host: '127.0.0.1', port: 0 });
  portalOrigin = `http://localhost:${(portal.server.address() as { port: number }).port}`;
  gw = await startGateway({ embedOrigins: [portalOrigin] });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await portal.close();
});

async function openJoinPage(
  identity: string,
  grants: Array<'publish' | 'subscribe'> = ['publish', 'subscribe'],
  room = 'browser-call',
): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => console.error(`[${identity}] page error:`, e.message));
  const token = await gw.mint({ room, identity, name: identity, grants });
  const res = await joinThroughPage(page, `${gw.url}/join?token=${token}`);
  assert.equal(res?.status(), 200);
  assert.equal(new URL(page.url()).search, '', 'the token is removed from the address bar');
  return page;
}

test('two participants join through the join page, publish, and receive each other', async () => {
  const alice = await openJoinPage('alice');
  const bob = await openJoinPage('bob');

  for (const [name, page] of [
    ['alice', alice],
    ['bob', bob],
  ] as const) {
    const first = await waitFor(
      `${name} to receive audio and video`,
      () => receivedMedia(page),
      (m) => m.videoTracks === 1 && m.audioTracks === 1 && m.framesDecoded > 5 && m.totalSamplesReceived > 0,
    );
    await new Promise((r) => setTimeout(r, 2000));
    const later = await receivedMedia(page);
    assert.ok(
      later.framesDecoded > first.framesDecoded + 10,
      `${name}: framesDecoded grows (${first.framesDecoded} -> ${later.framesDecoded})`,
    );
    assert.ok(
      later.totalSamplesReceived > first.totalSamplesReceived + 48000,
      `${name}: audio samples grow (${first.totalSamplesReceived} -> ${later.totalSamplesReceived})`,
    );
  }
  // Each page shows who is in the room and their video.
  await waitFor(
    'participant lists',
    async () => alice.locator('#participants li').allTextContents(),
    (names) => names.length === 2,
  );
  assert.deepEqual((await alice.locator('#participants li').allTextContents()).sort(), ['alice (you)', 'bob']);
  assert.equal(await alice.locator('#tiles .tile video').count(), 2, 'own preview and bob');

  // The server's side agrees: two peers, each with one audio and one video producer.
  const room = gw.app.sfu.getRoom('acme', 'browser-call')!;
  assert.equal(room.peers.size, 2);
  for (const p of room.peers.values())
    assert.deepEqual([...p.producers.values()].map((x) => x.kind).sort(), ['audio', 'video']);

  // A producer made while a join runs is named twice, by the join answer and by a newProducer notification (CI saw a
  // page play the other's voice twice): subscribing to one producer again, even twice at once, adds no consumer.
  const again = await alice.evaluate(async () => {
    const call = (window as any).vigieCall;
    const [peerId, peer] = [...call.peers.entries()].find(([, p]: [string, any]) => p.tracks.size > 0)!;
    const { producerId, consumerId } = [...peer.tracks.values()][0];
    const before = call.consumers.size;
    const [a, b] = await Promise.all([call.subscribe(peerId, producerId), call.subscribe(peerId, producerId)]);
    return { ids: [a.id === consumerId, b.id === consumerId], before, after: call.consumers.size };
  });
  assert.deepEqual(again, { ids: [true, true], before: 2, after: 2 });
});

test('screen sharing: the join page button publishes the screen, the other side shows it in its own tile, and stopping removes it', async () => {
  const carol = await openJoinPage('carol', ['publish', 'subscribe'], 'screen-share');
  const dave = await openJoinPage('dave', ['publish', 'subscribe'], 'screen-share');
  await waitFor(
    'dave to receive carol',
    () => receivedMedia(dave),
    (m) => m.videoTracks === 1 && m.framesDecoded > 5,
  );

  await carol.click('#share-screen');
  assert.equal(await carol.locator('#share-screen').getAttribute('aria-pressed'), 'true');
  const room = gw.app.sfu.getRoom('acme', 'screen-share')!;
  const carolPeer = [...room.peers.values()].find((p) => p.identity === 'carol')!;
  await waitFor(
    'a screen producer on the server',
    async () => [...carolPeer.producers.values()].map((p) => p.appData.source).sort(),
    (s) => s.length === 3,
  );
  assert.deepEqual([...carolPeer.producers.values()].map((p) => p.appData.source).sort(), ['camera', 'mic', 'screen']);

  // Dave decodes two videos from carol: her camera in her tile, and the screen (Chromium's fake 1280x720 display) in its own.
  await waitFor(
    'dave to decode the screen',
    () => receivedMedia(dave),
    (m) => m.videoTracks === 2,
  );
  const screenTile = dave.locator('[id^="tile-screen-"]');
  await waitFor(
    'a screen tile',
    () => screenTile.count(),
    (n) => n === 1,
  );
  assert.equal(await screenTile.locator('.name').textContent(), 'carol (screen)');
  const size = await waitFor(
    'the screen to play',
    () =>
      screenTile
        .locator('video')
        .evaluate((v: HTMLVideoElement) => ({ w: v.videoWidth, h: v.videoHeight, t: v.currentTime })),
    (v) => v.w > 0 && v.t > 0.5,
  );
  assert.deepEqual([size.w, size.h], [1280, 720], 'the whole shared screen, not the 640x480 camera');
  assert.ok(
    await dave
      .locator(`#tile-${carolPeer.id} video`)
      .evaluate((v: HTMLVideoElement) => v.videoWidth > 0 && v.videoWidth <= 640),
    "the camera (a simulcast layer of 640x480) stays in carol's tile",
  );

  // Stopping the share closes the producer, and dave's screen tile goes away while the camera plays on.
  await carol.click('#share-screen');
  await waitFor(
    'the screen producer to close',
    async () => carolPeer.producers.size,
    (n) => n === 2,
  );
  await waitFor(
    'the screen tile to go',
    () => screenTile.count(),
    (n) => n === 0,
  );
  const after = await waitFor(
    'dave back to one video',
    () => receivedMedia(dave),
    (m) => m.videoTracks === 1,
  );
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok((await receivedMedia(dave)).framesDecoded > after.framesDecoded, "carol's camera still decodes");
  await carol.close();
  await dave.close();
});

test('simulcast: the camera is sent in two layers, and setPreferredLayers switches what a receiver gets, as a call event and in track stats', async () => {
  const erin = await openJoinPage('erin', ['publish', 'subscribe'], 'simulcast');
  const frank = await openJoinPage('frank', ['subscribe'], 'simulcast');
  // Undefined until that page has joined: the probes below wait for it.
  const peerOf = (identity: string) =>
    [...(gw.app.sfu.getRoom('acme', 'simulcast')?.peers.values() ?? [])].find((p) => p.identity === identity);
  const camera = await waitFor(
    "erin's camera",
    async () => [...(peerOf('erin')?.producers.values() ?? [])].find((p) => p.appData.source === 'camera'),
    Boolean,
  );
  // 640x480 is two layers in Chromium (320x240 and 640x480); it drops a third one silently.
  assert.equal(camera!.type, 'simulcast');
  assert.equal(camera!.rtpParameters.encodings!.length, 2);

  const consumer = await waitFor(
    "frank's video consumer",
    async () => [...(peerOf('frank')?.consumers.values() ?? [])].find((c) => c.kind === 'video'),
    Boolean,
  );
  assert.equal(consumer!.type, 'simulcast');
  const width = () =>
    frank.locator(`#tile-${peerOf('erin')!.id} video`).evaluate((v: HTMLVideoElement) => v.videoWidth);
  await waitFor('the full 640-pixel layer once bandwidth allows', width, (w) => w === 640, 30_000);

  // A thumbnail layout asks for the lowest layer, then the speaker view for the highest again.
  const prefer = (layer: number) =>
    frank.evaluate(([id, l]) => (window as any).vigieCall.setPreferredLayers(id, l), [consumer!.id, layer] as const);
  await prefer(0);
  await waitFor('the 320-pixel layer', width, (w) => w === 320);
  assert.equal(consumer!.currentLayers?.spatialLayer, 0);
  await prefer(1);
  await waitFor('the 640-pixel layer again', width, (w) => w === 640);
  assert.equal(consumer!.currentLayers?.spatialLayer, 1);

  const events = await gw.query<{ spatial: string; temporal: string }>(
    `SELECT attrs['spatial'] AS spatial, attrs['temporal'] AS temporal FROM vigie.call_events WHERE room = 'simulcast' AND event = 'consumer.layers' AND object_id = '${consumer!.id}' ORDER BY ts`,
  );
  // Temporal layers change too (each is its own event); the spatial path must read 1, 0, 1 at the end.
  const spatialPath = events.map((e) => e.spatial).filter((l, i, all) => i === 0 || l !== all[i - 1]);
  assert.ok(/1,0,1$/.test(spatialPath.join(',')), `layer switches recorded as call events: ${JSON.stringify(events)}`);
  const layers = await waitFor(
    'one track_stats row per layer of the camera',
    async () =>
      (
        await gw.query<{ spatial_layer: number }>(
          `SELECT DISTINCT spatial_layer FROM vigie.track_stats WHERE track_id = '${camera!.id}' ORDER BY spatial_layer`,
        )
      ).map((l) => Number(l.spatial_layer)),
    (l) => l.length === 2,
  );
  assert.deepEqual(layers, [0, 1]);
  await erin.close();
  await frank.close();
});

test("remote mute: the join page locks the mic button while a moderator's mute holds, and the server refuses a resume even from a modified page", async () => {
  const page = await openJoinPage('muted', ['publish', 'subscribe'], 'mute-page');
  const events = () => page.evaluate(() => (window as any).vigieEvents as Array<{ type: string }>);
  await waitFor(
    'published',
    async () => (await events()).map((e) => e.type),
    (t) => t.includes('published'),
  );
  const peer = [...gw.app.sfu.getRoom('acme', 'mute-page')!.peers.values()][0]!;
  const audio = [...peer.producers.values()].find((p) => p.kind === 'audio')!;
  const moderate = (action: 'mute' | 'unmute') =>
    fetch(`${gw.url}/v1/rooms/mute-page/participants/${peer.id}/${action}`, {
      method: 'POST',
      headers: { 'x-api-key': ROOMS_WRITE_KEY.key, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'audio' }),
    });
  const mic = page.locator('#toggle-mic');

  assert.equal((await moderate('mute')).status, 200);
  await waitFor(
    'the mic button locked',
    async () => [await mic.isDisabled(), await mic.getAttribute('title'), await mic.getAttribute('aria-pressed')],
    (v) => v.join() === 'true,Muted by a moderator,true',
  );
  assert.equal(
    await page.evaluate(() =>
      (window as any).vigieCall.setPaused('mic', false).then(
        () => 'resumed',
        (e: { code: string }) => e.code,
      ),
    ),
    'FORBIDDEN',
  );
  // A page that skips the SDK's own check meets the server's.
  const direct = await page.evaluate(
    (producerId) =>
      (window as any).vigieCall.signaling.request('resumeProducer', { producerId }).then(
        () => 'resumed',
        (e: { code: string }) => e.code,
      ),
    audio.id,
  );
  assert.equal(direct, 'FORBIDDEN');
  assert.equal(audio.paused, true);

  assert.equal((await moderate('unmute')).status, 200);
  await waitFor(
    'the mic button free again',
    async () => mic.isDisabled(),
    (d) => !d,
  );
  assert.equal(audio.paused, true, 'unmuting does not turn the mic on');
  await mic.click();
  await waitFor(
    'the participant turns the mic on',
    async () => audio.paused,
    (p) => !p,
  );
  await page.close();
});

test('a participant without the publish grant receives but is refused when it tries to produce', async () => {
  const viewer = await openJoinPage('viewer', ['subscribe']);
  await waitFor(
    'viewer to receive',
    () => receivedMedia(viewer),
    (m) => m.videoTracks === 2 && m.framesDecoded > 5,
  );
  const refusal = await viewer.evaluate(async () => {
    try {
      await (window as any).vigieCall.publishCamera();
      return 'published';
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  });
  assert.equal(refusal, 'FORBIDDEN');
  const room = gw.app.sfu.getRoom('acme', 'browser-call')!;
  const viewerPeer = [...room.peers.values()].find((p) => p.identity === 'viewer')!;
  assert.equal(viewerPeer.producers.size, 0);
  await viewer.close();
});

test('the embed page works in an allowed iframe, reports by postMessage, and names its frame-ancestors', async () => {
  const token = await gw.mint({ room: 'embed-room', identity: 'embedded', grants: ['subscribe'] });
  const res = await gw.app.inject(`/embed?token=${token}`);
  assert.match(res.headers['content-security-policy'] as string, new RegExp(`frame-ancestors 'self' ${portalOrigin}`));
  const join = await gw.app.inject(`/join?token=${token}`);
  assert.match(join.headers['content-security-policy'] as string, /frame-ancestors 'none'/);
  const bad = await gw.app.inject('/embed?token=forged');
  assert.equal(bad.statusCode, 401);

  embedToken = token;
  const page = await browser.context.newPage();
  await page.goto(`${portalOrigin}/`);
  const events = await waitFor(
    'embed postMessage joined',
    () => page.evaluate(() => (window as any).got as Array<{ origin: string; type: string }>),
    (g) => g.some((e) => e.type === 'joined'),
  );
  assert.equal(events[0]!.origin, gw.url);
  await page.close();
});
