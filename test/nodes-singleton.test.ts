/**
 * Singletons on a real PostgreSQL server: two nodes (two connections to one
 * server) run the same periodic job; only the lock's holder runs it, and the
 * job moves to the other node when the holder's connection dies or it stops.
 */
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { Logger } from '../src/logging.js';
import { Singleton } from '../src/nodes/index.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

const log = pino({ level: 'silent' }) as unknown as Logger;

describe('singletons on a PostgreSQL server', () => {
  let server: PostgresServer;
  let a: Database;
  let b: Database;
  let admin: Database;
  beforeAll(async () => {
    server = await startPostgres();
    a = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
    b = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
    admin = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), admin?.close()]);
    await server?.stop();
  });

  /** Two nodes running the job `name`; counts runs per node and the most runs ever in progress at once. */
  async function twoNodes(name: string) {
    const stats = { active: 0, maxActive: 0, runs: { a: 0, b: 0 } };
    // The first node retries late: once its connection is killed it stands for a dead node, which never retries
    // (alive, it could win the lock back before the other node's next attempt, which would be right too).
    const node = async (id: 'a' | 'b', db: Database) => {
      const s = new Singleton(db, name, { retrySeconds: id === 'a' ? 60 : 0.3, log });
      const events: string[] = [];
      s.observer.on('acquired', () => events.push('acquired'));
      s.observer.on('lost', (reason) => events.push(`lost:${reason}`));
      await s.start();
      const stopJob = s.every(
        0.05,
        async () => {
          stats.active++;
          stats.maxActive = Math.max(stats.maxActive, stats.active);
          stats.runs[id]++;
          // The job does real work on its node's connection, long enough for runs to overlap if both ran.
          await db.query('SELECT pg_sleep(0.02)');
          stats.active--;
        },
        (err) => assert.fail(String(err)),
      );
      const stop = async () => {
        stopJob();
        await s.stop();
      };
      return { s, events, stop };
    };
    const na = await node('a', a);
    const nb = await node('b', b);
    return { stats, na, nb };
  }

  test('one node runs the job; when its connection dies the other takes over, never both at once', async () => {
    const { stats, na, nb } = await twoNodes('job-death');
    try {
      assert.ok(na.s.held, 'the first node takes the lock');
      assert.equal(nb.s.held, false, 'the second node does not');
      await waitFor(
        'the holder to run the job',
        async () => stats.runs.a,
        (n) => n >= 5,
      );
      assert.equal(stats.runs.b, 0, 'the node without the lock never ran the job');

      // What a node's death looks like to the server: the connection holding its lock ends.
      await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks
          WHERE locktype = 'advisory' AND objid::bigint = (hashtextextended('vigie:job-death', 0) & 4294967295)`,
      );
      await waitFor(
        'the other node to take the job over',
        async () => stats.runs.b,
        (n) => n >= 5,
      );
      assert.deepEqual(na.events, ['acquired', 'lost:connection']);
      assert.deepEqual(nb.events, ['acquired']);
      assert.equal(na.s.held, false);
      const runsOfA = stats.runs.a;
      // The former holder keeps retrying, and fails while the other node holds the lock.
      assert.equal(await na.s.tryAcquire(), false);
      await waitFor(
        'more runs on the new holder',
        async () => stats.runs.b,
        (n) => n >= 10,
      );
      assert.equal(stats.runs.a, runsOfA, 'the former holder ran nothing after it lost the lock');
      assert.equal(stats.maxActive, 1, 'the two nodes never ran the job at the same time');
    } finally {
      await na.stop();
      await nb.stop();
    }
  });

  test('a node that stops releases the job, and the other takes it over at its next attempt', async () => {
    const { stats, na, nb } = await twoNodes('job-stop');
    try {
      await waitFor(
        'the holder to run the job',
        async () => stats.runs.a,
        (n) => n >= 3,
      );
      await na.stop();
      assert.deepEqual(na.events, ['acquired', 'lost:stopped']);
      const runsOfA = stats.runs.a;
      await waitFor(
        'the other node to run the job',
        async () => stats.runs.b,
        (n) => n >= 3,
      );
      assert.equal(stats.runs.a, runsOfA);
      assert.equal(stats.maxActive, 1);
      // A stopped singleton does not come back by itself.
      assert.equal(await na.s.tryAcquire(), false);
    } finally {
      await nb.stop();
    }
  });
});
