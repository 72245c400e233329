import { test } from 'vitest';
import assert from 'node:assert/strict';
import { telemetrySuite } from './helpers/telemetrySuite.js';
import { joinThroughPage, receivedMedia, waitFor } from './helpers/browser.js';
import { assertClientStatsMatchServer } from './helpers/clientStats.js';

const suite = telemetrySuite();

test('a browser call fills stats, client stats, transport stats, events and the call summary, under pseudonyms', async () => {
  const { gw, browser } = suite;
  const pages = [];
  for (const identity of ['alice@example.fr', 'bob@example.fr']) {
    const page = await browser.context.newPage();
    await joinThroughPage(
      page,
      `${gw.url}/join?token=${await gw.mint({ room: 'quality', identity, name: identity.split('@')[0] })}`,
    );
    pages.push(page);
  }
  for (const page of pages)
    await waitFor(
      'media',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 10 && m.totalSamplesReceived > 0,
    );
  const callId = gw.app.sfu.getRoom('acme', 'quality')!.callId;
  await new Promise((r) => setTimeout(r, 5000));

  // Server and client rows describe the same streams: same ids, same SSRCs, packet counts that agree.
  const streams = await assertClientStatsMatchServer(gw, callId);
  assert.equal(streams.size, 10, 'per participant: a mic, a camera in 2 simulcast layers, and 2 consumers');

  // What only the browser knows completes the server rows: frame rate, resolution, candidate type.
  const [video] = await gw.query(
    `SELECT max(frame_width) AS w, max(frame_height) AS h, max(frame_rate) AS fps, max(video_quality) AS vq FROM vigie.track_stats WHERE call_id = {c:String} AND kind = 'video' AND direction = 'inbound'`,
    { c: callId },
  );
  assert.ok(video.w >= 320 && video.h >= 240 && video.fps > 5, JSON.stringify(video));
  assert.ok(video.vq >= 1 && video.vq <= 5);
  const transports = await gw.query(
    `SELECT direction, anyIf(protocol, protocol != '') AS protocol, anyIf(candidate_type, candidate_type != '') AS candidate_type, max(bytes_received + bytes_sent) AS traffic FROM vigie.transport_stats WHERE call_id = {c:String} GROUP BY direction`,
    { c: callId },
  );
  assert.deepEqual(transports.map((t) => t.direction).sort(), ['recv', 'send']);
  for (const t of transports) {
    assert.equal(t.protocol, 'udp');
    assert.equal(t.candidate_type, 'host');
    assert.ok(Number(t.traffic) > 0);
  }

  // Call events.
  await pages[1]!.close();
  await waitFor(
    'peer.left',
    async () =>
      (
        await gw.query(
          `SELECT count() AS c FROM vigie.call_events WHERE call_id = {c:String} AND event = 'peer.left'`,
          { c: callId },
        )
      )[0].c,
    (c) => Number(c) === 1,
  );
  const events = await gw.query<{ event: string; n: string }>(
    `SELECT event, count() AS n FROM vigie.call_events WHERE call_id = {c:String} GROUP BY event`,
    { c: callId },
  );
  const ev = Object.fromEntries(events.map((e) => [e.event, Number(e.n)]));
  assert.equal(ev['room.created'], 1);
  assert.equal(ev['peer.joined'], 2);
  assert.equal(ev['producer.created'], 4);
  assert.equal(ev['consumer.created'], 4);
  assert.ok(ev['transport.connected']! >= 4, JSON.stringify(ev));
  assert.ok(ev['producer.closed']! >= 2 && ev['consumer.closed']! >= 2);

  // Pseudonyms: the clear identity is only in `participants`.
  const people = await gw.query<{ participant: string; identity: string }>(
    `SELECT participant, identity FROM vigie.participants FINAL WHERE tenant = 'acme' AND identity LIKE '%@example.fr'`,
  );
  assert.equal(people.length, 2);
  const pseudonyms = new Set(
    (
      await gw.query<{ participant: string }>(
        `SELECT DISTINCT participant FROM vigie.track_stats WHERE call_id = {c:String}`,
        { c: callId },
      )
    ).map((r) => r.participant),
  );
  assert.deepEqual(pseudonyms, new Set(people.map((p) => p.participant)));
  for (const table of ['track_stats', 'transport_stats', 'client_stats', 'call_events']) {
    const [hit] = await gw.query(
      `SELECT count() AS c FROM vigie.${table} WHERE position(toString(tuple(*)), 'example.fr') > 0`,
    );
    assert.equal(Number(hit.c), 0, `no clear identity in ${table}`);
  }

  // The per-call summary: one row per participant, with quality.
  const summary = await gw.query(
    `SELECT participant, duration_s, samples, loss_mean, loss_p95, jitter_mean_ms, rtt_p95_ms, mos_mean, mos_p95 FROM vigie.call_summary WHERE call_id = {c:String}`,
    { c: callId },
  );
  assert.equal(summary.length, 2);
  for (const row of summary) {
    assert.ok(row.duration_s > 3, JSON.stringify(row));
    assert.ok(row.mos_mean > 4 && row.mos_mean <= 4.5, `MOS on a clean loopback call: ${row.mos_mean}`);
    assert.ok(row.loss_p95 < 0.01);
  }
});
