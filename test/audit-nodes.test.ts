/**
 * The audit chain on several nodes sharing one real PostgreSQL server (Debian's
 * 15): each node is an AuditLog on its own connection, as a separate Vigie
 * process would hold one, over the same ClickHouse engine. The chain of a
 * tenant stays one (no gap, no double, each entry chained to the one before),
 * each checkpoint is signed once, and the periodic checkpoints are signed by
 * one node at a time, another taking over when its connection dies.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, test } from 'vitest';
import { type ClickHouseClient, createClickHouseClient } from '../src/clickhouse/client.js';
import { migrate } from '../src/clickhouse/migrations.js';
import { FileAnchors } from '../src/compliance/anchors.js';
import { ANCHORING_LOCK, AuditLog } from '../src/compliance/AuditLog.js';
import { loadSigner, type Signer } from '../src/compliance/signing.js';
import type { Config } from '../src/config/index.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';
import { capturedLogger } from './helpers/unit.js';

const DB = 'vigie';
const { log } = capturedLogger();
let dir: string;
let server: PostgresServer;
let client: ClickHouseClient;
let signer: Signer;
let anchors: FileAnchors;
const dbs: Database[] = [];
const nodes: AuditLog[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-audit-nodes-'));
  server = await startPostgres();
  client = await createClickHouseClient({ clickhouse: {} as Config['clickhouse'], dataDir: dir });
  await migrate(client, { database: DB, log });
  // The nodes share the signing key (VIGIE_AUDIT_SIGNING_KEY_FILE on a shared secret) and the anchors.
  const keyRing = await openDatabase({ url: server.url, dataDir: dir });
  signer = await loadSigner(dir, undefined, keyRing, log);
  dbs.push(keyRing);
  anchors = new FileAnchors(path.join(dir, 'anchors.jsonl'));
});
afterAll(async () => {
  for (const n of nodes) await n.close().catch(() => undefined);
  for (const d of dbs) await d.close().catch(() => undefined);
  await client?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A node: its own connection to the server, its own AuditLog. */
async function node(options = { checkpointEvery: 25, checkpointMinutes: 60 }): Promise<AuditLog> {
  const db = await openDatabase({ url: server.url, dataDir: dir, poolSize: 4 });
  dbs.push(db);
  const audit = new AuditLog(db, client, DB, signer, anchors, options, log);
  nodes.push(audit);
  assert.equal(await audit.init(), true);
  return audit;
}

const append = (audit: AuditLog, tenant: string, node: number, i: number) =>
  audit.append({ tenant, actor: `node:${node}`, action: 'recording.read', target: `recording:${i}`, details: { i } });

test('three nodes appending at once to one tenant (and another) make one unbroken chain per tenant, each checkpoint signed once', async () => {
  // Started together: the migrations and the import run once.
  const [a, b, c] = await Promise.all([node(), node(), node()]);
  const three = [a!, b!, c!];
  await Promise.all(
    three.map(async (audit, n) => {
      for (let i = 0; i < 100; i++) {
        // Several appends of one node in flight at once, as concurrent requests would be.
        await Promise.all([append(audit, 'shared', n, i), i % 5 === 0 ? append(audit, 'other', n, i) : undefined]);
      }
    }),
  );
  for (const audit of three) await audit.flush();

  const shared = await a!.verify('shared');
  assert.deepEqual([shared.ok, shared.entries, shared.problems], [true, 300, []]);
  const other = await b!.verify('other');
  assert.deepEqual([other.ok, other.entries, other.problems], [true, 60, []]);
  const rows = await (
    await client.query({
      query: `SELECT seq, actor FROM ${DB}.audit_log WHERE tenant = 'shared' ORDER BY seq`,
      format: 'JSONEachRow',
    })
  ).json<{ seq: string; actor: string }>();
  assert.deepEqual(
    rows.map((r) => Number(r.seq)),
    Array.from({ length: 300 }, (_, i) => i + 1),
    'one entry per position in ClickHouse: none lost, none twice',
  );
  assert.deepEqual(
    [...new Set(rows.map((r) => r.actor))].sort(),
    ['node:0', 'node:1', 'node:2'],
    'every node appended to the one chain',
  );
  const checkpoints = await (
    await client.query({
      query: `SELECT seq FROM ${DB}.audit_checkpoints WHERE tenant = 'shared' ORDER BY seq`,
      format: 'JSONEachRow',
    })
  ).json<{ seq: string }>();
  assert.deepEqual(
    checkpoints.map((r) => Number(r.seq)),
    Array.from({ length: 12 }, (_, i) => 25 * (i + 1)),
    'every 25th entry checkpointed, once, by whichever node appended it',
  );
  assert.deepEqual(
    (await anchors.list('shared')).map((cp) => cp.seq),
    checkpoints.map((r) => Number(r.seq)),
  );
  const { rows: outbox } = await dbs[0]!.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_outbox');
  assert.equal(outbox[0]!.n, '0', 'everything shipped has left the outbox');
});

test('the periodic checkpoints are signed by one node at a time, and another takes over when its connection dies', async () => {
  // A checkpoint is "due by time" as soon as the chain has a new entry: the tick then signs it.
  const tick = { checkpointEvery: 1000, checkpointMinutes: 0.0001 };
  const writer = nodes[0]!;
  const first = await node(tick);
  const second = await node(tick);
  const anchored = async (tenant: string) => (await anchors.list(tenant)).map((cp) => cp.seq);

  assert.equal(await first.anchoringTick(), true, 'the first node to tick takes the lock');
  assert.equal(await second.anchoringTick(), false, 'the second finds it held');
  assert.equal(first.anchoring, true);
  assert.equal(second.anchoring, false);

  await append(writer, 'idle', 0, 1);
  await append(writer, 'idle', 0, 2);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await second.anchoringTick(), false);
  assert.deepEqual(await anchored('idle'), [], 'the node without the lock signs nothing');
  assert.equal(await first.anchoringTick(), true);
  assert.deepEqual(await anchored('idle'), [2], 'the holder signs the chain that had new entries');

  // The holder's node dies: the server drops its connection, and with it the session lock.
  const admin = dbs[0]!;
  const { rows } = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
     AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)`,
    [ANCHORING_LOCK],
  );
  assert.equal(rows.length, 1, 'one connection holds the anchoring lock');
  await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
  await waitFor(
    'the first node to see its lock lost',
    async () => first.anchoring,
    (v) => v === false,
  );

  await append(writer, 'idle', 0, 3);
  await new Promise((r) => setTimeout(r, 50));
  await waitFor(
    'the second node to take over',
    () => second.anchoringTick(),
    (v) => v === true,
  );
  assert.deepEqual(await anchored('idle'), [2, 3], 'the new holder signs what came after');
  assert.equal(await first.anchoringTick(), false, 'the first node, back, finds the lock held');
  await second.flush();
  const r = await writer.verify('idle');
  assert.deepEqual([r.ok, r.entries, r.checkpoints, r.anchored], [true, 3, 2, 2], JSON.stringify(r.problems));
});

test('with the control plane down, an append is refused as UNAVAILABLE (retryable), never answered as done', async () => {
  const audit = nodes[0]!;
  await server.stop();
  await assert.rejects(audit.append({ tenant: 'shared', actor: 'node:0', action: 'recording.read' }), {
    code: 'UNAVAILABLE',
  });
});
