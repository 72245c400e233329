import { onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { telemetrySuite } from './helpers/telemetrySuite.js';
import { joinThroughPage, waitFor } from './helpers/browser.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import type { TestGateway } from './helpers/gateway.js';
import { startUdpRelay } from './helpers/udpRelay.js';

// The video score on a real call: two Chromium participants (fake camera, 640×480 at 20 fps, simulcast in two
// layers) on loopback. A clean call scores as clean; then one impairment at a time, each of which must lower the
// score of the participant and direction it hits, and only those.

const suite = telemetrySuite();

/**
 * "Good" on the 1–5 scale (ITU-T P.800's ACR labels): what a clean call must reach, in each direction. A clean
 * stream scores 5 by construction; this leaves room for what a loaded 2-core machine does to the frame rate (18 of
 * 20 fps is 4.76), and stays above every impairment below (one layer down is 3.6, a quarter of the frames 2.74).
 */
const GOOD = 4;

/** One stream of the call: whose camera, seen from where. `upload`: the SFU receiving it; else a viewer. */
type Stream = 'alice upload' | 'bob upload' | "bob's view of alice" | "alice's view of bob";
type Scores = Record<Stream, { median: number; fps: number[]; width: number }>;

/**
 * Waits until the last 5 scored rows of the views of `producerId` (its consumers) written after `since` pass
 * `check`, given their median score; returns those rows, newest first.
 */
function viewsOf(
  gw: TestGateway,
  callId: string,
  producerId: string,
  what: string,
  check: (median: number, rows: Array<{ score: number; fps: number }>) => boolean,
  since = 0,
) {
  return waitFor(
    what,
    async () =>
      (
        await gw.query<{ video_quality: number; frame_rate: number }>(
          `SELECT video_quality, frame_rate FROM vigie.track_stats WHERE call_id = {c:String} AND producer_id = {p:String}
             AND direction = 'outbound' AND video_quality IS NOT NULL AND toUnixTimestamp64Milli(ts) > {since:Int64}
           ORDER BY ts DESC LIMIT 5`,
          { c: callId, p: producerId, since },
        )
      ).map((r) => ({ score: Number(r.video_quality), fps: Number(r.frame_rate) })),
    (r) => r.length === 5 && check(r.map((x) => x.score).sort((a, b) => a - b)[2]!, r),
    120_000,
  );
}

test('a clean call scores as clean; a lower layer for one viewer, or a sender that encodes fewer frames than it captures, lowers only the streams it hits', async () => {
  const { gw, browser } = suite;
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
  const streamOf = (r: { direction: string; producer_id: string }): Stream => {
    const sender = r.producer_id === camera('alice')!.id ? 'alice' : 'bob';
    if (r.direction === 'inbound') return `${sender} upload`;
    return sender === 'alice' ? "bob's view of alice" : "alice's view of bob";
  };

  /** Each stream's median score, frame rate and width over its last 5 scored rows after `since` (ms). */
  const lastRows = async (since: number): Promise<Scores | undefined> => {
    const rows = await gw.query<{
      direction: string;
      producer_id: string;
      samples: Array<[string, number, number, number]>;
    }>(
      `SELECT direction, producer_id,
              groupArray((toUnixTimestamp64Milli(ts), video_quality, frame_rate, frame_width)) AS samples
       FROM vigie.track_stats
       WHERE call_id = {c:String} AND kind = 'video' AND video_quality IS NOT NULL
         AND toUnixTimestamp64Milli(ts) > {since:Int64} AND (direction = 'outbound' OR spatial_layer = 1)
       GROUP BY direction, producer_id`,
      { c: callId, since },
    );
    const median = (v: number[]) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
    const scores: Partial<Scores> = {};
    for (const r of rows) {
      const last = r.samples
        .map((x) => x.map(Number))
        .sort((a, b) => a[0]! - b[0]!)
        .slice(-5);
      if (last.length < 5) return undefined;
      scores[streamOf(r)] = {
        median: median(last.map((x) => x[1]!)),
        fps: last.map((x) => x[2]!),
        width: last[4]![3]!,
      };
    }
    return rows.length === 4 ? (scores as Scores) : undefined;
  };
  /**
   * Waits for the scores of the rows written from now on to read as `check` says, over 5 samples at once. On a
   * loaded machine (2 cores shared with other tests) Chromium sometimes decodes 3 fps of a clean call for a few
   * seconds, which the score rightly reports: the claims are about the call while the machine keeps up, so a window
   * where it did not is waited out. The old formula never scored a clean call above 2.9, in any window.
   */
  const settle = (what: string, check: (s: Scores) => boolean, since = Date.now()) =>
    waitFor(
      what,
      () => lastRows(since),
      (s) => s !== undefined && check(s),
      120_000,
    ) as Promise<Scores>;
  const good = (s: Scores, streams: Stream[]) => streams.every((name) => s[name].median >= GOOD);
  /** Waits for what a page decodes of the other's camera (its own getStats()) to pass `check`. */
  const decodes = (what: string, page: Page, check: (r: { width: number; fps: number }) => boolean) =>
    waitFor(
      what,
      () =>
        page.evaluate(async () => {
          const { inbound } = await (window as any).vigieCall.getStats();
          const video = (Object.values(inbound) as any[][])
            .flat()
            .find((r) => r.type === 'inbound-rtp' && r.kind === 'video');
          return { width: video?.frameWidth ?? 0, fps: video?.framesPerSecond ?? 0 };
        }),
      check,
      60_000,
    );

  // Clean: once each viewer gets the full layer (bandwidth estimation ramps up first), every stream scores ≥ 4.
  for (const page of Object.values(pages)) await decodes('the full 640-pixel layer', page, (r) => r.width === 640);
  const ALL: Stream[] = ['alice upload', 'bob upload', "bob's view of alice", "alice's view of bob"];
  console.log('clean call', await settle('every stream scored as clean', (s) => good(s, ALL)));

  // Bob asks for Alice's lower layer (a thumbnail layout, or his own bandwidth): his view of her loses a quarter
  // of the pixels, and only his view. Alice still sends both layers as she means to.
  const prefer = (layer: number) =>
    pages.bob.evaluate(([id, l]) => (window as any).vigieCall.setPreferredLayers(id, l), [
      viewerOf('bob', 'alice')!.id,
      layer,
    ] as const);
  await prefer(0);
  await decodes('the 320-pixel layer', pages.bob, (r) => r.width === 320);
  const lowLayer = await settle(
    "Bob's view of Alice below good, and only it",
    (s) =>
      s["bob's view of alice"].width === 320 &&
      s["bob's view of alice"].median < GOOD &&
      good(s, ['alice upload', 'bob upload', "alice's view of bob"]),
  );
  console.log('bob on the low layer', lowLayer);
  await prefer(1);
  await decodes('the 640-pixel layer again', pages.bob, (r) => r.width === 640);

  // Alice's encoder sends 5 of the 20 frames she captures (as a CPU-starved one does): her upload and every viewer
  // of her lose, Bob's camera and Alice's view of it do not.
  await pages.alice.evaluate(async () => {
    const sender: RTCRtpSender = (window as any).vigieCall.producers.get('camera').rtpSender;
    const params = sender.getParameters();
    for (const e of params.encodings) e.maxFramerate = 5;
    await sender.setParameters(params);
  });
  await decodes('5 fps at Bob', pages.bob, (r) => r.fps > 0 && r.fps <= 6);
  const slowSender = await settle(
    "Alice's upload and Bob's view of it below good, and only those",
    (s) =>
      s["bob's view of alice"].fps.every((f) => f <= 6) &&
      s['alice upload'].median < GOOD &&
      s["bob's view of alice"].median < GOOD &&
      good(s, ['bob upload', "alice's view of bob"]),
  );
  console.log('alice encodes 5 fps', slowSender);

  // Alice turns her camera off: nothing to judge, so no score, rather than the bottom of the scale on the dashboard.
  await pages.alice.evaluate(() => (window as any).vigieCall.setPaused('camera', true));
  await waitFor('the paused camera at the SFU', async () => viewerOf('bob', 'alice')?.producerPaused, Boolean);
  const since = Date.now();
  const paused = await waitFor(
    "3 rows of each stream of Alice's paused camera",
    async () =>
      gw.query<{ direction: string; n: string; scored: string }>(
        `SELECT direction, count() AS n, countIf(video_quality IS NOT NULL) AS scored FROM vigie.track_stats
         WHERE call_id = {c:String} AND producer_id = {p:String} AND toUnixTimestamp64Milli(ts) > {since:Int64}
         GROUP BY direction`,
        { c: callId, p: camera('alice')!.id, since },
      ),
    (r) => r.length === 2 && r.every((d) => Number(d.n) >= 3),
  );
  for (const d of paused) assert.equal(Number(d.scored), 0, `no score while paused: ${JSON.stringify(paused)}`);

  // Alice shares her screen (Chromium's fake display: 1280×720, set to 30 fps, giving 20). A screen gives frames as
  // it changes, below the rate it is set to, and is judged against what it gives: Bob's view of it is clean. Against
  // its 30 fps setting it would read 4.14 whatever the machine does; the bar is 4.5 for that reason.
  await pages.alice.evaluate(() => (window as any).vigieCall.publishScreen());
  const screen = await waitFor(
    "Bob's view of Alice's screen",
    async () => {
      const shared = [...(peer('alice')?.producers.values() ?? [])].find((p) => p.appData.source === 'screen');
      return [...(peer('bob')?.consumers.values() ?? [])].find((c) => c.producerId === shared?.id);
    },
    Boolean,
  );
  const screenScores = await viewsOf(
    gw,
    callId,
    screen!.producerId,
    "Bob's view of the screen scored as clean over 5 rows",
    (median) => median >= 4.5,
  );
  console.log("bob's view of alice's screen", screenScores);
});

test('a sender that says nothing of what it captures (an RTP bot) is judged against what its stream shows, and loss on its way in lowers its views', async () => {
  const { gw, browser } = suite;
  const page = await browser.context.newPage();
  onTestFinished(() => page.close());
  await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room: 'bot-score', identity: 'viewer' })}`);
  const room = await waitFor('the room', async () => gw.app.sfu.getRoom('acme', 'bot-score'), Boolean);
  // ffmpeg's test pattern, 320×240 at 15 fps: half the old formula's fixed 30 fps, and a sixth of its pixel scale. It
  // goes through a relay whose options are read at each packet, so that loss can start mid-call.
  const relayOptions: { dropEvery?: number } = {};
  let relay: Awaited<ReturnType<typeof startUdpRelay>> | undefined;
  onTestFinished(() => relay?.close());
  const bot = await startFfmpegBot(room!, {
    kind: 'video',
    bitrateKbps: 300,
    through: async (port) => {
      relay = await startUdpRelay({ ip: '127.0.0.1', port }, relayOptions);
      return relay.port;
    },
  });
  onTestFinished(() => bot.stop());
  // The stream starts (its frame rate ramps up to 15), and a loaded machine may decode fewer frames for a while:
  // the claim is that 5 scored rows in a row read as clean once it runs as it means to. The old formula gave 1.78.
  const clean = await viewsOf(
    gw,
    room!.callId,
    bot.producer.id,
    'the view of the bot at its 15 fps scored as clean',
    (m, rows) => m >= GOOD && rows.every((r) => r.fps >= 13),
  );
  console.log('an RTP bot seen by a browser', clean);

  // 1 packet in 10 lost on the bot's way in: ffmpeg does not retransmit, so the viewer decodes fewer frames.
  relayOptions.dropEvery = 10;
  const lossy = await viewsOf(
    gw,
    room!.callId,
    bot.producer.id,
    'the view of the lossy bot below good',
    (m) => m < GOOD,
    Date.now(),
  );
  console.log('the same bot losing 10% on its way in', lossy);
});
