/**
 * Appends at once to one tenant share a transaction (group commit), each
 * answered once its entry is committed. How the audit outbox reaches
 * ClickHouse: the rows of many appends travel in one batch (a shipping run per
 * append was a large part of an audited request's cost), they
 * arrive without anyone flushing, in chain order, and rows a node left in the
 * outbox when it stopped are shipped by the next start. Embedded store
 * (PGlite) on disk and the real ClickHouse engine (chdb).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, test } from 'vitest';
import { type ClickHouseClient, createClickHouseClient } from '../src/clickhouse/client.js';
import { migrate } from '../src/clickhouse/migrations.js';
import { FileAnchors } from '../src/compliance/anchors.js';
import { type AuditEntry, AuditLog } from '../src/compliance/AuditLog.js';
import type { ShipperOptions } from '../src/compliance/AuditShipper.js';
import { loadSigner, type Signer } from '../src/compliance/signing.js';
import type { Config } from '../src/config/index.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { capturedLogger } from './helpers/unit.js';

const DB = 'vigie';
const { log } = capturedLogger();
let dir: string;
let client: ClickHouseClient;
let signer: Signer;
let anchors: FileAnchors;
let db: Database | undefined;
let audit: AuditLog | undefined;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-audit-shipping-'));
  client = await createClickHouseClient({ clickhouse: {} as Config['clickhouse'], dataDir: dir });
  await migrate(client, { database: DB, log });
  anchors = new FileAnchors(path.join(dir, 'anchors.jsonl'));
});
afterAll(async () => {
  await stop().catch(() => undefined);
  await client?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A node on the embedded store in `dir` (the same files at each start). */
async function start(shipping: Partial<ShipperOptions>): Promise<AuditLog> {
  db = await openDatabase({ dataDir: path.join(dir, 'postgres') });
  signer ??= await loadSigner(dir, undefined, db, log);
  audit = new AuditLog(
    db,
    client,
    DB,
    signer,
    anchors,
    { checkpointEvery: 1000, checkpointMinutes: 60, shipping },
    log,
  );
  assert.equal(await audit.init(), true);
  return audit;
}

async function stop(): Promise<void> {
  await audit?.close();
  await db?.close();
  audit = db = undefined;
}

const append = (a: AuditLog, tenant: string, i: number) =>
  a.append({ tenant, actor: 'key:test', action: 'recording.read', target: `recording:${i}`, details: { i } });

async function shippedSeqs(tenant: string): Promise<number[]> {
  const rs = await client.query({
    query: `SELECT seq FROM ${DB}.audit_log WHERE tenant = {tenant:String} ORDER BY seq`,
    query_params: { tenant },
    format: 'JSONEachRow',
  });
  return (await rs.json<{ seq: string }>()).map((r) => Number(r.seq));
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

test('appends wait in the outbox until batchRows of them do, then travel in one insert, in order', async () => {
  // No timer ships here (an hour): only the count of waiting rows does.
  const a = await start({ batchRows: 10, delayMs: 3_600_000, pollMs: 3_600_000 });
  const batches: number[] = [];
  a.shipper.observer.on('shipped', (table, rows) => table === 'audit_log' && batches.push(rows));
  for (let i = 1; i <= 9; i++) await append(a, 'burst', i);
  const { rows } = await db!.query<{ waiting: string; unbatched: string }>(
    'SELECT count(*)::text AS waiting, count(*) FILTER (WHERE batch IS NULL)::text AS unbatched FROM audit_outbox',
  );
  assert.deepEqual(rows[0], { waiting: '9', unbatched: '9' }, 'committed, durable, not yet shipped');
  await append(a, 'burst', 10);
  await waitFor(
    'the 10 entries in ClickHouse',
    () => shippedSeqs('burst'),
    (s) => s.length === 10,
    60_000,
  );
  assert.deepEqual(await shippedSeqs('burst'), upTo(10), 'every entry once, in chain order');
  assert.deepEqual(batches, [10], 'one insert for the ten');
  await stop();
});

test('rows left in the outbox by a node that stopped before shipping them reach ClickHouse after the restart, in order', async () => {
  let a = await start({ delayMs: 3_600_000, pollMs: 3_600_000 });
  for (let i = 1; i <= 5; i++) await append(a, 'restart', i);
  // Stopped as a crash would: nothing drained, the rows stay in the (durable) outbox.
  await a.shipper.close();
  await stop();
  assert.deepEqual(await shippedSeqs('restart'), [], 'nothing shipped before the stop');

  a = await start({ delayMs: 50 });
  await waitFor(
    'the rows left shipped at start',
    () => shippedSeqs('restart'),
    (s) => s.length === 5,
    60_000,
  );
  // New appends continue the chain and follow on the short timer, without a flush.
  for (let i = 6; i <= 8; i++) await append(a, 'restart', i);
  await waitFor(
    'the new entries shipped',
    () => shippedSeqs('restart'),
    (s) => s.length === 8,
    60_000,
  );
  assert.deepEqual(await shippedSeqs('restart'), upTo(8));
  const r = await a.verify('restart');
  assert.deepEqual([r.ok, r.problems], [true, []], 'the chain is unbroken across the restart');
});

test('appends at once to one tenant, each from its own turn of the event loop as requests are, share a transaction; each answered with its own committed entry', async () => {
  const a = await start({ delayMs: 3_600_000, pollMs: 3_600_000 });
  const entries = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) =>
        new Promise<AuditEntry>((resolve, reject) =>
          setImmediate(() => append(a, 'group', i + 1).then(resolve, reject)),
        ),
    ),
  );
  assert.deepEqual(
    entries.map((e) => e.seq),
    upTo(20),
  );
  // xmin: the transaction that inserted the row.
  const { rows } = await db!.query<{ n: string; tx: string }>(
    `SELECT seq::text AS n, xmin::text AS tx FROM audit_outbox WHERE tenant = 'group' ORDER BY seq`,
  );
  assert.deepEqual(
    rows.map((r) => Number(r.n)),
    upTo(20),
    'every entry committed before its append answered',
  );
  const transactions = new Set(rows.map((r) => r.tx)).size;
  assert.ok(transactions <= 2, `20 appends in ${transactions} transactions`);
  const r = await a.verify('group');
  assert.deepEqual([r.ok, r.entries, r.problems], [true, 20, []]);
  await stop();
});

test('an append whose details cannot be serialized fails alone: the others of its group are committed and chained', async () => {
  const a = await start({ delayMs: 3_600_000, pollMs: 3_600_000 });
  const results = await Promise.allSettled(
    Array.from(
      { length: 5 },
      (_, i) =>
        new Promise<AuditEntry>((resolve, reject) =>
          setImmediate(() =>
            (i === 2
              ? a.append({ tenant: 'mixed', actor: 'key:test', action: 'recording.read', details: { n: 1n } })
              : append(a, 'mixed', i + 1)
            ).then(resolve, reject),
          ),
        ),
    ),
  );
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
  );
  assert.deepEqual(
    results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.seq] : [])),
    upTo(4),
  );
  const r = await a.verify('mixed');
  assert.deepEqual([r.ok, r.entries, r.problems], [true, 4, []]);
  await stop();
});

test('an entry appended just before a stop, its caller not waiting, is committed before the store closes', async () => {
  const a = await start({ delayMs: 3_600_000, pollMs: 3_600_000 });
  const pending = append(a, 'shutdown', 1);
  await stop();
  assert.equal((await pending).seq, 1);
  const b = await start({ delayMs: 3_600_000, pollMs: 3_600_000 });
  await b.flush();
  assert.deepEqual(await shippedSeqs('shutdown'), [1], 'the entry is in the chain after the restart');
  assert.equal((await b.verify('shutdown')).ok, true);
  await stop();
});
