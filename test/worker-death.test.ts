import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { startGateway, nextNotification, type TestGateway } from './helpers/gateway.js';
import { waitFor } from './helpers/browser.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.close());

test('a killed worker closes its rooms with a reason, is replaced, and new rooms work', async () => {
  const a = await gw.connect();
  const b = await gw.connect();
  await a.request('join', { token: await gw.mint({ room: 'doomed', identity: 'a' }) });
  await b.request('join', { token: await gw.mint({ room: 'doomed', identity: 'b' }) });
  await b.request('createWebRtcTransport', { direction: 'recv' });
  // A room on the other worker must survive.
  const survivorRoomPeer = await gw.connect();
  const doomedRoom = gw.app.sfu.getRoom('acme', 'doomed')!;
  await survivorRoomPeer.request('join', { token: await gw.mint({ room: 'survivor', identity: 's' }) });
  const survivorRoom = gw.app.sfu.getRoom('acme', 'survivor')!;
  assert.notEqual(survivorRoom.slot, doomedRoom.slot, 'least-loaded placement put the second room on the other worker');

  const deadPid = doomedRoom.slot.worker.pid!;
  const closedA = nextNotification(a, 'roomClosed');
  const closedB = nextNotification(b, 'roomClosed');
  process.kill(deadPid, 'SIGKILL');
  assert.deepEqual(await closedA, { reason: 'worker-died' });
  assert.deepEqual(await closedB, { reason: 'worker-died' });
  assert.equal(gw.app.sfu.getRoom('acme', 'doomed'), undefined);
  assert.ok(!survivorRoom.closed, 'rooms on other workers are untouched');

  // A new room right away lands on a live worker and works.
  const c = await gw.connect();
  await c.request('join', { token: await gw.mint({ room: 'phoenix', identity: 'c' }) });
  const phoenix = gw.app.sfu.getRoom('acme', 'phoenix')!;
  assert.notEqual(phoenix.slot.worker.pid, deadPid);
  const t = await c.request('createWebRtcTransport', { direction: 'send' });
  assert.ok(t.iceCandidates.length > 0);

  // The dead worker is replaced and the gateway is ready again; the event is logged.
  const ready = await waitFor(
    'readiness after replacement',
    async () => (await gw.app.inject('/readyz')).json(),
    (r) => r.status === 'ready',
  );
  assert.ok(!ready.workers.some((w: { pid: number }) => w.pid === deadPid));
  assert.equal(ready.workers.length, 2);
  assert.match(gw.logs(), /mediasoup worker died; closing its rooms and replacing it/);
  assert.match(gw.logs(), /mediasoup worker replaced/);

  // Peers of the closed room can join again on the same connection.
  const rejoined = await a.request('join', { token: await gw.mint({ room: 'doomed', identity: 'a' }) });
  assert.equal(rejoined.room, 'doomed');
});
