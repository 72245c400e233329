/**
 * Erasure destroys a subject's salt for real (its bytes leave the table's
 * file) without making joins, which read and insert salts, queue behind the
 * table rewrite: on a real PostgreSQL server, with a long transaction holding
 * the table as a report or a backup would.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import type { Logger } from '../src/logging.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { Pseudonymizer } from '../src/telemetry/Pseudonymizer.js';
import { waitFor } from './helpers/browser.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

const log = pino({ level: 'silent' }) as unknown as Logger;
const SECRET = 'a-test-master-secret-of-32-bytes!';

let server: PostgresServer;
let dir: string;
let a: Database;
let b: Database;
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-salts-'));
  server = await startPostgres();
  a = await openDatabase({ url: server.url, dataDir: dir });
  b = await openDatabase({ url: server.url, dataDir: dir });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Whether `text` is in the file that holds subject_salts' rows, once PostgreSQL has written its pages out. */
async function inTableFile(text: string): Promise<boolean> {
  await a.query('CHECKPOINT');
  const { rows } = await a.query<{ f: string }>("SELECT pg_relation_filepath('subject_salts') AS f");
  return readFileSync(path.join(server.dir, 'data', rows[0]!.f)).includes(text);
}

async function saltOf(db: Database): Promise<string> {
  const { rows } = await db.query<{ salt: string }>('SELECT salt FROM subject_salts');
  assert.equal(rows.length, 1);
  return rows[0]!.salt;
}

test('an erasure while a long transaction reads the salts answers, joins go on, and the salt leaves the disk after', async () => {
  const nodeA = new Pseudonymizer(SECRET, a);
  const nodeB = new Pseudonymizer(SECRET, b);
  await nodeA.start(path.join(dir, 'none.jsonl'), log);
  await nodeB.start(path.join(dir, 'none.jsonl'), log);
  await nodeA.pseudonym('acme', 'erin@example.fr');
  const salt = await saltOf(a);
  assert.ok(await inTableFile(salt), "the salt is in the table's file: the check sees it");

  // Another session has read the table and its transaction goes on (a report, pg_dump): it holds a lock that
  // VACUUM FULL must wait for, and while VACUUM FULL waits, every later reader and writer waits behind it.
  const reader = new pg.Client({ connectionString: server.url });
  await reader.connect();
  // Whatever happens, the long transaction ends with the test (else closing the store would wait on it).
  onTestFinished(() => reader.end().catch(() => undefined));
  await reader.query('BEGIN');
  await reader.query('SELECT count(*) FROM subject_salts');

  let answered = false;
  const erased = nodeA.forget('acme', 'erin@example.fr').finally(() => (answered = true));
  await waitFor(
    'the erasure to answer while the long transaction runs',
    async () => answered,
    (v) => v,
  );
  assert.equal(await erased, true);
  // Joins on both nodes go on: a new subject's salt is inserted, a known one is read.
  const frank = await nodeB.pseudonym('acme', 'frank@example.fr');
  assert.equal(await nodeA.pseudonym('acme', 'frank@example.fr'), frank);
  assert.equal(await nodeB.existing('acme', 'erin@example.fr'), undefined, 'the salt is unreadable at once');
  assert.ok(await inTableFile(salt), 'not rewritten yet: the long transaction still holds the table');

  await reader.query('COMMIT');
  await waitFor(
    "the salt to leave the table's file",
    async () => inTableFile(salt),
    (v) => !v,
  );
  await waitFor(
    'the erasure note to be cleared',
    async () => (await a.query('SELECT id FROM subject_salts_erased')).rows.length,
    (n) => n === 0,
  );
  assert.equal(await nodeB.pseudonym('acme', 'frank@example.fr'), frank, 'the rewrite kept the other salts');
  nodeA.stop();
  nodeB.stop();
});

test('a rewrite its node could not finish (it stopped) is finished by the next node to start', async () => {
  const nodeA = new Pseudonymizer(SECRET, a);
  await nodeA.start(path.join(dir, 'none.jsonl'), log);
  await nodeA.pseudonym('acme', 'gail@example.fr');
  const salt = (await a.query<{ salt: string }>('SELECT salt FROM subject_salts ORDER BY created_at DESC LIMIT 1'))
    .rows[0]!.salt;
  const reader = new pg.Client({ connectionString: server.url });
  await reader.connect();
  // Whatever happens, the long transaction ends with the test (else closing the store would wait on it).
  onTestFinished(() => reader.end().catch(() => undefined));
  await reader.query('BEGIN');
  await reader.query('SELECT count(*) FROM subject_salts');
  assert.equal(await nodeA.forget('acme', 'gail@example.fr'), true);
  nodeA.stop();
  await reader.query('COMMIT');
  assert.ok(await inTableFile(salt), 'its node stopped before the rewrite');

  const nodeB = new Pseudonymizer(SECRET, b);
  await nodeB.start(path.join(dir, 'none.jsonl'), log);
  await waitFor(
    "the salt to leave the table's file",
    async () => inTableFile(salt),
    (v) => !v,
  );
  nodeB.stop();
});
