import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { types as ms } from 'mediasoup';
import type { Frame as FirefoxFrame, Page as FirefoxPage } from 'puppeteer-core';
import type { Page as ChromiumPage } from 'playwright-core';
import { afterAll, beforeAll, describe, onTestFinished, test } from 'vitest';
import {
  type Evaluates,
  joinThroughPage,
  launchBrowser,
  launchFirefox,
  receivedMedia,
  waitFor,
} from './helpers/browser.js';
import { assertClientStatsMatchServer, waitForStatsWindow } from './helpers/clientStats.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { createMediaNamespace, type MediaNamespace } from './helpers/netns.js';

// Firefox gathers no loopback ICE candidate, so the SFU serves media on the namespace side of a veth pair:
// an address both browsers, in this namespace, gather a candidate towards and reach.
let ns: MediaNamespace;
let gw: TestGateway;
let firefox: Awaited<ReturnType<typeof launchFirefox>>;
let chromium: Awaited<ReturnType<typeof launchBrowser>>;
// A business app on another origin, which embeds the call in an iframe.
const portal = Fastify();
let portalOrigin = '';
portal.get('/', async (req, reply) =>
  reply.type('text/html').send(
    `<!doctype html><script>window.got=[];addEventListener('message',e=>{if(e.data&&e.data.source==='vigie')got.push({origin:e.origin,type:e.data.type})})</script>
<iframe id="call" allow="camera; microphone" src="${gw.url}/embed?token=${encodeURIComponent((req.query as { token: string }).token)}"></iframe>`,
  ),
);

beforeAll(async () => {
  ns = createMediaNamespace();
  await portal.listen({ host: '127.0.0.1', port: 0 });
  portalOrigin = `http://localhost:${(portal.server.address() as { port: number }).port}`;
  gw = await startGateway({
    media: { workers: 1, listenIp: ns.mediaIp, workerBin: ns.workerBin },
    embedOrigins: [portalOrigin],
    telemetry: { statsIntervalMs: 1000, clientStatsIntervalMs: 1000 },
    writer: { flushIntervalMs: 200 },
  });
  // Firefox ESR 153 has location.ancestorOrigins behind this pref (on by default); Firefox releases before it,
  // still in use, have none. Off here, the embed page must find its parent the way those browsers need it to.
  firefox = await launchFirefox({ 'dom.location.ancestorOrigins.enabled': false });
  chromium = await launchBrowser();
});
afterAll(async () => {
  try {
    await firefox?.close();
    await chromium?.close();
    await gw?.close();
    await portal.close();
  } finally {
    // After the gateway, whose worker runs inside; the namespace goes even when a close above fails.
    ns?.close();
  }
});

async function firefoxPage(): Promise<FirefoxPage> {
  const page = await firefox.browser.newPage();
  page.on('pageerror', (e) => console.error('[firefox] page error:', e instanceof Error ? e.message : e));
  onTestFinished(() => page.close());
  return page;
}

async function chromiumPage(): Promise<ChromiumPage> {
  const page = await chromium.context.newPage();
  page.on('pageerror', (e) => console.error('[chromium] page error:', e.message));
  onTestFinished(() => page.close());
  return page;
}

const peerOf = (room: string, identity: string) =>
  [...(gw.app.sfu.getRoom('acme', room)?.peers.values() ?? [])].find((p) => p.identity === identity);

/** Both sides decode video and play audio from the other, and keep doing so. */
async function assertMediaBothWays(sides: Array<[string, Evaluates]>): Promise<void> {
  for (const [name, doc] of sides) {
    const first = await waitFor(
      `${name} to receive audio and video`,
      () => receivedMedia(doc),
      (m) => m.videoTracks === 1 && m.audioTracks === 1 && m.framesDecoded > 5 && m.totalSamplesReceived > 0,
      60_000,
    );
    const later = await waitFor(
      `${name}'s media to keep flowing`,
      () => receivedMedia(doc),
      (m) => m.framesDecoded > first.framesDecoded + 10 && m.totalSamplesReceived > first.totalSamplesReceived + 48000,
    );
    assert.ok(later.framesDecoded > first.framesDecoded, name);
  }
}

/**
 * The server's side of a peer: its transports' selected ICE tuples are on the namespace's address, not loopback.
 * Over UDP or TCP: mediasoup listens on both, and a loaded machine has seen Firefox nominate a TCP pair first.
 */
async function assertServedOnNamespace(room: string, identity: string): Promise<void> {
  const peer = peerOf(room, identity)!;
  const tuples = [...peer.transports.values()].map((t) => (t as ms.WebRtcTransport).iceSelectedTuple);
  assert.ok(tuples.length >= 2, `${identity}: a send and a receive transport`);
  for (const tuple of tuples) {
    assert.equal(tuple?.localAddress, ns.mediaIp, `${identity}: media on ${ns.mediaIp}: ${JSON.stringify(tuple)}`);
  }
}

describe('Firefox and Chromium in one call, media served on a network namespace', () => {
  test("through the join page: media both ways, and Firefox's client stats match the server's rows in ClickHouse", async () => {
    const room = 'firefox-join';
    const fox = await firefoxPage();
    const chrome = await chromiumPage();
    // Through the pre-join screen, as a user would: wait for it, then click "Join".
    await fox.goto(`${gw.url}/join?token=${await gw.mint({ room, identity: 'fox' })}`);
    await fox.waitForFunction(() => (window as any).vigieEvents?.some((e: { type: string }) => e.type === 'prejoin'));
    if (await fox.$('#name-input')) await fox.type('#name-input', 'Fox');
    await fox.click('#join-button');
    await joinThroughPage(chrome, `${gw.url}/join?token=${await gw.mint({ room, identity: 'chrome' })}`);

    await assertMediaBothWays([
      ['firefox', fox],
      ['chromium', chrome],
    ]);
    assert.match(await fox.evaluate(() => navigator.userAgent), /Firefox\//);
    await assertServedOnNamespace(room, 'fox');
    await assertServedOnNamespace(room, 'chrome');

    // Firefox's stats reach vigie.client_stats and describe the streams the server counted.
    const peer = peerOf(room, 'fox')!;
    const trackIds = new Set([...peer.producers.keys(), ...peer.consumers.keys()]);
    const callId = gw.app.sfu.getRoom('acme', room)!.callId;
    await waitForStatsWindow(gw, callId, trackIds);
    const streams = await assertClientStatsMatchServer(gw, callId, { trackIds, paddedVideo: true });
    const seen = [...streams.values()].map((rows) => `${rows[0]!.direction} ${rows[0]!.kind}`);
    // What the server receives from Firefox (its mic and each layer of its camera) and what it sends Firefox.
    for (const kind of ['inbound audio', 'inbound video', 'outbound audio', 'outbound video'])
      assert.ok(seen.includes(kind), `${kind} compared: ${seen.join(', ')}`);
    assert.equal(
      seen.filter((k) => k.startsWith('outbound')).length,
      2,
      'one audio and one video consumer for Firefox',
    );
  });

  test('through the embed page: media both ways, and the embed reports to the portal by postMessage in Firefox too', async () => {
    const room = 'firefox-embed';
    const fox = await firefoxPage();
    const chrome = await chromiumPage();
    await fox.goto(`${portalOrigin}/?token=${await gw.mint({ room, identity: 'fox-embedded' })}`);
    await chrome.goto(`${portalOrigin}/?token=${await gw.mint({ room, identity: 'chrome-embedded' })}`);
    const foxFrame = await waitFor(
      'the embed frame in Firefox',
      async () => fox.frames().find((f) => f.url().startsWith(`${gw.url}/embed`)),
      Boolean,
    );
    const chromeFrame = await waitFor(
      'the embed frame in Chromium',
      async () => chrome.frame({ url: (u) => u.href.startsWith(`${gw.url}/embed`) }),
      Boolean,
    );

    await assertMediaBothWays([
      ['firefox (embedded)', foxFrame as FirefoxFrame],
      ['chromium (embedded)', chromeFrame!],
    ]);
    await assertServedOnNamespace(room, 'fox-embedded');

    // Firefox has no location.ancestorOrigins: the embed must still find its parent among the allowed origins.
    for (const [name, page] of [
      ['firefox', fox],
      ['chromium', chrome],
    ] as const) {
      const events = await waitFor(
        `${name}: the portal hears "joined" and "trackAdded"`,
        () =>
          (page as Evaluates).evaluate(
            () => (window as unknown as { got: Array<{ origin: string; type: string }> }).got,
          ),
        (g) => g.some((e) => e.type === 'joined') && g.some((e) => e.type === 'trackAdded'),
      );
      assert.ok(
        events.every((e) => e.origin === gw.url),
        `${name}: every message comes from the gateway's origin: ${JSON.stringify(events)}`,
      );
    }
    assert.equal(
      await fox.evaluate(() => 'ancestorOrigins' in location),
      false,
      'this Firefox still lacks location.ancestorOrigins',
    );
  });
});
