/**
 * The audit chain moves to the control plane without a fork: a data dir made
 * by the version before (heads in ClickHouse, unshipped entries in the local
 * journal) continues its chains on first start, once; and the gateway on a
 * real PostgreSQL server shares its chains with another node.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, test } from 'vitest';
import { createClickHouseClient } from '../src/clickhouse/client.js';
import { migrate } from '../src/clickhouse/migrations.js';
import { type AuditEntry, AuditLog, entryHash, FileAnchors, GENESIS, loadSigner } from '../src/compliance/index.js';
import type { Config } from '../src/config/index.js';
import type { Logger } from '../src/logging.js';
import { openDatabase } from '../src/store/index.js';
import { Spool } from '../src/telemetry/index.js';
import { waitFor } from './helpers/browser.js';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { ACME_KEY, DPO_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { startPostgres } from './helpers/postgres.js';

const log = pino({ level: 'silent' }) as unknown as Logger;
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});
const tmp = (prefix: string) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

const mint = (g: TestGateway, identity: string) =>
  g.app.inject({
    method: 'POST',
    url: '/v1/tokens',
    headers: { 'x-api-key': ACME_KEY.key },
    payload: { room: 'upgrade', identity },
  });

/** An old chain: entries as the version before made them, each chained to the one before. */
function oldChain(tenant: string, n: number): AuditEntry[] {
  const out: AuditEntry[] = [];
  for (let seq = 1; seq <= n; seq++) {
    const body = {
      tenant,
      seq,
      ts: Date.now() - 60_000 + seq,
      actor: 'key:acme01',
      action: 'token.mint',
      target: 'room:before',
      subject: '',
      result: 'ok',
      source_ip: '',
      details: '{}',
      prev_hash: out[seq - 2]?.hash ?? GENESIS,
    };
    out.push({ ...body, hash: entryHash(body) });
  }
  return out;
}

test('a data dir of the version before: the journal is shipped and set aside, the heads imported once, the chain continues', async () => {
  const chDir = tmp('vigie-upgrade-ch-');
  const dataDir = tmp('vigie-upgrade-gw-');
  const server = await startChdbHttp(chDir);
  cleanup.push(() => server.stop());

  // What the version before left: entries 1..5 and the checkpoint at 5 in ClickHouse and in the anchors, and
  // entries 6..7 fsynced in its journal, not shipped yet (ClickHouse was down when it stopped).
  const chain = oldChain('acme', 7);
  const ch = await createClickHouseClient({ clickhouse: { url: server.url } as Config['clickhouse'], dataDir });
  await migrate(ch, { database: 'vigie', log });
  await ch.insert({ table: 'vigie.audit_log', values: chain.slice(0, 5), format: 'JSONEachRow' });
  // The previous version's key, in its data dir: the gateway started below takes the same one.
  const scratch = await openDatabase({ dataDir: 'memory://' });
  const signer = await loadSigner(dataDir, undefined, scratch, log);
  await scratch.close();
  const at = { tenant: 'acme', seq: 5, hash: chain[4]!.hash, ts: Date.now() - 30_000 };
  const cp = { ...at, jws: await signer.sign(at) };
  await ch.insert({ table: 'vigie.audit_checkpoints', values: [cp], format: 'JSONEachRow' });
  await new FileAnchors(path.join(dataDir, 'audit', 'anchors.jsonl')).append(cp);
  await ch.close();
  const journal = new Spool(path.join(dataDir, 'audit-journal'), Number.MAX_SAFE_INTEGER, 'drop-newest', log);
  await journal.open();
  for (const e of chain.slice(5))
    await journal.append({ id: `audit:acme:${e.seq}:${e.hash}`, table: 'audit_log', rows: [e] });
  await journal.close();

  // First start with ClickHouse down: the heads cannot be imported, so audited actions are refused, not forked.
  await server.stop();
  const opts = { dataDir, clickhouse: { url: server.url, requestTimeoutMs: 2000 }, writer: { flushIntervalMs: 100 } };
  let g = await startGateway(opts);
  try {
    assert.equal(g.app.compliance!.audit.ready, false);
    const refused = await mint(g, 'refused');
    assert.deepEqual([refused.statusCode, refused.json().error.code], [503, 'UNAVAILABLE']);
    assert.ok(existsSync(path.join(dataDir, 'audit-journal')), 'the journal is kept until shipped');

    await server.start();
    await waitFor(
      'the audit log to import the heads',
      async () => g.app.compliance!.audit.ready,
      (ready) => ready,
      60_000,
    );
    assert.equal((await mint(g, 'after')).statusCode, 200);
    const r = await g.app.compliance!.audit.verify('acme');
    assert.deepEqual([r.ok, r.entries, r.checkpoints, r.anchored], [true, 8, 1, 1], JSON.stringify(r.problems));
    const rows = await g.query<{ seq: string; target: string }>(
      `SELECT seq, target FROM vigie.audit_log WHERE tenant = 'acme' ORDER BY seq`,
    );
    assert.deepEqual(
      rows.map((x) => `${x.seq} ${x.target}`),
      [...chain.map((e) => `${e.seq} room:before`), '8 room:upgrade'],
      'the journal shipped once, then the chain continued at 8',
    );
    assert.ok(!existsSync(path.join(dataDir, 'audit-journal')));
    // Set aside, not deleted (its segments went once ClickHouse acknowledged them, as the journal always did).
    assert.ok(existsSync(path.join(dataDir, 'audit-journal.imported')));
    const { rows: heads } = await g.app.db.query<{ seq: string }>("SELECT seq FROM audit_heads WHERE tenant = 'acme'");
    assert.equal(Number(heads[0]!.seq), 8);
    await g.close();

    // A second start imports nothing again (ClickHouse down: not even needed) and continues at 9.
    await server.stop();
    g = await startGateway(opts);
    assert.equal(g.app.compliance!.audit.ready, true);
    assert.equal((await mint(g, 'again')).statusCode, 200);
    await server.start();
    const again = await g.app.compliance!.audit.verify('acme');
    assert.deepEqual([again.ok, again.entries], [true, 9], JSON.stringify(again.problems));
    const { rows: imports } = await g.app.db.query<{ rows: string }>(
      "SELECT rows::text FROM store_imports WHERE source = 'clickhouse:audit_heads'",
    );
    assert.deepEqual(
      imports.map((i) => Number(i.rows)),
      [1],
      'imported once',
    );
  } finally {
    await g.close();
  }
});

test('on a real PostgreSQL server, the gateway and another node append to one chain', async () => {
  const pg = await startPostgres();
  cleanup.push(() => pg.stop());
  const chDir = tmp('vigie-upgrade-ch2-');
  const server = await startChdbHttp(chDir);
  cleanup.push(() => server.stop());
  const g = await startGateway({ database: { url: pg.url }, clickhouse: { url: server.url } });
  const db = await openDatabase({ url: pg.url, dataDir: chDir });
  const c = g.app.compliance!;
  const other = new AuditLog(
    db,
    g.app.clickhouse.client,
    g.app.clickhouse.database,
    c.signer,
    c.anchors,
    { checkpointEvery: 5, checkpointMinutes: 60 },
    log,
  );
  try {
    assert.equal(g.app.db.kind, 'postgres');
    assert.equal(await other.init(), true);
    const minted = await Promise.all(Array.from({ length: 10 }, (_, i) => mint(g, `via-api-${i}`)));
    assert.deepEqual(
      minted.map((m) => m.statusCode),
      Array(10).fill(200),
    );
    const appended = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        other.append({ tenant: 'acme', actor: 'key:other-node', action: 'token.mint', target: `room:${i}` }),
      ),
    );
    assert.equal(new Set(appended.map((e) => e.seq)).size, 10);
    await other.flush();
    const verified = await g.app.inject({
      method: 'GET',
      url: '/v1/compliance/audit/verify',
      headers: { 'x-api-key': DPO_KEY.key },
    });
    assert.equal(verified.statusCode, 200, verified.body);
    // 20 entries by the two nodes, then the verification itself is audited after it reads the chain.
    assert.deepEqual([verified.json().ok, verified.json().entries], [true, 20], verified.body);
    const { rows } = await db.query<{ seq: string }>("SELECT seq FROM audit_heads WHERE tenant = 'acme'");
    assert.equal(Number(rows[0]!.seq), 21, 'the head is in the server, the verification audited after it');
  } finally {
    await other.close();
    await db.close();
    await g.close();
  }
});
