import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { waitFor } from './helpers/browser.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ writer: { flushIntervalMs: 200 }, telemetry: { joinFunnelTimeoutMs: 1000 } });
});
afterAll(async () => {
  await gw?.close();
});

const rowsOf = (peerId: string) =>
  gw.query(`SELECT * FROM vigie.join_funnel WHERE peer_id = {p:String}`, { p: peerId });

test('a join still in its room is written at the timeout: failed when stuck, joined when only quiet', async () => {
  const stuck = await gw.connect();
  const s = await stuck.request('join', { token: await gw.mint({ room: 'slow', identity: 'stuck' }) });
  // A send transport that is never connected: the SFU's own step is missing.
  await stuck.request('createWebRtcTransport', { direction: 'send' });
  const quiet = await gw.connect();
  const q = await quiet.request('join', { token: await gw.mint({ room: 'quiet', identity: 'quiet' }) });
  // Only its own consumers are a participant's to report.
  assert.deepEqual(await quiet.request('mediaStarted', { consumerId: 'not-mine' }), { accepted: false });

  const [stuckRow] = await waitFor(
    'the stuck join',
    () => rowsOf(s.peerId),
    (r) => r.length === 1,
  );
  assert.equal(stuckRow.outcome, 'failed');
  assert.equal(stuckRow.failed_step, 'send_connected');
  assert.equal(stuckRow.error_code, 'TIMEOUT');
  assert.ok(gw.app.sfu.getRoom('acme', 'slow')?.peers.has(s.peerId), 'written while the participant is still in');
  const [quietRow] = await waitFor(
    'the quiet join',
    () => rowsOf(q.peerId),
    (r) => r.length === 1,
  );
  assert.equal(quietRow.outcome, 'joined');
  assert.equal(quietRow.reason, 'timeout');
  assert.ok(Number(quietRow.joined_ms) >= 0);
  assert.equal(quietRow.first_frame_ms, null);

  // Leaving afterwards adds nothing: one row per join.
  stuck.close();
  quiet.close();
  await waitFor(
    'both gone',
    async () => gw.app.sfu.rooms.size,
    (n) => n === 0,
  );
  assert.equal((await rowsOf(s.peerId)).length + (await rowsOf(q.peerId)).length, 2);
});
