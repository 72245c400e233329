import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { Page } from 'playwright-core';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
// A business app on another origin, which embeds the call in an iframe.
const portal = Fastify();
let portalOrigin = '';
let embedToken = '';
portal.get('/', async (_req, reply) =>
  reply.type('text/html').send(`<!doctype html><script>window.got=[];addEventListener('message',e=>{if(e.data&&e.data.source==='vigie')got.push({origin:e.origin,type:e.data.type})})</script>
<iframe id="call" allow="camera; microphone" src="${gw.url}/embed?token=${embedToken}"></iframe>`),
);

before(async () => {
  await portal.listen({ host: '127.0.0.1', port: 0 });
  portalOrigin = `http://localhost:${(portal.server.address() as { port: number }).port}`;
  gw = await startGateway({ embedOrigins: [portalOrigin] });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gw?.close();
  await portal.close();
});

async function openJoinPage(identity: string, grants: Array<'publish' | 'subscribe'> = ['publish', 'subscribe'], room = 'browser-call'): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => console.error(`[${identity}] page error:`, e.message));
  const token = await gw.mint({ room, identity, name: identity, grants });
  const res = await page.goto(`${gw.url}/join?token=${token}`);
  assert.equal(res?.status(), 200);
  assert.equal(new URL(page.url()).search, '', 'the token is removed from the address bar');
  return page;
}

test('two participants join through the join page, publish, and receive each other', async () => {
  const alice = await openJoinPage('alice');
  const bob = await openJoinPage('bob');

  for (const [name, page] of [['alice', alice], ['bob', bob]] as const) {
    const first = await waitFor(`${name} to receive audio and video`, () => receivedMedia(page), (m) => m.videoTracks === 1 && m.audioTracks === 1 && m.framesDecoded > 5 && m.totalSamplesReceived > 0);
    await new Promise((r) => setTimeout(r, 2000));
    const later = await receivedMedia(page);
    assert.ok(later.framesDecoded > first.framesDecoded + 10, `${name}: framesDecoded grows (${first.framesDecoded} -> ${later.framesDecoded})`);
    assert.ok(later.totalSamplesReceived > first.totalSamplesReceived + 48000, `${name}: audio samples grow (${first.totalSamplesReceived} -> ${later.totalSamplesReceived})`);
  }
  // Each page shows who is in the room and their video.
  await waitFor('participant lists', async () => alice.locator('#participants li').allTextContents(), (names) => names.length === 2);
  assert.deepEqual((await alice.locator('#participants li').allTextContents()).sort(), ['alice (you)', 'bob']);
  assert.equal(await alice.locator('#tiles .tile video').count(), 2, 'own preview and bob');

  // The server's side agrees: two peers, each with one audio and one video producer.
  const room = gw.app.sfu.getRoom('acme', 'browser-call')!;
  assert.equal(room.peers.size, 2);
  for (const p of room.peers.values()) assert.deepEqual([...p.producers.values()].map((x) => x.kind).sort(), ['audio', 'video']);
});

test('screen sharing: the join page button publishes the screen, the other side shows it in its own tile, and stopping removes it', async () => {
  const carol = await openJoinPage('carol', ['publish', 'subscribe'], 'screen-share');
  const dave = await openJoinPage('dave', ['publish', 'subscribe'], 'screen-share');
  await waitFor('dave to receive carol', () => receivedMedia(dave), (m) => m.videoTracks === 1 && m.framesDecoded > 5);

  await carol.click('#share-screen');
  assert.equal(await carol.locator('#share-screen').getAttribute('aria-pressed'), 'true');
  const room = gw.app.sfu.getRoom('acme', 'screen-share')!;
  const carolPeer = [...room.peers.values()].find((p) => p.identity === 'carol')!;
  await waitFor('a screen producer on the server', async () => [...carolPeer.producers.values()].map((p) => p.appData.source).sort(), (s) => s.length === 3);
  assert.deepEqual([...carolPeer.producers.values()].map((p) => p.appData.source).sort(), ['camera', 'mic', 'screen']);

  // Dave decodes two videos from carol: her camera in her tile, and the screen (Chromium's fake 1280x720 display) in its own.
  await waitFor('dave to decode the screen', () => receivedMedia(dave), (m) => m.videoTracks === 2);
  const screenTile = dave.locator('[id^="tile-screen-"]');
  await waitFor('a screen tile', () => screenTile.count(), (n) => n === 1);
  assert.equal(await screenTile.locator('.name').textContent(), 'carol (screen)');
  const size = await waitFor('the screen to play', () => screenTile.locator('video').evaluate((v: HTMLVideoElement) => ({ w: v.videoWidth, h: v.videoHeight, t: v.currentTime })), (v) => v.w > 0 && v.t > 0.5);
  assert.deepEqual([size.w, size.h], [1280, 720], 'the whole shared screen, not the 640x480 camera');
  assert.ok(await dave.locator(`#tile-${carolPeer.id} video`).evaluate((v: HTMLVideoElement) => v.videoWidth === 640), 'the camera stays in carol\'s tile');

  // Stopping the share closes the producer, and dave's screen tile goes away while the camera plays on.
  await carol.click('#share-screen');
  await waitFor('the screen producer to close', async () => carolPeer.producers.size, (n) => n === 2);
  await waitFor('the screen tile to go', () => screenTile.count(), (n) => n === 0);
  const after = await waitFor('dave back to one video', () => receivedMedia(dave), (m) => m.videoTracks === 1);
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok((await receivedMedia(dave)).framesDecoded > after.framesDecoded, 'carol\'s camera still decodes');
  await carol.close();
  await dave.close();
});

test('a participant without the publish grant receives but is refused when it tries to produce', async () => {
  const viewer = await openJoinPage('viewer', ['subscribe']);
  await waitFor('viewer to receive', () => receivedMedia(viewer), (m) => m.videoTracks === 2 && m.framesDecoded > 5);
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
  const events = await waitFor('embed postMessage joined', () => page.evaluate(() => (window as any).got as Array<{ origin: string; type: string }>), (g) => g.some((e) => e.type === 'joined'));
  assert.equal(events[0]!.origin, gw.url);
  await page.close();
});
