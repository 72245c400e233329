import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
before(async () => {
  gw = await startGateway({ telemetry: { statsIntervalMs: 1000, clientStatsIntervalMs: 1000 }, writer: { flushIntervalMs: 200 } });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gw?.close();
});

test('a browser call fills stats, client stats, transport stats, events and the call summary, under pseudonyms', async () => {
  const pages = [];
  for (const identity of ['alice@example.fr', 'bob@example.fr']) {
    const page = await browser.context.newPage();
    await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room: 'quality', identity, name: identity.split('@')[0] })}`);
    pages.push(page);
  }
  for (const page of pages) await waitFor('media', () => receivedMedia(page), (m) => m.framesDecoded > 10 && m.totalSamplesReceived > 0);
  const callId = gw.app.sfu.getRoom('acme', 'quality')!.callId;
  await new Promise((r) => setTimeout(r, 5000));

  // Server and client rows describe the same streams: same ids, same SSRCs, packet counts that agree.
  // A simulcast camera is one stream per layer, each with its own SSRC.
  const serverRows = await gw.query<{ track_id: string; direction: string; kind: string; ssrc: string; packets: string; ms: string }>(
    `SELECT track_id, direction, kind, ssrc, packets, toUnixTimestamp64Milli(ts) AS ms FROM vigie.track_stats WHERE call_id = {c:String}`,
    { c: callId },
  );
  const clientRows = await gw.query<{ id: string; direction: string; ssrc: string; packets: string; ms: string }>(
    `SELECT if(direction = 'outbound', producer_id, consumer_id) AS id, direction, ssrc, packets, toUnixTimestamp64Milli(ts) AS ms FROM vigie.client_stats WHERE call_id = {c:String}`,
    { c: callId },
  );
  const streams = new Map<string, typeof serverRows>();
  for (const r of serverRows) {
    const key = `${r.track_id}/${r.direction}/${r.ssrc}`;
    streams.set(key, [...(streams.get(key) ?? []), r]);
  }
  assert.equal(streams.size, 10, 'per participant: a mic, a camera in 2 simulcast layers, and 2 consumers');
  for (const rows of streams.values()) {
    const s = rows[0]!;
    const mine = clientRows.filter((c) => c.id === s.track_id && Number(c.ssrc) === Number(s.ssrc));
    assert.ok(mine.length > 0, `client stats for ${s.direction} ${s.kind} track ${s.track_id}`);
    assert.ok(mine.every((c) => c.direction === (s.direction === 'inbound' ? 'outbound' : 'inbound')), 'the browser sends what the SFU receives');
    // Compare what each side counted over the same window of the call, from one server sample to the last:
    // the browser's counter is interpolated at both instants between its own samples. Cumulative totals do
    // not compare: the browser starts counting before the SFU knows the stream (packets that arrive while
    // the produce request is in flight are dropped), which on a loaded machine is a second of traffic.
    const seen = mine.map((c) => ({ ms: Number(c.ms), packets: Number(c.packets) })).sort((a, b) => a.ms - b.ms);
    const clientAt = (t: number) => {
      const before = seen.filter((c) => c.ms <= t).at(-1) ?? seen[0]!;
      const after = seen.find((c) => c.ms > t && c !== before) ?? seen.filter((c) => c !== before).at(-1);
      const rate = after && after.ms !== before.ms ? (after.packets - before.packets) / (after.ms - before.ms) : 0;
      return { packets: before.packets + rate * (t - before.ms), rate };
    };
    const samples = rows.map((r) => ({ ms: Number(r.ms), packets: Number(r.packets) })).sort((a, b) => a.ms - b.ms);
    const first = samples.find((r) => r.ms >= seen[0]!.ms) ?? samples[0]!;
    const last = samples.at(-1)!;
    assert.ok(last.ms - first.ms >= 2000, `${s.direction} ${s.kind} ssrc ${s.ssrc}: a window of at least 2 s to compare (${last.ms - first.ms} ms)`);
    const serverCount = samples.filter((r) => r.ms > first.ms && r.ms <= last.ms).reduce((n, r) => n + r.packets, 0);
    const [from, to] = [clientAt(first.ms), clientAt(last.ms)];
    const clientCount = to.packets - from.packets;
    // Left over: packets in flight and the sampling offsets at both ends, bounded by half a second of traffic each.
    const allowed = 0.1 * serverCount + (Math.abs(from.rate) + Math.abs(to.rate)) * 500;
    assert.ok(
      Math.abs(clientCount - serverCount) <= allowed,
      `${s.direction} ${s.kind} ssrc ${s.ssrc}: over ${first.ms}..${last.ms} the client counted ${clientCount.toFixed(0)}, the server ${serverCount}, allowed ${allowed.toFixed(0)}`,
    );
  }

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
  await waitFor('peer.left', async () => (await gw.query(`SELECT count() AS c FROM vigie.call_events WHERE call_id = {c:String} AND event = 'peer.left'`, { c: callId }))[0].c, (c) => Number(c) === 1);
  const events = await gw.query<{ event: string; n: string }>(`SELECT event, count() AS n FROM vigie.call_events WHERE call_id = {c:String} GROUP BY event`, { c: callId });
  const ev = Object.fromEntries(events.map((e) => [e.event, Number(e.n)]));
  assert.equal(ev['room.created'], 1);
  assert.equal(ev['peer.joined'], 2);
  assert.equal(ev['producer.created'], 4);
  assert.equal(ev['consumer.created'], 4);
  assert.ok(ev['transport.connected']! >= 4, JSON.stringify(ev));
  assert.ok(ev['producer.closed']! >= 2 && ev['consumer.closed']! >= 2);

  // Pseudonyms: the clear identity is only in `participants`.
  const people = await gw.query<{ participant: string; identity: string }>(`SELECT participant, identity FROM vigie.participants FINAL WHERE tenant = 'acme' AND identity LIKE '%@example.fr'`);
  assert.equal(people.length, 2);
  const pseudonyms = new Set((await gw.query<{ participant: string }>(`SELECT DISTINCT participant FROM vigie.track_stats WHERE call_id = {c:String}`, { c: callId })).map((r) => r.participant));
  assert.deepEqual(pseudonyms, new Set(people.map((p) => p.participant)));
  for (const table of ['track_stats', 'transport_stats', 'client_stats', 'call_events']) {
    const [hit] = await gw.query(`SELECT count() AS c FROM vigie.${table} WHERE position(toString(tuple(*)), 'example.fr') > 0`);
    assert.equal(Number(hit.c), 0, `no clear identity in ${table}`);
  }

  // The per-call summary: one row per participant, with quality.
  const summary = await gw.query(`SELECT participant, duration_s, samples, loss_mean, loss_p95, jitter_mean_ms, rtt_p95_ms, mos_mean, mos_p95 FROM vigie.call_summary WHERE call_id = {c:String}`, { c: callId });
  assert.equal(summary.length, 2);
  for (const row of summary) {
    assert.ok(row.duration_s > 3, JSON.stringify(row));
    assert.ok(row.mos_mean > 4 && row.mos_mean <= 4.5, `MOS on a clean loopback call: ${row.mos_mean}`);
    assert.ok(row.loss_p95 < 0.01);
  }
});
