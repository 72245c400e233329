import assert from 'node:assert/strict';
import { waitFor } from './browser.js';
import type { TestGateway } from './gateway.js';

/**
 * Waits until every stream of `trackIds` that the server counts has client rows, and server rows spanning `ms`
 * after the browser's first row for it: a simulcast layer the browser turns on late (Firefox does) appears in
 * its getStats() late, and has a shorter history than the call. A stream without client rows reads -1.
 */
export async function waitForStatsWindow(
  gw: TestGateway,
  callId: string,
  trackIds: Set<string>,
  ms = 3000,
): Promise<void> {
  await waitFor(
    `${ms} ms of stats on every stream`,
    async () =>
      (
        await gw.query<{ span: string | null }>(
          `SELECT min(if(c.present = 0, -1, toUnixTimestamp64Milli(s.last) - toUnixTimestamp64Milli(c.first))) AS span
           FROM (SELECT track_id, ssrc, max(ts) AS last FROM vigie.track_stats WHERE call_id = {c:String} AND track_id IN {ids:Array(String)} GROUP BY track_id, ssrc) AS s
           LEFT JOIN (SELECT if(direction = 'outbound', producer_id, consumer_id) AS track_id, ssrc, min(ts) AS first, 1 AS present FROM vigie.client_stats WHERE call_id = {c:String} GROUP BY track_id, ssrc) AS c
           USING (track_id, ssrc)`,
          { c: callId, ids: [...trackIds] },
        )
      )[0]?.span,
    (span) => span !== null && span !== undefined && Number(span) >= ms,
    60_000,
  );
}

/**
 * Checks that the browser's rows in vigie.client_stats describe the same streams as the server's rows in
 * vigie.track_stats (same track ids, same SSRCs) and that both sides counted the same packets over the same
 * window of the call. Returns the server's streams it compared, keyed `track/direction/ssrc`; `trackIds`
 * limits the comparison to one participant's producers and consumers.
 *
 * `paddedVideo`: the browser's packetsSent for the video it sends also counts the padding packets it sends to
 * probe for bandwidth (libwebrtc sends them on the RTX SSRC and counts them on the media SSRC), which the SFU
 * does not count as media. Firefox pads for as long as it holds back a simulcast layer, which can be the whole
 * call on a loaded machine (seen: 607 packets counted by Firefox, 261 by the SFU, over 9 s). For those streams
 * the browser must have counted at least what the SFU received, and a layer it held back for most of the call
 * (too short a window to compare) is passed over, as long as one layer of its video is compared.
 */
export async function assertClientStatsMatchServer(
  gw: TestGateway,
  callId: string,
  opts: { trackIds?: Set<string>; paddedVideo?: boolean } = {},
): Promise<Map<string, Array<{ track_id: string; direction: string; kind: string; ssrc: string }>>> {
  // A simulcast camera is one stream per layer, each with its own SSRC.
  const serverRows = await gw.query<{
    track_id: string;
    direction: string;
    kind: string;
    ssrc: string;
    packets: string;
    ms: string;
  }>(
    `SELECT track_id, direction, kind, ssrc, packets, toUnixTimestamp64Milli(ts) AS ms FROM vigie.track_stats WHERE call_id = {c:String}`,
    { c: callId },
  );
  const clientRows = await gw.query<{ id: string; direction: string; ssrc: string; packets: string; ms: string }>(
    `SELECT if(direction = 'outbound', producer_id, consumer_id) AS id, direction, ssrc, packets, toUnixTimestamp64Milli(ts) AS ms FROM vigie.client_stats WHERE call_id = {c:String}`,
    { c: callId },
  );
  const streams = new Map<string, typeof serverRows>();
  for (const r of serverRows) {
    if (opts.trackIds && !opts.trackIds.has(r.track_id)) continue;
    const key = `${r.track_id}/${r.direction}/${r.ssrc}`;
    streams.set(key, [...(streams.get(key) ?? []), r]);
  }
  const heldBack: string[] = [];
  for (const [key, rows] of streams) {
    const s = rows[0]!;
    const mine = clientRows.filter((c) => c.id === s.track_id && Number(c.ssrc) === Number(s.ssrc));
    assert.ok(mine.length > 0, `client stats for ${s.direction} ${s.kind} track ${s.track_id} ssrc ${s.ssrc}`);
    assert.ok(
      mine.every((c) => c.direction === (s.direction === 'inbound' ? 'outbound' : 'inbound')),
      'the browser sends what the SFU receives',
    );
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
    const padded = opts.paddedVideo && s.direction === 'inbound' && s.kind === 'video';
    if (padded && last.ms - first.ms < 2000) {
      // A layer the browser held back for most of the window: the layers it did send are compared (below).
      heldBack.push(key);
      continue;
    }
    assert.ok(
      last.ms - first.ms >= 2000,
      `${s.direction} ${s.kind} ssrc ${s.ssrc}: a window of at least 2 s to compare (${last.ms - first.ms} ms)`,
    );
    const serverCount = samples.filter((r) => r.ms > first.ms && r.ms <= last.ms).reduce((n, r) => n + r.packets, 0);
    const [from, to] = [clientAt(first.ms), clientAt(last.ms)];
    const clientCount = to.packets - from.packets;
    // Left over: packets in flight and the sampling offsets at both ends, bounded by half a second of traffic each.
    const allowed = 0.1 * serverCount + (Math.abs(from.rate) + Math.abs(to.rate)) * 500;
    const what = `${s.direction} ${s.kind} ssrc ${s.ssrc}: over ${first.ms}..${last.ms} the client counted ${clientCount.toFixed(0)}, the server ${serverCount}, allowed ${allowed.toFixed(0)}`;
    if (padded) {
      assert.ok(clientCount >= serverCount - allowed, what);
    } else {
      assert.ok(Math.abs(clientCount - serverCount) <= allowed, what);
    }
  }
  const sentVideo = [...streams.values()].filter(([r]) => r!.direction === 'inbound' && r!.kind === 'video').length;
  assert.ok(
    sentVideo === 0 || heldBack.length < sentVideo,
    `at least one layer of the browser's video compared (held back: ${heldBack.join(', ')})`,
  );
  return streams;
}
