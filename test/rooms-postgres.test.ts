/**
 * A gateway on a real PostgreSQL 15 server, with a second node beside it: the
 * second node is the room directory and the bans built on their own
 * connection to the same server (one gateway per test process, chdb being
 * in-process). Its data dir is one the version before the store made, with
 * rooms.json and room-bans.json, imported on the first start.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, test } from 'vitest';
import { RoomBans, RoomDirectory } from '../src/media/index.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { expectCode, nextNotification, ROOMS_WRITE_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

let server: PostgresServer;
let dataDir: string;
let gw: TestGateway;
let otherDb: Database;
let otherRooms: RoomDirectory;
let otherBans: RoomBans;

const api = async (method: string, url: string, payload?: object) => {
  const res = await gw.app.inject({
    method: method as 'GET',
    url,
    headers: { 'x-api-key': ROOMS_WRITE_KEY.key },
    payload,
  });
  return { status: res.statusCode, body: res.body ? res.json() : undefined };
};

beforeAll(async () => {
  server = await startPostgres();
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-rooms-pg-'));
  // What the version before the store left in its data dir.
  writeFileSync(
    path.join(dataDir, 'rooms.json'),
    JSON.stringify({
      version: 1,
      rooms: [
        {
          tenant: 'acme',
          room: 'legacy',
          options: { recordingPolicy: 'off', consentRequired: false, maxParticipants: 3 },
          createdAt: '2026-01-02T03:04:05.000Z',
        },
      ],
    }),
  );
  const key = createHash('sha256').update('acme/legacy\0banned-before').digest('hex');
  writeFileSync(
    path.join(dataDir, 'room-bans.json'),
    JSON.stringify({ bans: [{ key, until: Date.now() / 1000 + 3600 }] }),
  );
  gw = await startGateway({ dataDir, database: { url: server.url }, node: { id: 'node-gw' } });
  otherDb = await openDatabase({ url: server.url, dataDir });
  otherRooms = await RoomDirectory.open({ db: otherDb, nodeId: 'node-other', log: gw.app.log });
  otherBans = await RoomBans.open({ db: otherDb, log: gw.app.log });
});

afterAll(async () => {
  await otherRooms?.close();
  await otherBans?.close();
  await otherDb?.close();
  await gw?.close();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test('the rooms and bans of a data dir from the version before are imported into PostgreSQL', async () => {
  assert.equal(gw.app.db.kind, 'postgres');
  const { status, body } = await api('GET', '/v1/rooms/legacy');
  assert.equal(status, 200);
  assert.equal(body.declared, true);
  assert.equal(body.options.maxParticipants, 3);
  for (const name of ['rooms.json', 'room-bans.json']) {
    assert.ok(!existsSync(path.join(dataDir, name)), `${name} is not read again`);
    assert.ok(existsSync(path.join(dataDir, `${name}.imported`)), `${name} is kept, renamed`);
  }
  assert.ok(otherRooms.get('acme', 'legacy'), 'in the store, for every node');
  await expectCode(
    gw
      .connect()
      .then(async (c) => c.request('join', { token: await gw.mint({ room: 'legacy', identity: 'banned-before' }) })),
    'FORBIDDEN',
  );
});

test('a room declared on another node opens here with its options', async () => {
  await otherRooms.declare('acme', 'declared-elsewhere', { recordingPolicy: 'off', maxParticipants: 7 });
  await waitFor(
    'the declaration',
    async () => (await api('GET', '/v1/rooms/declared-elsewhere')).status,
    (s) => s === 200,
  );
  const c = await gw.connect();
  await c.request('join', { token: await gw.mint({ room: 'declared-elsewhere', identity: 'alice' }) });
  assert.equal(gw.app.sfu.getRoom('acme', 'declared-elsewhere')!.options.maxParticipants, 7);
  c.close();
});

test('a room that opens here is placed on this node, named by the REST read, and released when it closes', async () => {
  const c = await gw.connect();
  await c.request('join', { token: await gw.mint({ room: 'placed', identity: 'alice' }) });
  const room = gw.app.sfu.getRoom('acme', 'placed')!;
  const placement = await waitFor('the placement', () => otherRooms.placement('acme', 'placed'), Boolean);
  assert.equal(placement!.nodeId, 'node-gw');
  assert.equal(placement!.callId, room.callId);
  assert.equal((await api('GET', '/v1/rooms/placed')).body.node, 'node-gw');
  // Another node trying to open the same room is told where it is.
  const elsewhere = await otherRooms.place('acme', 'placed', 'another-call');
  assert.equal(elsewhere.placed, false);
  assert.equal(elsewhere.placement.nodeId, 'node-gw');

  assert.equal((await api('DELETE', '/v1/rooms/placed')).status, 204);
  await waitFor(
    'the release',
    () => otherRooms.placement('acme', 'placed'),
    (p) => p === undefined,
  );
  assert.equal((await api('GET', '/v1/rooms/placed')).status, 404);
  c.close();
});

test("a room whose call is on another node is found here, with that node's id", async () => {
  await otherRooms.place('acme', 'remote', 'remote-call');
  const { status, body } = await api('GET', '/v1/rooms/remote');
  assert.equal(status, 200);
  assert.deepEqual(
    { live: body.live, node: body.node, declared: body.declared },
    {
      live: null,
      node: 'node-other',
      declared: false,
    },
  );
  const list = (await api('GET', '/v1/rooms')).body.rooms as { room: string; node: string | null }[];
  assert.equal(list.find((r) => r.room === 'remote')?.node, 'node-other');
  assert.equal(list.find((r) => r.room === 'legacy')?.node, null);
  await otherRooms.release('acme', 'remote', 'remote-call');
});

test('a participant removed here is banned on the other node; one banned there cannot join here', async () => {
  const c = await gw.connect();
  const token = await gw.mint({ room: 'moderated', identity: 'troll' });
  const joined = await c.request('join', { token });
  const removed = nextNotification(c, 'removed');
  assert.equal((await api('DELETE', `/v1/rooms/moderated/participants/${joined.peerId}`)).status, 204);
  await removed;
  await waitFor('the ban on the other node', async () => otherBans.isBanned('acme', 'moderated', 'troll'), Boolean);

  await otherBans.ban('acme', 'moderated', 'heckler', Date.now() / 1000 + 3600);
  await waitFor('the ban here', async () => gw.app.roomBans.isBanned('acme', 'moderated', 'heckler'), Boolean);
  await expectCode(
    gw
      .connect()
      .then(async (c2) => c2.request('join', { token: await gw.mint({ room: 'moderated', identity: 'heckler' }) })),
    'FORBIDDEN',
  );
  // Lifted there, let in here.
  await otherBans.lift('acme', 'moderated', 'heckler');
  await waitFor(
    'the lift here',
    async () => gw.app.roomBans.isBanned('acme', 'moderated', 'heckler'),
    (v) => !v,
  );
  const back = await (await gw.connect()).request('join', {
    token: await gw.mint({ room: 'moderated', identity: 'heckler' }),
  });
  assert.equal(back.room, 'moderated');
});
