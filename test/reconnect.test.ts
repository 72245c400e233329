import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
beforeAll(async () => {
  // No tolerance on exp, and tokens refreshed 5 s ahead: a short token really expires during its call.
  gw = await startGateway({ auth: { clockSkewSeconds: 0 }, signaling: { tokenRefreshLeadSeconds: 5 } });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
});

async function join(room: string, identity: string, ttlSeconds?: number): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => console.error(`[${identity}] page error:`, e.message));
  await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room, identity, name: identity, ttlSeconds })}`);
  return page;
}

const events = (page: Page) => page.evaluate(() => (window as any).vigieEvents as Array<{ type: string; data: any }>);
const consumerIds = (page: Page) => page.evaluate(() => [...(window as any).vigieCall.consumers.keys()] as string[]);
const peerOf = (room: string, identity: string) =>
  [...(gw.app.sfu.getRoom('acme', room)?.peers.values() ?? [])].find((p) => p.identity === identity);

/** Both pages receive each other's camera and mic on consumers none of which is in `stale`. */
async function bothReceiveAfresh(pages: Page[], stale: Set<string>): Promise<void> {
  for (const page of pages) {
    await waitFor(
      'new consumers',
      () => consumerIds(page),
      (ids) => ids.length === 2 && ids.every((id) => !stale.has(id)),
    );
    await waitFor(
      'media on them',
      () => receivedMedia(page),
      (m) => m.videoTracks === 1 && m.audioTracks === 1 && m.framesDecoded > 5 && m.totalSamplesReceived > 0,
    );
  }
}

test('a dropped connection: the SDK rejoins with the same tracks, and both sides receive each other again', async () => {
  const gina = await join('flaky', 'gina');
  const hank = await join('flaky', 'hank');
  for (const page of [gina, hank])
    await waitFor(
      'media',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 5 && m.totalSamplesReceived > 0,
    );
  const stale = new Set([...(await consumerIds(gina)), ...(await consumerIds(hank))]);
  const ginaTrackIds = await gina.evaluate(() =>
    [...(window as any).vigieCall.producers.values()].map((p: any) => p.track.id).sort(),
  );

  // The network drops gina's signaling connection: no close frame, the socket just dies.
  const session = gw.app.signalingSessions.get(peerOf('flaky', 'gina')!.id)!;
  (session as unknown as { socket: { terminate(): void } }).socket.terminate();

  await waitFor(
    'gina to rejoin',
    async () => (await events(gina)).map((e) => e.type),
    (t) => t.includes('reconnected'),
  );
  const seen = (await events(gina)).map((e) => e.type);
  assert.ok(seen.indexOf('reconnecting') < seen.indexOf('reconnected'));
  assert.ok(!seen.includes('disconnected'), 'a drop is not the end of the call');
  assert.equal(await gina.locator('#status').textContent(), 'In flaky');

  const ginaAgain = await waitFor(
    'gina back on the server with her tracks',
    async () => peerOf('flaky', 'gina'),
    (p) => (p?.producers.size ?? 0) === 2,
  );
  assert.deepEqual([...ginaAgain!.producers.values()].map((p) => p.appData.source).sort(), ['camera', 'mic']);
  assert.equal(
    gw.app.sfu.getRoom('acme', 'flaky')!.peers.size,
    2,
    'the old session was replaced, not kept beside the new one',
  );
  // The same camera and mic, not new captures: the preview never went dark.
  assert.deepEqual(
    await gina.evaluate(() => [...(window as any).vigieCall.producers.values()].map((p: any) => p.track.id).sort()),
    ginaTrackIds,
  );
  await bothReceiveAfresh([gina, hank], stale);
  await gina.close();
  await hank.close();
});

test('a media server death: the call rejoins the room, reopened on a live worker, and media flows again', async () => {
  const ivy = await join('phoenix', 'ivy');
  const jack = await join('phoenix', 'jack');
  for (const page of [ivy, jack])
    await waitFor(
      'media',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 5 && m.totalSamplesReceived > 0,
    );
  const stale = new Set([...(await consumerIds(ivy)), ...(await consumerIds(jack))]);
  const room = gw.app.sfu.getRoom('acme', 'phoenix')!;
  const deadPid = room.slot.worker.pid!;

  process.kill(deadPid, 'SIGKILL');
  for (const page of [ivy, jack])
    await waitFor(
      'rejoin',
      async () => (await events(page)).map((e) => e.type),
      (t) => t.includes('reconnected'),
    );
  const reopened = await waitFor(
    'the room again, with both',
    async () => gw.app.sfu.getRoom('acme', 'phoenix'),
    (r) => r !== undefined && r.peers.size === 2,
  );
  assert.notEqual(reopened!.slot.worker.pid, deadPid);
  assert.notEqual(reopened!.callId, room.callId, 'a new call session');
  await bothReceiveAfresh([ivy, jack], stale);
  await ivy.close();
  await jack.close();
});

test('replaced by another tab: the first one is disconnected for good, and does not fight back', async () => {
  const first = await join('tabs', 'kim');
  await waitFor(
    'joined',
    async () => (await events(first)).map((e) => e.type),
    (t) => t.includes('published'),
  );
  const second = await join('tabs', 'kim');
  await waitFor(
    'the first tab disconnected',
    async () => events(first),
    (e) => e.some((x) => x.type === 'disconnected'),
  );
  const closed = (await events(first)).find((e) => e.type === 'disconnected')!;
  assert.equal(closed.data.code, 4000);
  await new Promise((r) => setTimeout(r, 2000));
  assert.ok(!(await events(first)).some((e) => e.type === 'reconnecting'), 'no rejoin after being replaced');
  assert.equal(gw.app.sfu.getRoom('acme', 'tabs')!.peers.size, 1);
  await waitFor(
    'the second tab publishes',
    async () => peerOf('tabs', 'kim'),
    (p) => (p?.producers.size ?? 0) === 2,
  );
  await first.close();
  await second.close();
});

test('a call outlives its first token: the SDK uses the refreshed one, and when the server restarts (1012) it rejoins with it', async () => {
  const firstExp = Date.now() / 1000 + 12;
  const lena = await join('long-call', 'lena', 12);
  await waitFor(
    'published',
    async () => (await events(lena)).map((e) => e.type),
    (t) => t.includes('published'),
  );
  await waitFor(
    'a refreshed token',
    async () => (await events(lena)).map((e) => e.type),
    (t) => t.includes('tokenRefreshed'),
    20_000,
  );
  await waitFor(
    'the first token to expire',
    async () => Date.now() / 1000,
    (now) => now > firstExp + 1,
    20_000,
  );
  // Requests after the first expiry still work.
  assert.equal(
    await lena.evaluate(() =>
      (window as any).vigieCall.setPaused('camera', true).then(
        () => 'ok',
        (e: Error) => e.message,
      ),
    ),
    'ok',
  );
  await lena.evaluate(() => (window as any).vigieCall.setPaused('camera', false));

  // The server restarts (drain deadline): the SDK rejoins, which only the refreshed token allows now.
  const session = gw.app.signalingSessions.get(peerOf('long-call', 'lena')!.id)!;
  session.closeForRestart();
  await waitFor(
    'lena to rejoin',
    async () => (await events(lena)).map((e) => e.type),
    (t) => t.includes('reconnected') || t.includes('disconnected'),
  );
  const seen = await events(lena);
  assert.ok(
    !seen.some((e) => e.type === 'disconnected'),
    `1012 is not the end of the call: ${JSON.stringify(seen.filter((e) => e.type === 'disconnected'))}`,
  );
  await waitFor(
    'lena back with her tracks',
    async () => peerOf('long-call', 'lena'),
    (p) => (p?.producers.size ?? 0) === 2,
  );
  await lena.close();
});
