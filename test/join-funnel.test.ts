import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { expectCode, nextNotification, ROOMS_WRITE_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import type { CallKey } from '../src/telemetry/rows.js';

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
beforeAll(async () => {
  gw = await startGateway({ writer: { flushIntervalMs: 200 } });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
});

/** A `join_funnel` row: whose join (the key every telemetry row carries), and its steps. */
interface FunnelRow extends CallKey {
  outcome: string;
  failed_step: string;
  error_code: string;
  reason: string;
  token_issued_ms: number | null;
  ws_open_ms: number | null;
  joined_ms: number | null;
  send_connected_ms: number | null;
  recv_connected_ms: number | null;
  first_rtp_ms: number | null;
  first_frame_ms: number | null;
  first_audio_ms: number | null;
}

const funnelRows = (where: string, params: Record<string, unknown>) =>
  gw.query<FunnelRow>(
    `SELECT * EXCEPT ts, toUnixTimestamp64Milli(ts) AS started FROM vigie.join_funnel WHERE ${where} ORDER BY ts`,
    params,
  );

/** The pseudonym the call events give this peer. */
const pseudonymOf = async (peerId: string) =>
  (
    await gw.query<{ participant: string }>(
      `SELECT participant FROM vigie.call_events WHERE event = 'peer.joined' AND peer_id = {p:String}`,
      { p: peerId },
    )
  )[0]?.participant;

test('a browser join records one row with every step, in order, keyed by pseudonym', async () => {
  const pages = [];
  for (const identity of ['alice@example.fr', 'bob@example.fr']) {
    const page = await browser.context.newPage();
    await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room: 'funnel', identity, name: 'x' })}`);
    pages.push(page);
    // The first participant sends before the second arrives: her first RTP then precedes the first frame she sees.
    await waitFor(
      'RTP of the newcomer at the SFU',
      async () => {
        const producers = [...(gw.app.sfu.getRoom('acme', 'funnel')?.peers.values() ?? [])].flatMap((p) => [
          ...p.producers.values(),
        ]);
        const stats = await Promise.all(producers.map((p) => p.getStats()));
        return stats.filter((s) => s.some((x) => x.byteCount > 0)).length;
      },
      (n) => n === 2 * pages.length,
    );
  }
  for (const page of pages)
    await waitFor(
      'media',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 0 && m.totalSamplesReceived > 0,
    );
  const room = gw.app.sfu.getRoom('acme', 'funnel')!;
  const [alicePeer, bobPeer] = [...room.peers.values()];
  // Written when the funnel completes: both are still in the call.
  const rows = await waitFor(
    'two join_funnel rows',
    () => funnelRows('call_id = {c:String}', { c: room.callId }),
    (r) => r.length === 2,
  );
  assert.deepEqual(
    rows.map((r) => r.peer_id),
    [alicePeer!.id, bobPeer!.id],
  );
  for (const [i, r] of rows.entries()) {
    const msg = JSON.stringify(r);
    assert.equal(r.tenant, 'acme');
    assert.equal(r.room, 'funnel');
    assert.equal(r.outcome, 'joined', msg);
    assert.equal(r.failed_step, '', msg);
    assert.equal(r.error_code, '', msg);
    assert.equal(r.node, gw.config.node.id);
    assert.equal(r.participant, await pseudonymOf(r.peer_id), 'the same pseudonym as the other telemetry rows');
    assert.match(r.participant, /^[0-9a-f]{32}$/);
    const steps = [
      r.token_issued_ms,
      r.ws_open_ms,
      r.joined_ms,
      r.send_connected_ms,
      r.recv_connected_ms,
      r.first_rtp_ms,
      r.first_frame_ms,
      r.first_audio_ms,
    ];
    assert.ok(
      steps.every((s) => s !== null),
      `every step set: ${msg}`,
    );
    const n = (v: number | null) => Number(v);
    // The token (to the second) and the connection come before the join request, which is the start.
    assert.ok(n(r.token_issued_ms) <= n(r.ws_open_ms) && n(r.ws_open_ms) <= 0, msg);
    assert.ok(n(r.joined_ms) >= 0, msg);
    assert.ok(n(r.joined_ms) <= n(r.send_connected_ms) && n(r.send_connected_ms) <= n(r.first_rtp_ms), msg);
    assert.ok(n(r.joined_ms) <= n(r.recv_connected_ms), msg);
    assert.ok(n(r.recv_connected_ms) <= n(r.first_frame_ms) && n(r.recv_connected_ms) <= n(r.first_audio_ms), msg);
    if (i === 0) assert.ok(n(r.first_rtp_ms) <= n(r.first_frame_ms), msg);
  }
  // One row per join: leaving writes no second one.
  await pages[1]!.close();
  await waitFor(
    'bob gone',
    async () => room.peers.size,
    (s) => s === 1,
  );
  assert.equal((await funnelRows('call_id = {c:String}', { c: room.callId })).length, 2);
  await pages[0]!.close();
});

test('a join that leaves before its transport connects is abandoned at that step', async () => {
  const c = await gw.connect();
  const joined = await c.request('join', { token: await gw.mint({ room: 'funnel-quit', identity: 'quitter' }) });
  await c.request('createWebRtcTransport', { direction: 'recv' });
  c.close();
  const [row] = await waitFor(
    'the abandoned row',
    () => funnelRows('peer_id = {p:String}', { p: joined.peerId }),
    (r) => r.length === 1,
  );
  assert.equal(row!.outcome, 'abandoned');
  assert.equal(row!.failed_step, 'recv_connected');
  assert.equal(row!.reason, 'disconnected');
  assert.equal(row!.recv_connected_ms, null);
  assert.ok(Number(row!.joined_ms) >= 0);
});

test('a refused join records the step and the code; one with a bad token records nothing', async () => {
  const c = await gw.connect();
  const joined = await c.request('join', { token: await gw.mint({ room: 'moderated', identity: 'troll' }) });
  const removed = nextNotification(c, 'removed');
  const res = await gw.app.inject({
    method: 'DELETE',
    url: `/v1/rooms/moderated/participants/${joined.peerId}`,
    headers: { 'x-api-key': ROOMS_WRITE_KEY.key },
  });
  assert.equal(res.statusCode, 204);
  await removed;
  const pseudonym = await pseudonymOf(joined.peerId);

  const before = Date.now();
  const again = await gw.connect();
  await expectCode(
    again.request('join', { token: await gw.mint({ room: 'moderated', identity: 'troll' }) }),
    'FORBIDDEN',
  );
  await expectCode(
    gw.connect().then((x) => x.request('join', { token: 'not-a-token' })),
    'UNAUTHORIZED',
  );
  const rows = await waitFor(
    'the refused row',
    () => funnelRows(`room = 'moderated'`, {}),
    (r) => r.some((x) => x.outcome === 'failed'),
  );
  // The first join, ended by its removal, and the refused one; nothing for the bad token.
  assert.equal(rows.length, 2, JSON.stringify(rows));
  const [first, refused] = rows as [FunnelRow & { started: number }, FunnelRow & { started: number }];
  assert.equal(first.outcome, 'joined');
  assert.equal(first.reason, 'removed');
  assert.equal(refused.tenant, 'acme');
  assert.equal(refused.outcome, 'failed');
  assert.equal(refused.failed_step, 'joined');
  assert.equal(refused.error_code, 'FORBIDDEN');
  assert.match(refused.reason, /removed from this room/);
  assert.equal(refused.participant, pseudonym, 'keyed by the pseudonym the participant already had');
  assert.equal(refused.joined_ms, null);
  assert.ok(Number(refused.started) >= before - 1000);
  const [all] = await gw.query(`SELECT count() AS n FROM vigie.join_funnel WHERE tenant = '' OR room = ''`);
  assert.equal(Number(all.n), 0, 'no row for a join without a verified token');
});
