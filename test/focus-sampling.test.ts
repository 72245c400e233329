import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import { issuesOf } from './helpers/issues.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { lossyPublisher, lossySubscriber } from './helpers/lossyMedia.js';
import { waitFor } from './helpers/browser.js';
import { starveProcess } from './helpers/starve.js';

/**
 * Focused sampling: every track is sampled at the stats interval (here 10 minutes, so never during the test), and a
 * track the worker scores below 10 (loss) is sampled every second until it is clean again. The diagnosis sees an
 * uplink and a downlink issue, and their end, within seconds; a clean call costs no sample at all. The workers are
 * probed at the focus pace too, so a starved one is seen within seconds. Real media: ffmpeg behind a dropping UDP
 * relay, a subscriber that reports its loss in RTCP.
 */
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({
    telemetry: { statsIntervalMs: 600_000, focusIntervalMs: 1000 },
    writer: { flushIntervalMs: 200 },
  });
});
afterAll(() => gw?.close());

const trackRows = async (room: string) =>
  Number(
    (
      await gw.query<{ n: string }>(`SELECT count() AS n FROM vigie.track_stats WHERE room = {room:String}`, { room })
    )[0]!.n,
  );

/** Alice publishing to Bob, each behind a relay whose loss the test sets, once media flows; and the issues raised. */
async function call(name: string) {
  const room = await gw.app.sfu.getOrCreateRoom('acme', name);
  const seen = issuesOf(gw, room);
  const alice = await lossyPublisher(room, 'alice');
  const bob = await lossySubscriber(room, alice.bot.producer.id, 'bob');
  await waitFor(
    'media to flow to the subscriber',
    async () => bob.receiver.received(),
    (n) => n > 50,
  );
  return { room, seen, alice, bob };
}

test('a clean call is not sampled between intervals: no track row at all while the interval has not come', async () => {
  const { seen } = await call('focus-clean');
  await new Promise((r) => setTimeout(r, 6000));
  await gw.app.telemetry!.writer.flush();
  assert.equal(await trackRows('focus-clean'), 0);
  assert.deepEqual(seen.raised, []);
});

test("a publisher's uplink loss is seen within seconds, sampled only once the worker's score shows it, and ends", async () => {
  const { seen, alice, bob } = await call('focus-uplink');
  alice.loss.dropEvery = 8; // 12.5%
  const issue = await seen.raisedOf('uplink_loss');
  assert.equal(issue.peer, alice.peer);
  assert.deepEqual(issue.affected, [bob.peer]);
  assert.deepEqual(
    seen.raised.map((i) => i.kind),
    ['uplink_loss'],
    'not blamed on Bob',
  );
  alice.loss.dropEvery = undefined;
  await seen.ended(issue, 30_000);
  await gw.app.telemetry!.writer.flush();
  assert.ok((await trackRows('focus-uplink')) > 0, 'the focused samples are stored as rows');
});

test("a subscriber's downlink loss is seen within seconds, judged against the publisher sampled with it", async () => {
  const { seen, bob } = await call('focus-downlink');
  bob.loss.dropEvery = 8;
  const issue = await seen.raisedOf('downlink_loss');
  assert.equal(issue.peer, bob.peer);
  assert.deepEqual(issue.affected, [bob.peer]);
  assert.deepEqual(
    seen.raised.map((i) => i.kind),
    ['downlink_loss'],
    'not blamed on Alice',
  );
});

test('a starved worker is seen within seconds: the workers are probed at the focus pace, not the interval', async () => {
  const { room, seen, alice, bob } = await call('focus-overload');
  const slot = room.slotOf(alice.peer);
  const release = starveProcess(slot.worker.pid);
  onTestFinished(release);
  const issue = await seen.raisedOf('sfu_overload');
  release();
  assert.equal(issue.worker, slot.index);
  assert.deepEqual(new Set(issue.affected), new Set([alice.peer, bob.peer]));
  await seen.ended(issue, 30_000);
});
