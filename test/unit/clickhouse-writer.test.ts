import assert from 'node:assert/strict';
import type { ClickHouseClient } from '@clickhouse/client';
import { describe, onTestFinished, test } from 'vitest';
import { ClickHouseWriter, type WriterOptions } from '../../src/telemetry/ClickHouseWriter.js';
import { Spool, type SpoolFullPolicy } from '../../src/telemetry/Spool.js';
import { waitFor } from '../helpers/browser.js';
import { capturedLogger, tempDir } from '../helpers/unit.js';

// The writer against a stand-in for its one call to ClickHouse (`insert`), with a real spool on a temp dir.
// ClickHouse's own side of this (deduplication by token, a real outage) is tested in telemetry-writer.test.ts.

interface Insert {
  table: string;
  rows: Array<{ n: number; who?: string }>;
  token: string;
  ok: boolean;
}

/** Records every insert; throws like a refused insert while `down` is set. */
class FakeClickHouse {
  down = false;
  readonly attempts: Insert[] = [];
  readonly insert = (async (params) => {
    const attempt: Insert = {
      table: params.table,
      rows: params.values as unknown as Insert['rows'],
      token: String(params.clickhouse_settings?.insert_deduplication_token),
      ok: !this.down,
    };
    this.attempts.push(attempt);
    if (this.down) throw new Error('Code: 60. DB::Exception: Table vigie.t does not exist');
    return { executed: true, query_id: '', response_headers: {} };
  }) as Pick<ClickHouseClient, 'insert'>['insert'];

  /** The rows ClickHouse has, in the order it took them. */
  get stored(): number[] {
    return this.attempts.filter((a) => a.ok).flatMap((a) => a.rows.map((r) => r.n));
  }
}

async function setup(
  options: Partial<WriterOptions> = {},
  spool: { maxBytes?: number; policy?: SpoolFullPolicy } = {},
) {
  const { log, messages } = capturedLogger();
  const s = new Spool(tempDir('writer'), spool.maxBytes ?? 1 << 20, spool.policy ?? 'drop-oldest', log);
  await s.open();
  const ch = new FakeClickHouse();
  const writer = new ClickHouseWriter(
    ch,
    s,
    { database: 'vigie', batchRows: 2, flushIntervalMs: 60_000, maxBufferedRows: 1000, ...options },
    log,
  );
  writer.start();
  onTestFinished(() => writer.close());
  return { ch, writer, spool: s, messages };
}

const rows = (from: number, to: number, who = 'x') =>
  Array.from({ length: to - from }, (_, i) => ({ n: from + i, who }));

describe('ClickHouseWriter', () => {
  test('batches by size, and by time; each insert carries its own batch id as the deduplication token', async () => {
    const { ch, writer } = await setup({ batchRows: 3 });
    for (const r of rows(0, 7)) writer.write('t', r);
    await waitFor(
      'the two full batches',
      async () => ch.attempts.length,
      (n) => n === 2,
    );
    await writer.flush();
    assert.deepEqual(
      ch.attempts.map((a) => [a.table, a.rows.length]),
      [
        ['vigie.t', 3],
        ['vigie.t', 3],
        ['vigie.t', 1],
      ],
    );
    assert.equal(new Set(ch.attempts.map((a) => a.token)).size, 3, 'no token is reused');
    assert.ok(ch.attempts.every((a) => /^[0-9a-f-]{36}$/.test(a.token)));
    assert.deepEqual(writer.counters, { rowsWritten: 7, rowsDropped: 0, rowsSpooled: 0, insertErrors: 0 });

    const timed = await setup({ batchRows: 100, flushIntervalMs: 20 });
    timed.writer.write('t', { n: 1 });
    await waitFor(
      'the timer to flush a partial batch',
      async () => timed.ch.stored,
      (s) => s.length === 1,
    );
  });

  test('a table with a flush interval of its own waits for it, while the others go at each tick; flush() sends all', async () => {
    const { ch, writer } = await setup({
      batchRows: 1000,
      flushIntervalMs: 50,
      flushIntervalMsByTable: { slow: 4000 },
    });
    const writtenAt = Date.now();
    writer.write('slow', { n: 1 });
    for (const n of [2, 3, 4]) {
      writer.write('fast', { n });
      await waitFor(
        `fast row ${n} sent`,
        async () => ch.stored,
        (s) => s.includes(n),
      );
    }
    assert.deepEqual(
      ch.attempts.map((a) => a.table),
      ['vigie.fast', 'vigie.fast', 'vigie.fast'],
      'three ticks went by, each with its insert of the fast table, and the slow row still waits',
    );
    await waitFor(
      'the slow row sent',
      async () => ch.stored,
      (s) => s.includes(1),
    );
    assert.ok(Date.now() - writtenAt >= 4000, 'not before its interval');
    writer.write('slow', { n: 5 });
    await writer.flush();
    assert.ok(ch.stored.includes(5), 'flush (drain, close, erasure) does not wait for the interval');
  });

  test('an outage: refused batches go to the spool, later ones queue behind them, and the replay ships all in order with their tokens', async () => {
    const { ch, writer, messages } = await setup();
    ch.down = true;
    for (const r of rows(0, 6)) writer.write('t', r);
    await writer.flush();
    assert.equal(writer.counters.rowsSpooled, 6);
    assert.ok(writer.counters.insertErrors >= 1);
    assert.ok(writer.spoolBytes > 0);
    assert.deepEqual(ch.stored, []);

    // ClickHouse answers again while the spool still holds the outage's batches: new rows must not overtake them.
    ch.down = false;
    for (const r of rows(6, 8)) writer.write('t', r);
    await writer.flush();
    assert.equal(await writer.drain(), true);
    assert.deepEqual(ch.stored, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(writer.counters.rowsWritten, 8);
    assert.equal(writer.counters.rowsDropped, 0);
    // A batch keeps its token from the failed attempt to the replay: ClickHouse stores it once even if both landed.
    const failedTokens = new Set(ch.attempts.filter((a) => !a.ok).map((a) => a.token));
    const shipped = ch.attempts.filter((a) => a.ok && failedTokens.has(a.token));
    assert.ok(shipped.length >= 1, 'a refused batch was replayed under the same token');
    assert.ok(messages().includes('ClickHouse insert failed; batch kept in the spool'));
    assert.ok(messages().includes('spool replayed into ClickHouse'));
  });

  test('memory is bounded: past maxBufferedRows a batch goes straight to the spool', async () => {
    const { ch, writer } = await setup({ batchRows: 5, maxBufferedRows: 4 });
    for (const r of rows(0, 5)) writer.write('t', r);
    await writer.flush();
    assert.equal(writer.counters.rowsSpooled, 5, 'spooled without an insert attempt first');
    assert.equal(await writer.drain(), true);
    assert.deepEqual(ch.stored, [0, 1, 2, 3, 4]);
    assert.equal(writer.queuedRows, 0);
  });

  test('a full spool loses rows only by its policy, and counts every one', async () => {
    const { ch, writer, messages } = await setup({}, { maxBytes: 400, policy: 'drop-newest' });
    ch.down = true;
    for (const r of rows(0, 20)) writer.write('t', r);
    await writer.flush();
    const { rowsSpooled, rowsDropped } = writer.counters;
    assert.ok(rowsDropped > 0, 'the spool filled up');
    assert.equal(rowsSpooled + rowsDropped, 20, 'every row is either spooled or counted as dropped');
    assert.ok(messages().some((m) => m.startsWith('spool full')));
    ch.down = false;
    assert.equal(await writer.drain(), true);
    assert.equal(ch.stored.length, rowsSpooled);
  });

  test('rewriteHeld removes rows still waiting in memory or in the spool (erasure) before they reach ClickHouse', async () => {
    const { ch, writer } = await setup();
    ch.down = true;
    for (const r of [...rows(0, 3, 'alice'), ...rows(3, 5, 'bob')]) writer.write('t', r);
    writer.write('t', { n: 5, who: 'alice' });
    const removed = await writer.rewriteHeld((_table, row) =>
      (row as { who: string }).who === 'alice' ? undefined : row,
    );
    assert.equal(removed, 4);
    ch.down = false;
    assert.equal(await writer.drain(), true);
    assert.deepEqual(ch.stored, [3, 4]);
  });

  test('persist: a batch is on disk when it resolves, then shipped; after close, writes are refused and counted', async () => {
    const { ch, writer, spool } = await setup();
    ch.down = true;
    await writer.persist('audit:acme:1', 'audit_log', [{ n: 1 }]);
    assert.equal(spool.rows, 1, 'on disk before persist resolves');
    ch.down = false;
    assert.equal(await writer.drain(), true);
    assert.deepEqual(
      ch.attempts.filter((a) => a.ok).map((a) => [a.table, a.token]),
      [['vigie.audit_log', 'audit:acme:1']],
      'the caller-given id is the token',
    );

    await writer.close();
    writer.write('t', { n: 2 });
    assert.equal(writer.counters.rowsDropped, 1);
    await assert.rejects(writer.persist('audit:acme:2', 'audit_log', [{ n: 2 }]), /writer closed/);
  });
});
