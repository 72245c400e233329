/**
 * REST calls on a room act on it whatever node receives them: two gateways on
 * one PostgreSQL server and one ClickHouse endpoint, a call on node A, and the
 * API called on node B. B sends each call to A with the caller's credential and
 * returns A's answer unchanged; A alone acts and audits.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, test } from 'vitest';
import type { SignalingClient } from '../src/sdk/SignalingClient.js';
import { waitFor } from './helpers/browser.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { type FfmpegBot, startFfmpegBot } from './helpers/ffmpegBot.js';
import {
  ACME_KEY,
  ROOMS_ONLY_KEY,
  ROOMS_WRITE_KEY,
  startGateway,
  TENANT_ADMIN_KEY,
  type TestGateway,
} from './helpers/gateway.js';
import { closedPort } from './helpers/ports.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

let pg: PostgresServer;
let chdb: Awaited<ReturnType<typeof startChdbHttp>>;
let chdbDir: string;
let a: TestGateway;
let b: TestGateway;
const ROOM = 'across-nodes';
let bot: FfmpegBot;
let guest: SignalingClient;
let guestId: string;

beforeAll(async () => {
  pg = await startPostgres();
  chdbDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chdb-'));
  chdb = await startChdbHttp(chdbDir);
  const common = { database: { url: pg.url }, clickhouse: { url: chdb.url } };
  a = await startGateway({ ...common, node: { id: 'node-a' } });
  b = await startGateway({ ...common, node: { id: 'node-b' } });
  // The registry names each node's URL once it listens (port 0 until then).
  await Promise.all([a.app.nodes.registry.heartbeat(), b.app.nodes.registry.heartbeat()]);
  // The call is on node A: a participant joined there, and a bot publishes audio.
  guest = await a.connect();
  guestId = (await guest.request('join', { token: await a.mint({ room: ROOM, identity: 'guest' }) })).peerId;
  await waitFor(
    'the room to be placed on node A',
    () => b.app.rooms.placement('acme', ROOM),
    (p) => p?.nodeId === 'node-a',
  );
  bot = await startFfmpegBot(a.app.sfu.getRoom('acme', ROOM)!, { kind: 'audio', bitrateKbps: 32, name: 'speaker' });
});

afterAll(async () => {
  await bot?.stop();
  await b?.close();
  await a?.close();
  await chdb?.stop();
  await pg?.stop();
  rmSync(chdbDir, { recursive: true, force: true });
});

/** A real HTTP call to node B, as a business app behind a load balancer would make it. */
async function onB(key: string, method: string, url: string, body?: object) {
  const res = await fetch(`${b.url}${url}`, {
    method,
    headers: { 'x-api-key': key, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

/** The audit entries of `action` on the room, in the one ClickHouse both nodes write to. */
async function auditOf(action: string): Promise<{ n: number; ip: string }> {
  const [row] = await a.query<{ n: string; ip: string }>(
    `SELECT count() AS n, any(source_ip) AS ip FROM vigie.audit_log
     WHERE tenant = 'acme' AND action = {action:String} AND target = {t:String}`,
    { action, t: `room:${ROOM}` },
  );
  return { n: Number(row!.n), ip: row!.ip };
}

/** Publishes `url` as node A's address in the registry for the time of `fn`. */
async function withNodeAUrl<T>(url: string, fn: () => Promise<T>): Promise<T> {
  const real = a.config.server.publicUrl;
  a.config.server.publicUrl = url;
  await a.app.nodes.registry.heartbeat();
  try {
    return await fn();
  } finally {
    a.config.server.publicUrl = real;
    await a.app.nodes.registry.heartbeat();
  }
}

test('a room on node A is read through node B, with its live call', async () => {
  assert.equal(b.app.sfu.getRoom('acme', ROOM), undefined, 'the call is not on node B');
  const r = await onB(ROOMS_ONLY_KEY.key, 'GET', `/v1/rooms/${ROOM}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().node, 'node-a');
  assert.equal(r.json().live?.participants, 2, r.text);
});

test("node B lists node A's participants, and only node A audits the access", async () => {
  const r = await onB(ROOMS_ONLY_KEY.key, 'GET', `/v1/rooms/${ROOM}/participants`);
  assert.equal(r.status, 200, r.text);
  const ids = r
    .json()
    .participants.map((p: { participantId: string }) => p.participantId)
    .sort();
  assert.deepEqual(ids, [bot.peer.id, guestId].sort());
  const audited = await auditOf('participants.list');
  assert.equal(audited.n, 1, 'one audit entry, written by the owner');
  assert.equal(audited.ip, '127.0.0.1', "the caller's address, carried over the hop");
});

test('a mute sent to node B pauses the track on node A, and an unmute lifts it', async () => {
  const muted = await onB(ROOMS_WRITE_KEY.key, 'POST', `/v1/rooms/${ROOM}/participants/${bot.peer.id}/mute`, {
    kind: 'audio',
  });
  assert.equal(muted.status, 200, muted.text);
  assert.deepEqual(muted.json().muted, [bot.producer.id]);
  await waitFor(
    'the producer on node A to be paused',
    async () => bot.producer.paused,
    (p) => p,
  );
  const unmuted = await onB(ROOMS_WRITE_KEY.key, 'POST', `/v1/rooms/${ROOM}/participants/${bot.peer.id}/unmute`, {
    kind: 'audio',
  });
  assert.equal(unmuted.status, 200, unmuted.text);
  assert.deepEqual(unmuted.json().unmuted, [bot.producer.id]);
});

test("node B starts and stops node A's recording", async () => {
  const room = a.app.sfu.getRoom('acme', ROOM)!;
  const started = await onB(TENANT_ADMIN_KEY.key, 'POST', `/v1/rooms/${ROOM}/recording`, { action: 'start' });
  assert.equal(started.status, 200, started.text);
  assert.equal(a.app.recording!.service.isRecording(room), true);
  const stopped = await onB(TENANT_ADMIN_KEY.key, 'POST', `/v1/rooms/${ROOM}/recording`, { action: 'stop' });
  assert.equal(stopped.status, 200, stopped.text);
  assert.equal(stopped.json().recordingId, started.json().recordingId);
  assert.equal(a.app.recording!.service.isRecording(room), false);
});

test('the owner authorizes the caller as it would directly: a key without the scope is refused by node A', async () => {
  const r = await onB(ACME_KEY.key, 'POST', `/v1/rooms/${ROOM}/participants/${bot.peer.id}/mute`, {});
  assert.equal(r.status, 403, r.text);
  assert.equal(r.json().error.code, 'FORBIDDEN');
  assert.match(r.json().error.message, /rooms:write/);
});

test('a call forwarded to a node that does not hold the room is not forwarded again (loop guard)', async () => {
  // Node A published node B's URL (as nodes that all publish a load balancer's URL would): B forwards to itself.
  const before = await auditOf('participant.mute');
  const r = await withNodeAUrl(b.url, () =>
    onB(ROOMS_WRITE_KEY.key, 'POST', `/v1/rooms/${ROOM}/participants/${bot.peer.id}/mute`, {}),
  );
  assert.equal(r.status, 503, r.text);
  assert.equal(r.json().error.code, 'UNAVAILABLE');
  assert.match(r.json().error.message, /already forwarded/);
  assert.deepEqual(await auditOf('participant.mute'), before, 'nothing was done');
});

test('an owner that does not answer gives 503 UNAVAILABLE, not 500', async () => {
  const down = `http://127.0.0.1:${await closedPort()}`;
  const r = await withNodeAUrl(down, () => onB(ROOMS_ONLY_KEY.key, 'GET', `/v1/rooms/${ROOM}/participants`));
  assert.equal(r.status, 503, r.text);
  assert.equal(r.json().error.code, 'UNAVAILABLE');
  assert.match(r.json().error.message, /node-a, which did not answer/);
  assert.doesNotMatch(b.logs(), new RegExp(ROOMS_ONLY_KEY.key), 'the credential is not logged');
});

test('a participant removed through node B leaves the call on node A', async () => {
  const r = await onB(ROOMS_WRITE_KEY.key, 'DELETE', `/v1/rooms/${ROOM}/participants/${guestId}`);
  assert.equal(r.status, 204, r.text);
  await waitFor(
    'the participant to leave node A',
    async () => a.app.sfu.getRoom('acme', ROOM)?.peers.has(guestId),
    (has) => has === false,
  );
});

test('a room closed through node B ends its call on node A', async () => {
  const room = a.app.sfu.getRoom('acme', ROOM)!;
  const r = await onB(ROOMS_WRITE_KEY.key, 'DELETE', `/v1/rooms/${ROOM}`);
  assert.equal(r.status, 204, r.text);
  await waitFor(
    'the room on node A to close',
    async () => room.closed,
    (c) => c,
  );
});
