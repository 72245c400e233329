import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, onTestFinished, test } from 'vitest';
import { type ClickHouseClient, createClickHouseClient } from '../../src/clickhouse/client.js';
import { migrate } from '../../src/clickhouse/migrations.js';
import { FileAnchors } from '../../src/compliance/anchors.js';
import { type AuditEntry, AuditLog, entryHash, GENESIS } from '../../src/compliance/AuditLog.js';
import { loadSigner, type Signer } from '../../src/compliance/signing.js';
import type { Config } from '../../src/config/index.js';
import { type Database, openDatabase } from '../../src/store/index.js';
import { capturedLogger } from '../helpers/unit.js';

// The hash chain and its verification, on the embedded ClickHouse engine (chdb, in this process) and the embedded
// control plane (PGlite) with the signer and anchors the gateway uses: no gateway, no mediasoup. audit-log.test.ts covers outages, restarts of the
// whole gateway, S3 anchors and key rotation.

const DB = 'vigie';
const { log } = capturedLogger();
let dir: string;
let client: ClickHouseClient;
let db: Database;
let signer: Signer;
let anchors: FileAnchors;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-unit-audit-'));
  client = await createClickHouseClient({ clickhouse: {} as Config['clickhouse'], dataDir: dir });
  await migrate(client, { database: DB, log });
  db = await openDatabase({ dataDir: path.join(dir, 'postgres') });
  signer = await loadSigner(dir, undefined, db, log);
  anchors = new FileAnchors(path.join(dir, 'anchors.jsonl'));
});
afterAll(async () => {
  for (const a of logs) await a.close();
  await db?.close();
  await client?.close();
  rmSync(dir, { recursive: true, force: true });
});

const logs: AuditLog[] = [];
/** An audit log as the gateway builds one, over the same stores and anchors (a restart makes another). */
async function auditLog(checkpointEvery = 5): Promise<AuditLog> {
  const audit = new AuditLog(db, client, DB, signer, anchors, { checkpointEvery, checkpointMinutes: 60 }, log);
  logs.push(audit);
  assert.equal(await audit.init(), true);
  return audit;
}

async function appendMany(audit: AuditLog, tenant: string, n: number): Promise<AuditEntry[]> {
  // Concurrent appends: the lock on the chain's head must still give each its own position.
  const entries = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      audit.append({ tenant, actor: 'key:unit', action: 'recording.read', target: `recording:${i}`, details: { i } }),
    ),
  );
  await audit.flush();
  return entries;
}

const mutate = (query: string) => client.command({ query, clickhouse_settings: { mutations_sync: '2' } });
const kinds = (r: { problems: Array<{ seq: number; kind: string }> }) => r.problems.map((p) => `${p.kind}@${p.seq}`);

describe('the audit chain', () => {
  test('each entry carries the hash of the one before, per tenant, from the genesis hash; a checkpoint is signed and anchored', async () => {
    const audit = await auditLog();
    const acme = await appendMany(audit, 'acme', 7);
    const shop = await appendMany(audit, 'shop', 2);
    assert.deepEqual(
      acme.map((e) => e.seq),
      [1, 2, 3, 4, 5, 6, 7],
    );
    for (const [i, e] of acme.entries()) {
      const { hash, ...body } = e;
      assert.equal(hash, entryHash(body), `entry ${e.seq}'s hash covers its content`);
      assert.equal(e.prev_hash, i === 0 ? GENESIS : acme[i - 1]!.hash, `entry ${e.seq} chains to the one before`);
    }
    assert.equal(shop[0]!.prev_hash, GENESIS, 'another tenant has its own chain');
    assert.deepEqual(
      (await anchors.list('acme')).map((c) => [c.seq, c.hash]),
      [[5, acme[4]!.hash]],
      'the fifth entry is checkpointed outside ClickHouse',
    );
    const result = await audit.verify('acme');
    assert.deepEqual(
      { ...result, problems: kinds(result) },
      { ok: true, entries: 7, checkpoints: 1, anchored: 1, problems: [] },
    );
  });

  test('appends are refused before the heads are read back; after a restart the chain continues where it stopped', async () => {
    const cold = new AuditLog(db, client, DB, signer, anchors, { checkpointEvery: 5, checkpointMinutes: 60 }, log);
    await assert.rejects(cold.append({ tenant: 'acme', actor: 'a', action: 'x' }), { code: 'UNAVAILABLE' });
    await assert.rejects(cold.verify('acme'), { code: 'UNAVAILABLE' });

    const before = await auditLog();
    const [last] = (await appendMany(before, 'restart', 3)).slice(-1);
    const after = await auditLog();
    const [next] = await appendMany(after, 'restart', 1);
    assert.equal(next!.seq, 4);
    assert.equal(next!.prev_hash, last!.hash);
    assert.equal((await after.verify('restart')).ok, true);
  });

  test('an altered entry, a deleted one, an inserted one and a truncated end are each named at their position', async () => {
    const audit = await auditLog();
    const altered = await appendMany(audit, 'altered', 4);
    await mutate(`ALTER TABLE ${DB}.audit_log UPDATE details = '{"i":99}' WHERE tenant = 'altered' AND seq = 2`);
    assert.deepEqual(kinds(await audit.verify('altered')), ['altered@2']);

    // The forger recomputes the entry's own hash: the next entry's prev_hash still gives it away.
    const { hash: _old, ...body } = altered[2]!;
    const forged = entryHash({ ...body, actor: 'someone-else' });
    await mutate(
      `ALTER TABLE ${DB}.audit_log UPDATE actor = 'someone-else', hash = '${forged}' WHERE tenant = 'altered' AND seq = 3`,
    );
    assert.ok(kinds(await audit.verify('altered')).includes('altered@3'));

    await appendMany(audit, 'deleted', 4);
    await mutate(`ALTER TABLE ${DB}.audit_log DELETE WHERE tenant = 'deleted' AND seq = 2`);
    assert.deepEqual(kinds(await audit.verify('deleted')), ['deleted@2']);

    const [, second] = await appendMany(audit, 'inserted', 3);
    // Its own deduplication token: the embedded engine would otherwise reuse the shipper's last one and drop the row.
    await client.insert({
      table: `${DB}.audit_log`,
      values: [{ ...second, target: 'recording:extra' }],
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: 'unit-inserted-entry' },
    });
    // Also altered: the forged row keeps the hash of the one it copies.
    assert.deepEqual(kinds(await audit.verify('inserted')).sort(), ['altered@2', 'inserted@2']);

    // Truncated past a checkpoint: the anchor outside ClickHouse still names the end.
    await appendMany(audit, 'truncated', 6);
    await mutate(`ALTER TABLE ${DB}.audit_log DELETE WHERE tenant = 'truncated' AND seq >= 4`);
    await mutate(`ALTER TABLE ${DB}.audit_checkpoints DELETE WHERE tenant = 'truncated'`);
    const truncated = await audit.verify('truncated');
    assert.equal(truncated.ok, false);
    assert.ok(kinds(truncated).includes('deleted@4'), kinds(truncated).join());
    assert.ok(
      truncated.problems.some((p) => p.kind === 'checkpoint' && /deleted from audit_checkpoints/.test(p.detail)),
    );
  });

  test('a checkpoint that claims another hash than the one signed, or is signed by an unknown key, is named', async () => {
    const audit = await auditLog(2);
    await appendMany(audit, 'signed', 2);
    // Edit the anchor outside ClickHouse: its hash no longer matches its signed payload.
    const file = path.join(dir, 'anchors.jsonl');
    const lines = readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"tenant":"signed"'));
    lines[i] = JSON.stringify({ ...JSON.parse(lines[i]!), hash: GENESIS });
    writeFileSync(file, lines.join('\n'));
    const edited = await audit.verify('signed');
    assert.ok(
      edited.problems.some(
        (p) => p.kind === 'checkpoint' && p.seq === 2 && /differs from what was signed/.test(p.detail),
      ),
      JSON.stringify(edited.problems),
    );

    // A checkpoint signed by a key this gateway never had.
    // Another control plane, whose key ring this one never sees.
    const elsewhere = await openDatabase({ dataDir: 'memory://' });
    onTestFinished(() => elsewhere.close());
    const other = await loadSigner(mkdtempSync(path.join(dir, 'other-key-')), undefined, elsewhere, log);
    await appendMany(audit, 'foreign', 1);
    const [entry] = await appendMany(audit, 'foreign', 1);
    const ts = Date.now();
    await anchors.append({
      tenant: 'foreign',
      seq: 2,
      hash: entry!.hash,
      ts,
      jws: await other.sign({ tenant: 'foreign', seq: 2, hash: entry!.hash, ts }),
    });
    const foreign = await audit.verify('foreign');
    assert.ok(
      foreign.problems.some(
        (p) => p.kind === 'checkpoint' && p.seq === 2 && /anchor checkpoint at 2 is invalid/.test(p.detail),
      ),
      JSON.stringify(foreign.problems),
    );
  });
});
