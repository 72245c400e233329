/**
 * The control plane's store on both engines it runs on: the embedded PGlite
 * and a real PostgreSQL 15 server from Debian. Same SQL, same guarantees.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { Logger } from '../src/logging.js';
import { Pseudonymizer } from '../src/telemetry/Pseudonymizer.js';
import { type Database, insertOrRead, migrateStore, openDatabase, type StoreMigration } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

const log = pino({ level: 'silent' }) as unknown as Logger;

const MIGRATIONS: StoreMigration[] = [
  { version: 1, name: 'things', sql: 'CREATE TABLE things (id text PRIMARY KEY, n integer NOT NULL);' },
  { version: 2, name: 'things.note', sql: "ALTER TABLE things ADD COLUMN note text NOT NULL DEFAULT '';\n" },
];

describe.each(['pglite', 'postgres'] as const)('store on %s', (kind) => {
  let server: PostgresServer | undefined;
  let dir: string;
  let db: Database;
  /** A second node's connection to the same store (PGlite is one process: the same instance). */
  let other: Database;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-store-'));
    if (kind === 'postgres') server = await startPostgres();
    db = await openDatabase({ url: server?.url, dataDir: dir });
    other = server ? await openDatabase({ url: server.url, dataDir: dir }) : db;
  });
  afterAll(async () => {
    if (other !== db) await other?.close();
    await db?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a value made on the spot is stored or read in one round trip, and two nodes racing agree on one', async () => {
    await db.query('CREATE TABLE IF NOT EXISTS kv_test (k text PRIMARY KEY, v text NOT NULL)');
    const t = { table: 'kv_test', key: 'k', value: 'v' };
    // The statements one call sends: a first-time participant's join waits for each of them.
    const counted = (q: Database) => {
      const sent: string[] = [];
      const query = (sql: string, params?: unknown[]) => {
        sent.push(sql);
        return q.query(sql, params);
      };
      return { sent, db: { query } };
    };
    const first = counted(db);
    assert.equal(await insertOrRead(first.db as never, t, 'alice', 'salt-1'), 'salt-1', 'stored');
    const again = counted(db);
    assert.equal(
      await insertOrRead(again.db as never, t, 'alice', 'salt-2'),
      'salt-1',
      'the stored one, not a new one',
    );
    assert.deepEqual([first.sent.length, again.sent.length], [1, 1]);
    const raced = await Promise.all(
      Array.from({ length: 8 }, (_, i) => insertOrRead(i % 2 ? other : db, t, 'bob', `salt-${i}`)),
    );
    assert.equal(new Set(raced).size, 1, `every node gets the one stored salt: ${raced}`);
  });

  test("a participant seen for the first time costs their join one statement (their salt's)", async () => {
    const pseudonyms = new Pseudonymizer('m'.repeat(32), db);
    await pseudonyms.start(path.join(dir, 'no-legacy-salts.jsonl'), log);
    const sent: string[] = [];
    const query = db.query.bind(db);
    db.query = ((sql: string, params?: unknown[]) => {
      sent.push(sql);
      return query(sql, params);
    }) as typeof db.query;
    try {
      const first = await pseudonyms.pseudonym('acme', 'carol@example.fr');
      assert.equal(sent.length, 1, sent.join('\n'));
      assert.equal(await new Pseudonymizer('m'.repeat(32), other).pseudonym('acme', 'carol@example.fr'), first);
    } finally {
      db.query = query;
      pseudonyms.stop();
    }
  });

  test('migrations apply once, even when two nodes start together', async () => {
    assert.equal(db.kind, kind);
    const [a, b] = await Promise.all([
      migrateStore(db, 'test', MIGRATIONS, log),
      migrateStore(other, 'test', MIGRATIONS, log),
    ]);
    assert.deepEqual([...a, ...b].sort(), [1, 2]);
    assert.deepEqual(await migrateStore(db, 'test', MIGRATIONS, log), []);
    const { rows } = await db.query<{ owner: string; version: number }>(
      "SELECT owner, version FROM schema_migrations WHERE owner = 'test' ORDER BY version",
    );
    assert.deepEqual(
      rows.map((r) => r.version),
      [1, 2],
    );
  });

  test('a migration that fails leaves nothing behind and is retried on the next start', async () => {
    const bad: StoreMigration = { version: 3, name: 'bad', sql: 'CREATE TABLE half (id text);\nSELECT 1/0;' };
    await assert.rejects(migrateStore(db, 'test', [...MIGRATIONS, bad], log), /division by zero/);
    const { rows } = await db.query("SELECT to_regclass('half') AS t");
    assert.equal(rows[0]!.t, null);
    const fixed = { ...bad, sql: 'CREATE TABLE half (id text);' };
    assert.deepEqual(await migrateStore(db, 'test', [...MIGRATIONS, fixed], log), [3]);
  });

  test('a transaction commits when it resolves and leaves nothing when it throws', async () => {
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO things (id, n) VALUES ($1, $2)', ['kept', 1]);
    });
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO things (id, n) VALUES ($1, $2)', ['dropped', 2]);
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    const { rows } = await other.query<{ id: string }>('SELECT id FROM things ORDER BY id');
    assert.deepEqual(
      rows.map((r) => r.id),
      ['kept'],
    );
  });

  test('a notification reaches every node that listens', async () => {
    const got: string[] = [];
    const stop = await other.listen('vigie_test', (p) => got.push(p));
    await db.notify('vigie_test', 'tenant acme changed');
    await waitFor(
      'the notification',
      async () => got.length,
      (n) => n === 1,
    );
    assert.deepEqual(got, ['tenant acme changed']);
    await stop();
    await db.notify('vigie_test', 'after unlisten');
    await db.query('SELECT 1');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(got, ['tenant acme changed']);
  });

  test('an advisory lock has one holder at a time, and passes on when released', async () => {
    const first = await db.tryAdvisoryLock('vigie:test-singleton');
    assert.ok(first, 'the first node takes the lock');
    assert.equal(await other.tryAdvisoryLock('vigie:test-singleton'), undefined, 'a second holder is refused');
    await first.release();
    const second = await other.tryAdvisoryLock('vigie:test-singleton');
    assert.ok(second, 'the lock passes on after release');
    await second.release();
  });
});

describe('store on a PostgreSQL server: node death', () => {
  let server: PostgresServer;
  let a: Database;
  let b: Database;
  beforeAll(async () => {
    server = await startPostgres();
    a = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
    b = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await server?.stop();
  });

  test("a singleton's lock moves to another node when its holder's connection dies", async () => {
    const lease = await a.tryAdvisoryLock('vigie:retention-sweeper');
    assert.ok(lease);
    assert.equal(await b.tryAdvisoryLock('vigie:retention-sweeper'), undefined);
    // What a node's death looks like to the server: its connection ends.
    await b.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE locktype = 'advisory' AND objid::bigint = (hashtextextended('vigie:retention-sweeper', 0) & 4294967295)`,
    );
    await lease.lost;
    const taken = await b.tryAdvisoryLock('vigie:retention-sweeper');
    assert.ok(taken, 'another node takes the lock');
    await taken.release();
  });

  test('a node that keeps trying for a lock another node holds does it on one kept connection', async () => {
    const lease = await a.tryAdvisoryLock('vigie:ttl');
    assert.ok(lease);
    // Sessions the server has opened so far (counted by PostgreSQL itself; a backend's count is flushed when it
    // ends, so connections opened and closed per try are all counted by the time they are gone).
    const sessions = async () =>
      Number(
        (
          await a.query<{ n: string }>(
            'SELECT sessions::text AS n FROM pg_stat_database WHERE datname = current_database()',
          )
        ).rows[0]!.n,
      );
    assert.equal(await b.tryAdvisoryLock('vigie:ttl'), undefined, 'held by the other node');
    const before = await sessions();
    const tries = 8;
    for (let i = 0; i < tries; i++) assert.equal(await b.tryAdvisoryLock('vigie:ttl'), undefined);
    const opened = (await sessions()) - before;
    // A kept connection counts once at most (its count may be flushed late), and so may a pooled one.
    assert.ok(opened <= 2, `${tries} tries opened ${opened} connections`);
    // The kept connection still carries the lock when it is finally free, and a lost lease still says so.
    await lease.release();
    const taken = await b.tryAdvisoryLock('vigie:ttl');
    assert.ok(taken, 'the lock passes on');
    await a.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'vigie-locks'");
    await taken.lost;
  });

  test('a listener whose connection is cut listens again, and is told to read what it missed', async () => {
    const got: string[] = [];
    let resyncs = 0;
    const stop = await a.listen(
      'vigie_test_cut',
      (p) => got.push(p),
      () => resyncs++,
    );
    // What a failover looks like to this node: the server ends its listening connection.
    await b.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'vigie-listen'");
    await waitFor(
      'the resync',
      async () => resyncs,
      (n) => n >= 1,
    );
    await b.notify('vigie_test_cut', 'after the cut');
    await waitFor(
      'the notification after the cut',
      async () => got,
      (g) => g.includes('after the cut'),
    );
    await stop();
  });
});
