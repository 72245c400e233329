/**
 * The room directory, its placements and the room bans on the control plane's
 * PostgreSQL, on both engines: two nodes are two instances, each on its own
 * connection to a real PostgreSQL 15 server (on PGlite, one process: the same
 * instance underneath). No gateway here; test/rooms-postgres.test.ts runs one.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { beforeAll, describe, onTestFinished, test } from 'vitest';
import type { Logger } from '../src/logging.js';
import { RoomBans, RoomDirectory } from '../src/media/index.js';
import type { Database } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { useStore } from './helpers/postgres.js';

const log = pino({ level: 'silent' }) as unknown as Logger;
const inAnHour = () => Date.now() / 1000 + 3600;

describe.each(['pglite', 'postgres'] as const)('rooms on %s', (kind) => {
  const store = useStore(kind);
  let db: Database;
  let other: Database;
  let dir: string;
  beforeAll(() => {
    ({ db, other, dir } = store);
  });

  /** Two nodes' directories, closed at the end of the test. */
  async function twoDirectories(isNodeLive?: (nodeId: string) => Promise<boolean>) {
    const a = await RoomDirectory.open({ db, nodeId: 'node-a', log, isNodeLive });
    const b = await RoomDirectory.open({ db: other, nodeId: 'node-b', log, isNodeLive });
    onTestFinished(async () => {
      await a.close();
      await b.close();
    });
    return [a, b] as const;
  }

  test('a room declared, changed or removed on one node is seen by the other', async () => {
    const [a, b] = await twoDirectories();
    const declared = await a.declare('acme', 'board', { maxParticipants: 5, metadata: { topic: 'q3' } });
    assert.equal(a.get('acme', 'board')?.options.maxParticipants, 5, 'the writer reads its own write at once');
    await waitFor('the declaration on node b', async () => b.get('acme', 'board'), Boolean);
    assert.deepEqual(b.get('acme', 'board'), declared);
    assert.deepEqual(b.optionsFor('acme', 'board').metadata, { topic: 'q3' });

    const changed = await b.declare('acme', 'board', { maxParticipants: 9, recordingPolicy: 'always' });
    assert.equal(changed.createdAt, declared.createdAt, 'a change keeps when the room was first declared');
    await waitFor(
      'the change on node a',
      async () => a.optionsFor('acme', 'board'),
      (o) => o.maxParticipants === 9,
    );
    assert.equal(a.optionsFor('acme', 'board').recordingPolicy, 'always');
    assert.deepEqual(
      b.list('acme').map((r) => r.room),
      ['board'],
    );
    assert.deepEqual(b.list('globex'), []);

    assert.equal(await a.remove('acme', 'board'), true);
    assert.equal(await a.remove('acme', 'board'), false);
    await waitFor(
      'the removal on node b',
      async () => b.get('acme', 'board'),
      (r) => r === undefined,
    );
    assert.equal(b.optionsFor('acme', 'board').recordingPolicy, 'manual', 'an undeclared room opens with defaults');
  });

  test('bad options are refused with INVALID_REQUEST and nothing is written', async () => {
    const [a] = await twoDirectories();
    await assert.rejects(a.declare('acme', 'bad', { maxParticipants: 0 }), { code: 'INVALID_REQUEST' });
    const { rows } = await db.query("SELECT room FROM rooms WHERE room = 'bad'");
    assert.deepEqual(rows, []);
  });

  test('a ban made on one node is effective on the other, and so is its lift', async () => {
    const a = await RoomBans.open({ db, log });
    const b = await RoomBans.open({ db: other, log });
    onTestFinished(async () => {
      await a.close();
      await b.close();
    });
    await a.ban('acme', 'town-hall', 'troll', inAnHour());
    assert.ok(a.isBanned('acme', 'town-hall', 'troll'));
    await waitFor('the ban on node b', async () => b.isBanned('acme', 'town-hall', 'troll'), Boolean);
    assert.ok(!b.isBanned('acme', 'town-hall', 'other'), 'only that identity');
    assert.ok(!b.isBanned('acme', 'elsewhere', 'troll'), 'only that room');
    assert.ok(!b.isBanned('globex', 'town-hall', 'troll'), 'only that tenant');
    // A shorter ban does not shorten the one in place.
    await b.ban('acme', 'town-hall', 'troll', Date.now() / 1000 - 1);
    assert.ok(b.isBanned('acme', 'town-hall', 'troll'));
    const { rows } = await db.query('SELECT * FROM room_bans');
    assert.equal(rows.length, 1);
    assert.ok(!JSON.stringify(rows).includes('troll'), 'the table names no one in clear');

    assert.equal(await b.lift('acme', 'town-hall', 'troll'), true);
    await waitFor(
      'the lift on node a',
      async () => a.isBanned('acme', 'town-hall', 'troll'),
      (v) => !v,
    );
    assert.equal(await a.lift('acme', 'town-hall', 'troll'), false);
    // A third node started later reads what is in force.
    await a.ban('acme', 'town-hall', 'again', inAnHour());
    const c = await RoomBans.open({ db: other, log });
    onTestFinished(() => c.close());
    assert.ok(c.isBanned('acme', 'town-hall', 'again'));
  });

  test('two nodes placing one room at once: one wins, the other is told which node has it', async () => {
    const [a, b] = await twoDirectories();
    for (let i = 0; i < 5; i++) {
      const room = `contested-${i}`;
      const [ra, rb] = await Promise.all([a.place('acme', room, `call-a-${i}`), b.place('acme', room, `call-b-${i}`)]);
      assert.equal(Number(ra.placed) + Number(rb.placed), 1, `exactly one node placed ${room}`);
      const winner = ra.placed ? ra.placement : rb.placement;
      assert.deepEqual(ra.placement, winner, 'node a sees the winner');
      assert.deepEqual(rb.placement, winner, 'node b sees the winner');
      assert.deepEqual(await b.placement('acme', room), winner);
      const loser = ra.placed ? b : a;
      assert.equal(await loser.release('acme', room, winner.callId), false, 'only the owner releases');
      const owner = ra.placed ? a : b;
      assert.equal(await owner.release('acme', room, 'another-call'), false, 'only its own call');
      assert.equal(await owner.release('acme', room, winner.callId), true);
      assert.equal(await a.placement('acme', room), undefined);
    }
  });

  test("a dead node's placement is taken over; a node releases its own placements when it starts again", async () => {
    const dead = new Set<string>();
    const [a, b] = await twoDirectories(async (nodeId) => !dead.has(nodeId));
    assert.equal((await a.place('acme', 'moved', 'call-1')).placed, true);
    assert.equal((await b.place('acme', 'moved', 'call-2')).placed, false);
    dead.add('node-a');
    const taken = await b.place('acme', 'moved', 'call-2');
    assert.equal(taken.placed, true);
    assert.equal(taken.placement.nodeId, 'node-b');
    assert.equal(taken.placement.callId, 'call-2');
    assert.deepEqual([...(await a.placements('acme')).keys()], ['moved'], 'listed by tenant');

    await b.place('acme', 'other', 'call-3');
    const restarted = await RoomDirectory.open({ db: other, nodeId: 'node-b', log });
    onTestFinished(() => restarted.close());
    assert.deepEqual(await a.placements('acme'), new Map(), 'node b held no call any more');
  });

  test('rooms.json and room-bans.json are imported once, then renamed .imported', async () => {
    const dataDir = mkdtempSync(path.join(dir, 'legacy-'));
    const roomsFile = path.join(dataDir, 'rooms.json');
    const bansFile = path.join(dataDir, 'room-bans.json');
    const createdAt = '2026-01-02T03:04:05.000Z';
    writeFileSync(
      roomsFile,
      JSON.stringify({
        version: 1,
        rooms: [
          { tenant: 'acme', room: 'legacy', options: { recordingPolicy: 'always', consentRequired: true }, createdAt },
        ],
      }),
    );
    // The file as the version before wrote it: a hash of tenant, room and identity, and an expiry.
    const { createHash } = await import('node:crypto');
    const key = createHash('sha256').update('acme/legacy\0banned').digest('hex');
    const expired = createHash('sha256').update('acme/legacy\0was-banned').digest('hex');
    writeFileSync(
      bansFile,
      JSON.stringify({
        bans: [
          { key, until: inAnHour() },
          { key: expired, until: Date.now() / 1000 - 10 },
        ],
      }),
    );

    const rooms = await RoomDirectory.open({ db, nodeId: 'node-a', log, legacyFile: roomsFile });
    const bans = await RoomBans.open({ db, log, legacyFile: bansFile });
    onTestFinished(async () => {
      await rooms.close();
      await bans.close();
    });
    assert.deepEqual(rooms.get('acme', 'legacy'), {
      tenant: 'acme',
      room: 'legacy',
      options: { recordingPolicy: 'always', consentRequired: true },
      createdAt,
    });
    assert.ok(bans.isBanned('acme', 'legacy', 'banned'));
    assert.ok(!bans.isBanned('acme', 'legacy', 'was-banned'));
    assert.ok(!existsSync(roomsFile) && existsSync(`${roomsFile}.imported`));
    assert.ok(!existsSync(bansFile) && existsSync(`${bansFile}.imported`));
    assert.equal(JSON.parse(readFileSync(`${roomsFile}.imported`, 'utf8')).rooms.length, 1, 'kept as it was');

    // Idempotent: the same file again (a crash before the rename) changes nothing the store has since.
    await rooms.declare('acme', 'legacy', { recordingPolicy: 'off' });
    writeFileSync(roomsFile, readFileSync(`${roomsFile}.imported`));
    const again = await RoomDirectory.open({ db: other, nodeId: 'node-b', log, legacyFile: roomsFile });
    onTestFinished(() => again.close());
    assert.equal(again.optionsFor('acme', 'legacy').recordingPolicy, 'off');
    const { rows } = await db.query("SELECT room FROM rooms WHERE room = 'legacy'");
    assert.equal(rows.length, 1);

    // A corrupt file stops the start, and stays where it is for an operator to look at.
    writeFileSync(bansFile, '{"bans": [');
    await assert.rejects(RoomBans.open({ db, log, legacyFile: bansFile }), /cannot import/);
    assert.ok(existsSync(bansFile));
  });
});
