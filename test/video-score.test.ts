import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, waitFor } from './helpers/browser.js';

// The video score on a real call: two Chromium participants (fake camera, 640×480 at 20 fps, simulcast in two
// layers) on loopback. A clean call scores as clean; then one impairment at a time, each of which must lower the
// score of the participant and direction it hits, and only those.

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
beforeAll(async () => {
  gw = await startGateway({
    telemetry: { statsIntervalMs: 1000, clientStatsIntervalMs: 1000 },
    writer: { flushIntervalMs: 200 },
  });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
});

/**
 * "Good" on the 1–5 scale (ITU-T P.800's ACR labels): what a clean call must reach, in each direction. A clean
 * stream scores 5 by construction; this leaves room for what a loaded 2-core machine does to the frame rate (18 of
 * 20 fps is 4.76), and stays above every impairment below (one layer down is 3.6, a quarter of the frames 2.74).
 */
const GOOD = 4;

/** One stream of the call: whose camera, seen from where. `upload`: the SFU receiving it; else a viewer. */
type Stream = 'alice upload' | 'bob upload' | "bob's view of alice" | "alice's view of bob";

test('a clean call scores as clean; a lower layer for one viewer, or a sender that encodes fewer frames than it captures, lowers only the streams it hits', async () => {
  const pages: Record<'alice' | 'bob', Page> = {} as never;
  for (const name of ['alice', 'bob'] as const) {
    pages[name] = await browser.context.newPage();
    await joinThroughPage(
      pages[name],
      `${gw.url}/join?token=${await gw.mint({ room: 'score', identity: name, name })}`,
    );
  }
  const room = () => gw.app.sfu.getRoom('acme', 'score');
  const peer = (identity: string) => [...(room()?.peers.values() ?? [])].find((p) => p.identity === identity);
  const camera = (identity: string) =>
    [...(peer(identity)?.producers.values() ?? [])].find((p) => p.appData.source === 'camera');
  const viewerOf = (viewer: string, sender: string) =>
    [...(peer(viewer)?.consumers.values() ?? [])].find((c) => c.producerId === camera(sender)?.id);
  await waitFor(
    'both cameras seen by the other',
    async () => Boolean(viewerOf('alice', 'bob') && viewerOf('bob', 'alice')),
    Boolean,
  );
  const callId = room()!.callId;
  const streamOf = (r: { peer_id: string; direction: string; producer_id: string }): Stream => {
    const sender = r.producer_id === camera('alice')!.id ? 'alice' : 'bob';
    if (r.direction === 'inbound') return `${sender} upload`;
    return sender === 'alice' ? "bob's view of alice" : "alice's view of bob";
  };

  /** The scores of each stream over the rows written after `since` (ms), once each has `rows` of them. */
  const scoresSince = async (since: number, rows = 5) => {
    const read = async () =>
      gw.query<{
        peer_id: string;
        direction: string;
        producer_id: string;
        n: string;
        median: number;
        min: number;
        fps: number;
        w: number;
      }>(
        `SELECT peer_id, direction, producer_id, count() AS n, median(video_quality) AS median, min(video_quality) AS min,
                median(frame_rate) AS fps, median(frame_width) AS w
         FROM vigie.track_stats
         WHERE call_id = {c:String} AND kind = 'video' AND video_quality IS NOT NULL
           AND toUnixTimestamp64Milli(ts) > {since:Int64} AND (direction = 'outbound' OR spatial_layer = 1)
         GROUP BY peer_id, direction, producer_id`,
        { c: callId, since },
      );
    const all = await waitFor(
      `${rows} scored rows of each of the 4 streams`,
      read,
      (r) => r.length === 4 && r.every((s) => Number(s.n) >= rows),
      60_000,
    );
    return Object.fromEntries(
      all.map((r) => [streamOf(r), { median: Number(r.median), min: Number(r.min), fps: r.fps, width: r.w }]),
    ) as Record<Stream, { median: number; min: number; fps: number; width: number }>;
  };
  /** What a page decodes of the other's camera, in its own getStats(). */
  const received = (page: Page) =>
    page.evaluate(async () => {
      const { inbound } = await (window as any).vigieCall.getStats();
      const video = (Object.values(inbound) as any[][])
        .flat()
        .find((r) => r.type === 'inbound-rtp' && r.kind === 'video');
      return { width: video?.frameWidth ?? 0, fps: video?.framesPerSecond ?? 0 };
    });
  const clean = (s: Record<Stream, { median: number }>, streams: Stream[]) => {
    for (const name of streams) assert.ok(s[name].median >= GOOD, `${name} is clean: ${JSON.stringify(s)}`);
  };

  // Clean: once each viewer gets the full layer (bandwidth estimation ramps up first), every stream scores ≥ 4.
  for (const page of Object.values(pages))
    await waitFor(
      'the full 640-pixel layer',
      () => received(page),
      (r) => r.width === 640,
      60_000,
    );
  const cleanScores = await scoresSince(Date.now());
  console.log('clean call', cleanScores);
  clean(cleanScores, ['alice upload', 'bob upload', "bob's view of alice", "alice's view of bob"]);

  // Bob asks for Alice's lower layer (a thumbnail layout, or his own bandwidth): his view of her loses a quarter
  // of the pixels, and only his view. Alice still sends both layers as she means to.
  const prefer = (layer: number) =>
    pages.bob.evaluate(([id, l]) => (window as any).vigieCall.setPreferredLayers(id, l), [
      viewerOf('bob', 'alice')!.id,
      layer,
    ] as const);
  await prefer(0);
  await waitFor(
    'the 320-pixel layer',
    () => received(pages.bob),
    (r) => r.width === 320,
  );
  const lowLayer = await scoresSince(Date.now());
  console.log('bob on the low layer', lowLayer);
  assert.ok(lowLayer["bob's view of alice"].median < GOOD, JSON.stringify(lowLayer));
  clean(lowLayer, ['alice upload', 'bob upload', "alice's view of bob"]);
  await prefer(1);
  await waitFor(
    'the 640-pixel layer again',
    () => received(pages.bob),
    (r) => r.width === 640,
  );

  // Alice's encoder sends 5 of the 20 frames she captures (as a CPU-starved one does): her upload and every viewer
  // of her lose, Bob's camera and Alice's view of it do not.
  await pages.alice.evaluate(async () => {
    const sender: RTCRtpSender = (window as any).vigieCall.producers.get('camera').rtpSender;
    const params = sender.getParameters();
    for (const e of params.encodings) e.maxFramerate = 5;
    await sender.setParameters(params);
  });
  await waitFor(
    '5 fps at Bob',
    () => received(pages.bob),
    (r) => r.fps > 0 && r.fps <= 6,
  );
  const slowSender = await scoresSince(Date.now());
  console.log('alice encodes 5 fps', slowSender);
  assert.ok(slowSender['alice upload'].median < GOOD, JSON.stringify(slowSender));
  assert.ok(slowSender["bob's view of alice"].median < GOOD, JSON.stringify(slowSender));
  clean(slowSender, ['bob upload', "alice's view of bob"]);
});
