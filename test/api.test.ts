import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createJoinLink, createVigieClient, VigieApiError } from '@vigie/server-sdk';
import {
  ACME_KEY,
  GLOBEX_KEY,
  REVOKED_KEY,
  ROOMS_ONLY_KEY,
  ROOMS_WRITE_KEY,
  TENANT_ADMIN_KEY,
  nextNotification,
  startGateway,
  type TestGateway,
} from './helpers/gateway.js';

const ADMIN_KEY = `adm_${randomBytes(24).toString('base64url')}`;
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-api-'));
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({
    dataDir,
    adminKeyHash: `sha256:${createHash('sha256').update(ADMIN_KEY).digest('hex')}`,
    webhooks: { allowPrivateTargets: false },
  });
});
afterAll(() => gw.close());

async function call(method: string, url: string, headers: Record<string, string> = {}, payload?: unknown) {
  const res = await gw.app.inject({
    method: method as 'GET',
    url,
    headers,
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
  return { status: res.statusCode, body: res.body ? (res.json() as any) : undefined };
}
const key = (k: { key: string }) => ({ 'x-api-key': k.key });
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

test('the OpenAPI document describes the API', async () => {
  const { status, body } = await call('GET', '/docs/openapi.json');
  assert.equal(status, 200);
  assert.match(body.openapi, /^3\./);
  for (const p of [
    '/v1/tokens',
    '/v1/rooms',
    '/v1/rooms/{room}',
    '/v1/rooms/{room}/participants',
    '/v1/rooms/{room}/participants/{participantId}',
    '/v1/rooms/{room}/participants/{participantId}/mute',
    '/v1/rooms/{room}/participants/{participantId}/unmute',
    '/v1/rooms/{room}/bans/lift',
    '/v1/webhooks',
    '/v1/admin/tenants',
    '/healthz',
    '/readyz',
  ]) {
    assert.ok(body.paths[p], `${p} documented`);
  }
  assert.deepEqual(
    Object.keys(body.paths['/v1/rooms'].post.requestBody.content['application/json'].schema.properties).sort(),
    ['consentRequired', 'maxParticipants', 'metadata', 'recordingPolicy', 'retentionPolicy', 'room'],
  );
  assert.ok(body.components.securitySchemes.apiKey);
});

test('rooms: create with options, list, get, participants, remove, close', async () => {
  // The business app's calls go through the server SDK's typed client, over HTTP.
  const writer = createVigieClient({ baseUrl: gw.url, apiKey: ROOMS_WRITE_KEY.key });
  const reader = createVigieClient({ baseUrl: gw.url, apiKey: ROOMS_ONLY_KEY.key });
  const desk1 = { params: { path: { room: 'desk-1' } } };
  const created = await writer.POST('/v1/rooms', {
    body: { room: 'desk-1', maxParticipants: 2, recordingPolicy: 'always', consentRequired: true },
  });
  assert.equal(created.response.status, 201);
  assert.deepEqual(created.data!.options, { maxParticipants: 2, recordingPolicy: 'always', consentRequired: true });
  assert.equal((await writer.POST('/v1/rooms', { body: { room: 'bad room!' } })).response.status, 400);
  assert.equal(
    (await writer.POST('/v1/rooms', { body: { room: 'r', maxParticipants: 0 } })).error!.error.code,
    'INVALID_REQUEST',
  );

  const a = await gw.connect();
  const b = await gw.connect();
  const c = await gw.connect();
  await a.request('join', { token: await gw.mint({ room: 'desk-1', identity: 'agent-1', name: 'Agent' }) });
  const bJoined = await b.request('join', {
    token: await gw.mint({ room: 'desk-1', identity: 'customer-1', name: 'Customer' }),
  });
  await assert.rejects(
    c.request('join', { token: await gw.mint({ room: 'desk-1', identity: 'third' }) }),
    { code: 'FORBIDDEN' },
    'maxParticipants: 2',
  );
  assert.equal(gw.app.sfu.getRoom('acme', 'desk-1')!.options.recordingPolicy, 'always');

  const list = await reader.GET('/v1/rooms');
  const desk = list.data!.rooms.find((r) => r.room === 'desk-1')!;
  assert.equal(desk.declared, true);
  assert.equal(desk.live!.participants, 2);
  const one = await reader.GET('/v1/rooms/{room}', desk1);
  assert.equal(one.data!.live!.callId, gw.app.sfu.getRoom('acme', 'desk-1')!.callId);
  const people = await reader.GET('/v1/rooms/{room}/participants', desk1);
  assert.deepEqual(people.data!.participants.map((p) => p.identity).sort(), ['agent-1', 'customer-1']);

  const removed = nextNotification(b, 'removed');
  const closedB = new Promise<any>((r) => b.on('close', r));
  const leftForA = nextNotification(a, 'peerLeft');
  const participant = (participantId: string) => ({ params: { path: { room: 'desk-1', participantId } } });
  assert.equal(
    (await writer.DELETE('/v1/rooms/{room}/participants/{participantId}', participant(bJoined.peerId))).response.status,
    204,
  );
  assert.equal((await removed).reason, 'removed');
  assert.equal((await closedB).code, 4001);
  assert.equal((await leftForA).reason, 'removed');
  assert.equal(
    (await writer.DELETE('/v1/rooms/{room}/participants/{participantId}', participant(bJoined.peerId))).error!.error
      .code,
    'NOT_FOUND',
  );
  assert.equal(
    (await writer.POST('/v1/rooms/{room}/participants/{participantId}/mute', { ...participant('nobody'), body: {} }))
      .response.status,
    404,
  );

  const roomClosed = nextNotification(a, 'roomClosed');
  assert.equal((await writer.DELETE('/v1/rooms/{room}', desk1)).response.status, 204);
  assert.equal((await roomClosed).reason, 'closed-by-api');
  assert.equal((await reader.GET('/v1/rooms/{room}', desk1)).response.status, 404);
});

// Seen in CI on PostgreSQL: a room closed through the API was still found (200), because its placement is released
// after the DELETE has answered. The placement is held here as it is in that moment: on this node, with no call.
test('rooms: a placement naming this node for a room with no call here is a call just closed, not a room', async () => {
  const reader = createVigieClient({ baseUrl: gw.url, apiKey: ROOMS_ONLY_KEY.key });
  const writer = createVigieClient({ baseUrl: gw.url, apiKey: ROOMS_WRITE_KEY.key });
  const closing = { params: { path: { room: 'desk-closing' } } };
  const callId = randomUUID();
  assert.equal((await gw.app.rooms.place('acme', 'desk-closing', callId)).placed, true);
  try {
    assert.equal((await reader.GET('/v1/rooms/{room}', closing)).error?.error.code, 'NOT_FOUND');
    assert.equal((await writer.DELETE('/v1/rooms/{room}', closing)).error?.error.code, 'NOT_FOUND');
    const list = await reader.GET('/v1/rooms');
    assert.equal(list.response.status, 200);
    assert.equal(
      list.data!.rooms.find((r) => r.room === 'desk-closing'),
      undefined,
    );
  } finally {
    await gw.app.rooms.release('acme', 'desk-closing', callId);
  }
});

test('authorization: each case gets the right status and code', async () => {
  await call('POST', '/v1/rooms', key(ROOMS_WRITE_KEY), { room: 'acme-private' });
  const adminJwt = await gw.mint({ room: 'room-a', identity: 'mod', grants: ['admin'] });
  const userJwt = await gw.mint({ room: 'room-a', identity: 'user', grants: ['publish', 'subscribe'] });
  const otherTenantJwt = await gw.mint({ tenant: 'globex', room: 'acme-private', identity: 'spy', grants: ['admin'] });
  // Through the server SDK's typed client, over HTTP, as a business app calls the API.
  const as = (headers: Record<string, string>) => createVigieClient({ baseUrl: gw.url, headers });
  const room = (r: string) => ({ params: { path: { room: r } } });
  type Outcome = { response: Response; error?: unknown };
  const cases: Array<[string, () => Promise<Outcome>, number, string?]> = [
    ['no credentials', () => as({}).GET('/v1/rooms'), 401, 'UNAUTHORIZED'],
    ['garbage key', () => as({ 'x-api-key': `vk_nope0000_${'x'.repeat(40)}` }).GET('/v1/rooms'), 401, 'UNAUTHORIZED'],
    [
      'revoked key',
      () => as(key(REVOKED_KEY)).POST('/v1/tokens', { body: { room: 'r', identity: 'i' } }),
      401,
      'UNAUTHORIZED',
    ],
    ['expired-looking JWT', () => as(bearer('eyJhbGciOiJub25lIn0.e30.')).GET('/v1/rooms'), 401, 'UNAUTHORIZED'],
    [
      'wrong scope: read-only key creates a room',
      () => as(key(ROOMS_ONLY_KEY)).POST('/v1/rooms', { body: { room: 'x' } }),
      403,
      'FORBIDDEN',
    ],
    ['wrong scope: mint-only key lists rooms', () => as(key(ACME_KEY)).GET('/v1/rooms'), 403, 'FORBIDDEN'],
    [
      'wrong scope: rooms key mints tokens',
      () => as(key(ROOMS_WRITE_KEY)).POST('/v1/tokens', { body: { room: 'r', identity: 'i' } }),
      403,
      'FORBIDDEN',
    ],
    ['wrong scope: rooms key manages webhooks', () => as(key(ROOMS_WRITE_KEY)).GET('/v1/webhooks'), 403, 'FORBIDDEN'],
    [
      "another tenant's room: get",
      () => as(key(GLOBEX_KEY)).GET('/v1/rooms/{room}', room('acme-private')),
      403,
      'FORBIDDEN',
    ],
    [
      "another tenant's room via its admin JWT",
      () => as(bearer(otherTenantJwt)).GET('/v1/rooms/{room}', room('acme-private')),
      404,
      'NOT_FOUND',
    ],
    [
      "another tenant's room via its admin JWT: close",
      () => as(bearer(otherTenantJwt)).DELETE('/v1/rooms/{room}', room('acme-private')),
      404,
      'NOT_FOUND',
    ],
    ['participant JWT without admin grant', () => as(bearer(userJwt)).GET('/v1/rooms'), 403, 'FORBIDDEN'],
    [
      'admin JWT for another room',
      () => as(bearer(adminJwt)).GET('/v1/rooms/{room}', room('acme-private')),
      403,
      'FORBIDDEN',
    ],
    [
      'admin JWT mints tokens',
      () => as(bearer(adminJwt)).POST('/v1/tokens', { body: { room: 'room-a', identity: 'i' } }),
      403,
      'FORBIDDEN',
    ],
    ['admin API without key', () => as({}).GET('/v1/admin/tenants'), 401, 'UNAUTHORIZED'],
    ['admin API with a tenant key', () => as(key(TENANT_ADMIN_KEY)).GET('/v1/admin/tenants'), 401, 'UNAUTHORIZED'],
    [
      'admin API with the operator key',
      () => createVigieClient({ baseUrl: gw.url, adminKey: ADMIN_KEY }).GET('/v1/admin/tenants'),
      200,
    ],
    ['admin JWT on its own room', () => as(bearer(adminJwt)).GET('/v1/rooms'), 200],
    ['tenant admin key lists webhooks', () => as(key(TENANT_ADMIN_KEY)).GET('/v1/webhooks'), 200],
    [
      'unknown route',
      async () => ({ response: await fetch(`${gw.url}/v1/nothing`, { headers: key(ROOMS_ONLY_KEY) }) }),
      404,
      'NOT_FOUND',
    ],
    [
      'malformed JSON',
      () => as(key(ROOMS_WRITE_KEY)).POST('/v1/rooms', { body: { room: 'x' }, bodySerializer: () => '{"room":' }),
      400,
      'INVALID_REQUEST',
    ],
  ];
  // The globex *key* has only tokens:mint, so reading rooms is a scope refusal; its admin JWT sees no acme room at all.
  for (const [name, request, status, code] of cases) {
    const { response, error } = await request();
    const body = error ?? (response.bodyUsed ? undefined : await response.json().catch(() => undefined));
    assert.equal(response.status, status, `${name}: ${JSON.stringify(body)}`);
    if (code) assert.equal((body as { error: { code: string } }).error.code, code, name);
  }
  const mine = await call('GET', '/v1/rooms', bearer(adminJwt));
  assert.ok(
    mine.body.rooms.every((r: { room: string }) => r.room === 'room-a'),
    'a room-scoped token lists only its room',
  );
});

test('user tokens: recordings need the recordings:read grant and stay in their room; a moderator cannot weaken its room', async () => {
  // Two catalogued recordings of the same tenant, in two rooms (written as the recording service writes them).
  const row = (room: string) => ({
    id: randomUUID(),
    session_id: 's',
    tenant: 'acme',
    room,
    call_id: `call-${room}`,
    participants: [],
    tracks: [],
    codecs: ['audio/opus'],
    started_at: Date.now(),
    ended_at: Date.now(),
    duration_s: 1,
    size_bytes: 10,
    sha256: '0'.repeat(64),
    content_type: 'audio/ogg',
    storage_target: 'local',
    storage_country: 'FR',
    object_key: `acme/${room}.ogg`,
    version_id: '',
    retain_until: null,
    lock_mode: '',
    legal_hold: 0,
    retention_policy: 'default',
    status: 'ready' as const,
    deleted_at: null,
    deletion_reason: '',
    updated_at: Date.now(),
  });
  const mine = row('rec-a');
  const theirs = row('rec-b');
  await gw.app.recording!.catalog.putUpload(mine);
  await gw.app.recording!.catalog.putUpload(theirs);

  const moderator = await gw.mint({ room: 'rec-a', identity: 'mod', grants: ['admin'] });
  const recorder = await gw.mint({ room: 'rec-a', identity: 'rec', grants: ['publish', 'record'] });
  const viewer = await gw.mint({ room: 'rec-a', identity: 'viewer', grants: ['recordings:read'] });
  assert.equal(
    (await call('GET', '/v1/recordings', bearer(moderator))).status,
    403,
    'the admin grant does not read recordings',
  );
  assert.equal((await call('GET', `/v1/recordings/${mine.id}`, bearer(moderator))).status, 403);
  assert.equal((await call('GET', '/v1/recordings', bearer(recorder))).status, 403, 'nor does the record grant');
  assert.equal(
    (await call('POST', '/v1/rooms/rec-a/recording', bearer(moderator), { action: 'start' })).body.error.code,
    'FORBIDDEN',
    'the admin grant does not record',
  );
  const listed = await call('GET', '/v1/recordings', bearer(viewer));
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  assert.deepEqual(
    listed.body.recordings.map((r: { id: string }) => r.id),
    [mine.id],
    'only its own room',
  );
  assert.deepEqual((await call('GET', '/v1/recordings?room=rec-b', bearer(viewer))).body.recordings, []);
  assert.equal((await call('GET', `/v1/recordings/${mine.id}`, bearer(viewer))).status, 200);
  assert.equal((await call('GET', `/v1/recordings/${theirs.id}`, bearer(viewer))).status, 403);
  assert.equal((await call('GET', `/v1/recordings/${theirs.id}/download`, bearer(viewer))).status, 403);

  // The app declares the room recorded with consent; its moderator cannot turn either off, nor forget the declaration.
  assert.equal(
    (
      await call('POST', '/v1/rooms', key(ROOMS_WRITE_KEY), {
        room: 'rec-a',
        recordingPolicy: 'always',
        consentRequired: true,
      })
    ).status,
    201,
  );
  for (const change of [{ recordingPolicy: 'off' }, { recordingPolicy: 'manual' }, { consentRequired: false }]) {
    const r = await call('POST', '/v1/rooms', bearer(moderator), { room: 'rec-a', ...change });
    assert.equal(r.status, 403, `${JSON.stringify(change)}: ${JSON.stringify(r.body)}`);
  }
  // Retention is the tenant's, for every caller: a room cannot name a policy at all.
  assert.equal(
    (await call('POST', '/v1/rooms', bearer(moderator), { room: 'rec-a', retentionPolicy: 'short' })).status,
    400,
  );
  const resized = await call('POST', '/v1/rooms', bearer(moderator), { room: 'rec-a', maxParticipants: 5 });
  assert.equal(resized.status, 201, JSON.stringify(resized.body));
  assert.deepEqual(
    resized.body.options,
    { maxParticipants: 5, recordingPolicy: 'always', consentRequired: true },
    'what the app decided is kept',
  );
  assert.equal((await call('DELETE', '/v1/rooms/rec-a', bearer(moderator))).status, 204);
  assert.equal(
    gw.app.rooms.optionsFor('acme', 'rec-a').recordingPolicy,
    'always',
    'the declaration outlives a moderator closing the call',
  );
  assert.equal((await call('DELETE', '/v1/rooms/rec-a', key(ROOMS_WRITE_KEY))).status, 204);
  assert.equal(gw.app.rooms.get('acme', 'rec-a'), undefined, 'an API key does forget it');
});

test('operator admin API: tenants, keys shown once and stored hashed, revocation, persisted across a restart', async () => {
  const op = { 'x-admin-key': ADMIN_KEY };
  const put = await call('PUT', '/v1/admin/tenants/initech', op, {
    name: 'Initech',
    embedOrigins: ['https://portal.initech.fr'],
    allowedLocations: ['FR', 'DE'],
  });
  assert.equal(put.status, 200);
  assert.equal((await call('PUT', '/v1/admin/tenants/initech', op, { allowedLocations: ['france'] })).status, 400);
  // Per-tenant token trust: set through the admin API, never shown back, never logged.
  const ownSecret = `initech-${randomBytes(24).toString('hex')}`;
  const trusted = await call('PUT', '/v1/admin/tenants/initech', op, { auth: { hs256Secret: ownSecret } });
  assert.equal(trusted.status, 200, JSON.stringify(trusted.body));
  assert.deepEqual(trusted.body.auth, { hs256Secret: 'set' });
  assert.equal((await call('PUT', '/v1/admin/tenants/initech', op, { auth: { hs256Secret: 'short' } })).status, 400);
  assert.ok(
    !JSON.stringify((await call('GET', '/v1/admin/tenants', op)).body).includes(ownSecret) &&
      !gw.logs().includes(ownSecret),
    'the tenant secret is neither shown nor logged',
  );
  const created = await call('POST', '/v1/admin/tenants/initech/api-keys', op, {
    scopes: ['tokens:mint', 'rooms:read'],
  });
  assert.equal(created.status, 201);
  // The new tenant's business app mints with its key through the server SDK (gw.url changes at the restart below).
  const initechApp = () => createVigieClient({ baseUrl: gw.url, apiKey: created.body.key });
  const revoked = (e: unknown) => e instanceof VigieApiError && e.status === 401 && e.code === 'UNAUTHORIZED';
  const minted = await createJoinLink(initechApp(), { room: 'lobby', identity: 'bob' });
  assert.equal((await gw.app.tokens.verify(minted.token)).tenant, 'initech');
  const listed = await call('GET', '/v1/admin/tenants', op);
  const initech = listed.body.tenants.find((t: { id: string }) => t.id === 'initech');
  assert.ok(
    !JSON.stringify(listed.body).includes(created.body.key) && !JSON.stringify(initech).includes('sha256:'),
    'neither keys nor hashes are shown',
  );
  assert.equal((await call('DELETE', `/v1/admin/tenants/initech/api-keys/${created.body.id}`, op)).status, 204);
  await assert.rejects(createJoinLink(initechApp(), { room: 'lobby', identity: 'bob' }), revoked);

  // Restart on the same data directory: the tenant and the revocation are still there.
  await gw.close();
  gw = await startGateway({ dataDir, adminKeyHash: `sha256:${createHash('sha256').update(ADMIN_KEY).digest('hex')}` });
  assert.equal(gw.app.tenants.get('initech')?.name, 'Initech');
  await assert.rejects(createJoinLink(initechApp(), { room: 'lobby', identity: 'bob' }), revoked);
  assert.equal((await call('DELETE', '/v1/admin/tenants/initech', op)).status, 204);
  assert.equal(gw.app.tenants.has('initech'), false);
});
