import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import type { types as ms } from 'mediasoup';
import { startCoturn, type Coturn } from './helpers/coturn.js';
import { issuesOf } from './helpers/issues.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import type { Peer } from '../src/media/index.js';
import type { TrackSample } from '../src/telemetry/StatsCollector.js';

/**
 * The detectors that read what the browsers report (client stats): an encoder limited by bandwidth, frozen video,
 * a connection through a TURN relay; and a clean two-party Chromium call that raises nothing.
 */
const TURN_SECRET = 'turn-test-secret-0123456789abcdef';
let coturn: Coturn;
let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
beforeAll(async () => {
  coturn = await startCoturn({ secret: TURN_SECRET, realm: 'vigie.test' });
  gw = await startGateway({
    telemetry: { statsIntervalMs: 1000, clientStatsIntervalMs: 1000 },
    writer: { flushIntervalMs: 200 },
    ice: { turnUrls: [`${coturn.url}?transport=udp`], turnSecret: TURN_SECRET },
  });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await coturn?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Alice and Bob (and whoever else is named) in a room, each seeing the others' video; `relay` joins through TURN. */
async function call(room: string, names: string[], { relay = [] as string[] } = {}) {
  const pages = [];
  for (const name of names) {
    const page = await browser.context.newPage();
    onTestFinished(() => page.close());
    const token = await gw.mint({ room, identity: name, name });
    await joinThroughPage(page, `${gw.url}/join?token=${token}${relay.includes(name) ? '&relay=1' : ''}`);
    pages.push(page);
  }
  for (const page of pages)
    await waitFor(
      'media',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 10 && m.totalSamplesReceived > 0,
    );
  const r = gw.app.sfu.getRoom('acme', room)!;
  return { room: r, peer: (name: string) => r.findPeerByIdentity(name)! };
}

/**
 * Until the SFU has received both simulcast layers of the participant's video in 3 samples in a row: its upload has
 * settled, and a congestion is a fall from there (layers its estimate turns on and off as it climbs are not).
 */
function uploadSettled(peer: Peer): Promise<void> {
  const collector = gw.app.telemetry!.collector.observer;
  let run = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      collector.off('tracksample', onSample);
      reject(new Error(`${peer.identity}'s upload did not settle on two layers in 30 s`));
    }, 30_000);
    const onSample = (s: TrackSample) => {
      if (s.peer !== peer || s.role !== 'producer' || s.kind !== 'video') return;
      run = (s.activeStreams ?? 0) >= 2 ? run + 1 : 0;
      if (run < 3) return;
      clearTimeout(timer);
      collector.off('tracksample', onSample);
      resolve();
    };
    collector.on('tracksample', onSample);
  });
}

test('a clean two-party Chromium call raises no issue', async () => {
  const seen = issuesOf(gw, () => gw.app.sfu.getRoom('acme', 'diag-b-clean'));
  await call('diag-b-clean', ['alice', 'bob']);
  await sleep(10_000);
  assert.deepEqual(seen.list(), [], seen.detail());
});

test("an encoder held back by the bandwidth is the publisher's issue, seen by whoever watches", async () => {
  const seen = issuesOf(gw, () => gw.app.sfu.getRoom('acme', 'diag-b-bwe'));
  const { peer } = await call('diag-b-bwe', ['alice', 'bob']);
  await uploadSettled(peer('alice'));
  // The SFU tells Alice's browser it may send no more than 80 kbit/s (REMB): her encoder must scale down.
  const send = [...peer('alice').transports.values()].find((t) => t.appData.direction === 'send') as ms.WebRtcTransport;
  await send.setMaxIncomingBitrate(80_000);
  const issue = await seen.raisedOf('encoder_limited');
  assert.equal(issue.peer, peer('alice'));
  assert.equal(issue.direction, 'uplink');
  assert.equal(issue.evidence.reason, 'bandwidth');
  assert.deepEqual(issue.affected, [peer('bob')]);
  // The SFU sees it at its ingress too, without the browser's word: Alice's top layer no longer arrives.
  const narrow = await seen.raisedOf('uplink_congestion');
  assert.equal(narrow.peer, peer('alice'));
  assert.equal(narrow.direction, 'uplink');
  assert.deepEqual(narrow.affected, [peer('bob')]);
  assert.ok(Number(narrow.evidence.layers) < Number(narrow.evidence.sender_top_layers), seen.detail());
  // Bob's video may freeze while his consumer moves to the layer that still arrives: that is put down to Alice.
  assert.deepEqual(
    seen.list().filter((l) => !/^(encoder_limited|uplink_congestion|video_frozen) alice$/.test(l)),
    [],
    `no loss blamed on anyone: ${seen.detail()}`,
  );
  assert.deepEqual([...new Set(seen.raised.map((i) => i.peer?.identity))], ['alice'], 'nothing blamed on Bob');
});

test("a subscriber whose bandwidth holds them on a lower layer is that subscriber's downlink congestion", async () => {
  const seen = issuesOf(gw, () => gw.app.sfu.getRoom('acme', 'diag-b-congestion'));
  const { peer } = await call('diag-b-congestion', ['alice', 'bob']);
  // The SFU may send Bob no more than 250 kbit/s: Alice's top layer (500 kbit/s) no longer fits.
  const recv = [...peer('bob').transports.values()].find((t) => t.appData.direction === 'recv') as ms.WebRtcTransport;
  await recv.setMaxOutgoingBitrate(250_000);
  const issue = await seen.raisedOf(
    'downlink_congestion',
    // The SFU's estimate of Bob's bandwidth comes down over some seconds before the layer changes.
    60_000,
  );
  assert.equal(issue.peer, peer('bob'));
  assert.equal(issue.direction, 'downlink');
  assert.deepEqual(issue.affected, [peer('bob')]);
  assert.ok(Number(issue.evidence.layer) < Number(issue.evidence.wanted_layer), JSON.stringify(issue.evidence));
  assert.deepEqual(
    seen.list().filter((l) => !l.startsWith('downlink_congestion')),
    [],
    'nothing blamed on Alice',
  );
});

test("video that stops reaching one subscriber for a while is a freeze on that subscriber's side", async () => {
  const seen = issuesOf(gw, () => gw.app.sfu.getRoom('acme', 'diag-b-freeze'));
  const { peer } = await call('diag-b-freeze', ['alice', 'bob']);
  const video = [...peer('bob').consumers.values()].find((c) => c.kind === 'video')!;
  // The SFU holds Alice's video from Bob for two seconds, without telling his browser: it sees a freeze.
  await video.pause();
  await sleep(2000);
  await video.resume();
  await video.requestKeyFrame();
  const issue = await seen.raisedOf('video_frozen');
  assert.equal(issue.peer, peer('bob'));
  assert.equal(issue.direction, 'downlink');
  assert.deepEqual(issue.affected, [peer('bob')]);
  assert.ok(Number(issue.evidence.frozen_ms) >= 1000, JSON.stringify(issue.evidence));
  assert.equal(issue.evidence.publisher, gw.app.telemetry!.keys.participant(peer('alice')));
  await seen.ended(issue);
});

test('a participant connected through the TURN relay is reported, and only that one', async () => {
  const seen = issuesOf(gw, () => gw.app.sfu.getRoom('acme', 'diag-b-relay'));
  const { peer } = await call('diag-b-relay', ['alice', 'carol'], { relay: ['carol'] });
  const issue = await seen.raisedOf('turn_relay');
  assert.equal(issue.peer, peer('carol'));
  assert.equal(issue.direction, 'both');
  assert.equal(issue.evidence.protocol, 'udp');
  await sleep(3000);
  assert.deepEqual(seen.list(), ['turn_relay carol']);
  // Carol leaves: her route's issue ends with her.
  gw.app.sfu.getRoom('acme', 'diag-b-relay')!.removePeer(peer('carol'), 'test');
  await seen.ended(issue);
});
