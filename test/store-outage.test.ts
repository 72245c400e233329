/**
 * The control plane's PostgreSQL goes down under a running gateway: writes
 * (rooms, tenants, API keys, webhooks) answer 503 UNAVAILABLE, retryable,
 * rather than 500; the call already open goes on; once the server is back the
 * same writes succeed. A real PostgreSQL server, stopped and started again.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, test } from 'vitest';
import type { SignalingClient } from '../src/sdk/SignalingClient.js';
import { waitFor } from './helpers/browser.js';
import { ROOMS_WRITE_KEY, startGateway, TENANT_ADMIN_KEY, type TestGateway } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

const ADMIN_KEY = 'operator-key-for-the-outage-test';
let pg: PostgresServer;
let gw: TestGateway;
let guest: SignalingClient;
let guestId: string;

beforeAll(async () => {
  pg = await startPostgres();
  gw = await startGateway({
    database: { url: pg.url },
    adminKeyHash: `sha256:${createHash('sha256').update(ADMIN_KEY).digest('hex')}`,
    webhooks: { allowPrivateTargets: true, allowHttp: true },
  });
  guest = await gw.connect();
  guestId = (await guest.request('join', { token: await gw.mint({ room: 'ongoing', identity: 'guest' }) })).peerId;
});

afterAll(async () => {
  await gw?.close();
  await pg?.stop();
});

const writes: Array<{ what: string; method: string; url: string; headers: Record<string, string>; body: object }> = [
  {
    what: 'a room declaration',
    method: 'POST',
    url: '/v1/rooms',
    headers: { 'x-api-key': ROOMS_WRITE_KEY.key },
    body: { room: 'declared-later' },
  },
  {
    what: 'a tenant',
    method: 'PUT',
    url: '/v1/admin/tenants/initech',
    headers: { 'x-admin-key': ADMIN_KEY },
    body: {},
  },
  {
    what: 'an API key',
    method: 'POST',
    url: '/v1/admin/tenants/acme/api-keys',
    headers: { 'x-admin-key': ADMIN_KEY },
    body: { scopes: ['rooms:read'] },
  },
  {
    what: 'a webhook endpoint',
    method: 'POST',
    url: '/v1/webhooks',
    headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
    body: { url: 'http://127.0.0.1:9/hook' },
  },
];

async function send(w: (typeof writes)[number]) {
  const res = await fetch(`${gw.url}${w.url}`, {
    method: w.method,
    headers: { ...w.headers, 'content-type': 'application/json' },
    body: JSON.stringify(w.body),
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

test('with PostgreSQL down, writes answer 503 UNAVAILABLE and the open call goes on; when it is back they work', async () => {
  await pg.halt();
  for (const w of writes) {
    const r = await send(w);
    assert.equal(r.status, 503, `${w.what}: ${r.text}`);
    assert.equal(r.json().error.code, 'UNAVAILABLE', w.what);
    assert.match(r.json().error.message, /PostgreSQL\) is unreachable; retry/, w.what);
  }
  assert.doesNotMatch(gw.logs(), /"statusCode":500/, 'no request failed as an internal error');
  // The call is served by the SFU, which needs no control plane: the participant is still in it and signaling answers.
  assert.ok(gw.app.sfu.getRoom('acme', 'ongoing')?.peers.has(guestId), 'the participant is still in the call');
  const caps = await guest.request('getRouterRtpCapabilities', {});
  assert.ok(Array.isArray(caps.rtpCapabilities.codecs), 'signaling still answers');
  const transport = await guest.request('createWebRtcTransport', { direction: 'send' });
  assert.ok(transport.transportId, 'the participant can still set up media');

  await pg.resume();
  for (const w of writes)
    await waitFor(
      `${w.what} to be written once PostgreSQL is back`,
      async () => (await send(w)).status,
      (s) => s >= 200 && s < 300,
    );
  assert.ok(gw.app.rooms.get('acme', 'declared-later'), 'the room declared after the outage is there');
});
