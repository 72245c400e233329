import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOMS_WRITE_KEY, TENANT_ADMIN_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import { startUdpRelay } from './helpers/udpRelay.js';
import { startWebhookReceiver } from './helpers/webhookReceiver.js';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-webhooks-'));
const settings = {
  dataDir,
  // The receivers are local http servers: plain http is allowed for them.
  webhooks: { allowPrivateTargets: true, allowHttp: true, backoffBaseMs: 50, timeoutMs: 2000, disableAfterFailures: 6 },
  telemetry: { statsIntervalMs: 1000 },
  writer: { flushIntervalMs: 100 },
  quality: { alertMos: 3.5, alertSeconds: 2 },
};
let gw: TestGateway;
const secrets = new Map<string, string>();
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let endpointId = '';

beforeAll(async () => {
  receiver = await startWebhookReceiver(() => secrets.get('main'));
  gw = await startGateway(settings);
  const created = await gw.app.inject({
    method: 'POST',
    url: '/v1/webhooks',
    headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
    payload: { url: receiver.url },
  });
  assert.equal(created.statusCode, 201, created.body);
  endpointId = created.json().id;
  secrets.set('main', created.json().secret);
});
afterAll(async () => {
  await gw?.close();
  await receiver?.close();
});

const ofRoom = (room: string) => receiver.delivered().filter((r) => r.body.data.room === room);
const api = (method: string, url: string, payload?: object) =>
  gw.app.inject({
    method: method as 'GET',
    url,
    headers: { 'x-api-key': ROOMS_WRITE_KEY.key },
    ...(payload ? { payload } : {}),
  });

test('a full browser call: the receiver gets the signed events, in order; remote mute and removal reach the page', async () => {
  const browser = await launchBrowser();
  try {
    const pages: import('playwright-core').Page[] = [];
    for (const identity of ['agent', 'customer']) {
      const page = await browser.context.newPage();
      await joinThroughPage(
        page,
        `${gw.url}/join?token=${await gw.mint({ room: 'hooked', identity, name: identity })}`,
      );
      await waitFor(
        `${identity} published`,
        () => page.evaluate(() => (window as any).vigieEvents.map((e: { type: string }) => e.type)),
        (t: string[]) => t.includes('published'),
      );
      pages.push(page);
    }
    for (const page of pages)
      await waitFor(
        'media',
        () => receivedMedia(page),
        (m) => m.framesDecoded > 5,
      );

    const customerId = await pages[1]!.evaluate(() => (window as any).vigieCall.info.peerId);
    assert.equal(
      (await api('POST', `/v1/rooms/hooked/participants/${customerId}/mute`, { kind: 'audio' })).statusCode,
      200,
    );
    await waitFor(
      'mutedByServer on the page',
      () => pages[1]!.evaluate(() => (window as any).vigieEvents.map((e: { type: string }) => e.type)),
      (t: string[]) => t.includes('mutedByServer'),
    );
    assert.equal(
      await pages[1]!.locator('#toggle-mic').getAttribute('aria-pressed'),
      'true',
      'the mic button shows muted',
    );
    assert.equal((await api('DELETE', `/v1/rooms/hooked/participants/${customerId}`)).statusCode, 204);
    await waitFor(
      'removed on the page',
      () => pages[1]!.evaluate(() => (window as any).vigieEvents.map((e: { type: string }) => e.type)),
      (t: string[]) => t.includes('removed'),
    );
    const slot = gw.app.sfu.getRoom('acme', 'hooked')!.slot;
    const peersOnWorker = slot.peers;
    assert.equal((await api('DELETE', '/v1/rooms/hooked')).statusCode, 204);
    assert.equal(slot.peers, peersOnWorker - 1, 'closing the room gives back the load of the agent still in it');

    const events = await waitFor(
      'room.ended',
      async () => ofRoom('hooked'),
      (r) => r.some((e) => e.event === 'room.ended'),
    );
    const names = events.map((e) => e.event);
    const expected = [
      'room.started',
      'participant.joined',
      'track.published',
      'track.published',
      'participant.joined',
      'track.published',
      'track.published',
      'participant.left',
      'participant.left',
      'room.ended',
    ];
    assert.deepEqual(
      names.filter((n) => n !== 'track.unpublished'),
      expected,
      names.join(', '),
    );
    assert.equal(names.filter((n) => n === 'track.unpublished').length, 4);
    for (const e of events) assert.ok(e.signatureValid, `${e.event} signature verifies`);
    const times = events.map((e) => Date.parse(e.body.createdAt));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
      'arrival order is publication order',
    );
    const left = events.filter((e) => e.event === 'participant.left');
    assert.deepEqual(
      left.map((e) => [e.body.data.identity, e.body.data.reason]),
      [
        ['customer', 'removed'],
        ['agent', 'room-closed:closed-by-api'],
      ],
    );
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'one delivery id per event');
  } finally {
    await browser.close();
  }
});

test('retries: a receiver that fails three times, then succeeds, gets each delivery id exactly once', async () => {
  receiver.setResponder((_id, seen) => (seen <= 3 ? 503 : 200));
  const c = await gw.connect();
  await c.request('join', { token: await gw.mint({ room: 'flaky', identity: 'f' }) });
  await c.request('leave');
  const delivered = await waitFor(
    'flaky deliveries',
    async () => ofRoom('flaky'),
    (r) => r.some((e) => e.event === 'room.ended'),
    30_000,
  );
  receiver.setResponder(() => 200);
  assert.deepEqual(
    delivered.map((e) => e.event),
    ['room.started', 'participant.joined', 'participant.left', 'room.ended'],
  );
  assert.equal(new Set(delivered.map((e) => e.id)).size, 4, 'each delivered exactly once');
  for (const d of delivered)
    assert.equal(receiver.received.filter((r) => r.id === d.id).length, 4, 'three failures then one success');
  const attempts = await gw.query<{ outcomes: string[] }>(
    `SELECT groupArray(outcome) AS outcomes FROM (SELECT delivery_id, outcome, attempt FROM vigie.webhook_attempts WHERE delivery_id = {d:String} ORDER BY attempt)`,
    { d: delivered[0]!.id },
  );
  assert.deepEqual(
    attempts[0]!.outcomes,
    ['failed', 'failed', 'failed', 'delivered'],
    'every attempt is logged in ClickHouse',
  );
});

test('a restart during retries loses nothing', async () => {
  receiver.setResponder(() => 503);
  const c = await gw.connect();
  await c.request('join', { token: await gw.mint({ room: 'restart', identity: 'r' }) });
  await c.request('leave');
  await waitFor(
    'first attempts',
    async () => receiver.received.filter((r) => r.body.data.room === 'restart').length,
    (n) => n >= 1,
  );
  await gw.close(); // deliveries still pending in the journal
  receiver.setResponder(() => 200);
  gw = await startGateway(settings);
  const delivered = await waitFor(
    'deliveries after restart',
    async () => ofRoom('restart'),
    (r) => r.length === 4,
    30_000,
  );
  assert.deepEqual(
    delivered.map((e) => e.event),
    ['room.started', 'participant.joined', 'participant.left', 'room.ended'],
  );
  assert.equal(new Set(delivered.map((e) => e.id)).size, 4);
  // The receiver has the last delivery before its node has read the answer and settled it in the outbox.
  await waitFor(
    'the outbox settled',
    () => gw.app.webhooks.pendingCount(),
    (n) => n === 0,
  );
});

test('an endpoint that keeps failing is disabled, with an event to the others', async () => {
  const dead = await startWebhookReceiver(() => undefined);
  dead.setResponder(() => 500);
  const created = await gw.app.inject({
    method: 'POST',
    url: '/v1/webhooks',
    headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
    payload: { url: dead.url, events: ['room.started', 'room.ended'] },
  });
  const deadId = created.json().id;
  try {
    const c = await gw.connect();
    await c.request('join', { token: await gw.mint({ room: 'dying', identity: 'd' }) });
    await c.request('leave');
    await waitFor(
      'endpoint disabled',
      async () => gw.app.tenants.get('acme')!.webhooks.find((w) => w.id === deadId)!.enabled,
      (enabled) => enabled === false,
      30_000,
    );
    const notice = await waitFor(
      'webhook.endpoint_disabled',
      async () => receiver.delivered().filter((r) => r.event === 'webhook.endpoint_disabled'),
      (r) => r.length === 1,
    );
    assert.equal(notice[0]!.body.data.endpointId, deadId);
    assert.equal(notice[0]!.body.data.host, new URL(dead.url).host);
    assert.equal(notice[0]!.body.data.url, undefined, 'the event never carries the endpoint URL');
    assert.ok(!JSON.stringify(notice[0]!.body).includes(dead.url), 'nor its path');
    const [row] = await gw.query(
      `SELECT count() AS c FROM vigie.webhook_attempts WHERE endpoint_id = {e:String} AND outcome = 'endpoint-disabled'`,
      { e: deadId },
    );
    assert.equal(Number(row.c), 1);
    assert.ok(
      !(
        await gw.app.inject({ method: 'GET', url: '/v1/webhooks', headers: { 'x-api-key': TENANT_ADMIN_KEY.key } })
      ).body.includes('whsec_'),
      'listings never show secrets',
    );
  } finally {
    await dead.close();
  }
});

test('quality.alert and quality.issue: a participant whose uplink loses packets', async () => {
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'bad-line');
  let relay!: Awaited<ReturnType<typeof startUdpRelay>>;
  const bot = await startFfmpegBot(room, {
    kind: 'audio',
    bitrateKbps: 32,
    through: async (port) => {
      relay = await startUdpRelay({ ip: '127.0.0.1', port }, { dropEvery: 4 });
      return relay.port;
    },
  });
  try {
    const alert = await waitFor(
      'quality.alert',
      async () => receiver.delivered().filter((r) => r.event === 'quality.alert' && r.body.data.room === 'bad-line'),
      (r) => r.length >= 1,
      20_000,
    );
    assert.equal(alert[0]!.body.data.participantId, bot.peer.id);
    assert.ok(
      alert[0]!.body.data.mos < 3.5 && alert[0]!.body.data.belowForSeconds >= 2,
      JSON.stringify(alert[0]!.body.data),
    );
    // The diagnosis says why: the bot's own uplink loses a quarter of its packets.
    const [issue] = await waitFor(
      'quality.issue',
      async () => receiver.delivered().filter((r) => r.event === 'quality.issue' && r.body.data.room === 'bad-line'),
      (r) => r.length >= 1,
      20_000,
    );
    assert.deepEqual(
      [issue!.body.data.issue, issue!.body.data.direction, issue!.body.data.participantId, issue!.body.data.kind],
      ['uplink_loss', 'uplink', bot.peer.id, 'audio'],
    );
    assert.ok(issue!.body.data.evidence.loss_pct >= 20, JSON.stringify(issue!.body.data));
    assert.equal(issue!.body.data.callId, room.callId);
  } finally {
    await bot.stop();
    await relay.close();
  }
});

test('endpoint ids stay stable for receivers', () => {
  assert.match(endpointId, /^wh_[0-9a-f]{12}$/);
});
