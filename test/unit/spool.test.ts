import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'vitest';
import { Spool, type SpooledBatch, type SpoolFullPolicy } from '../../src/telemetry/Spool.js';
import { capturedLogger, tempDir } from '../helpers/unit.js';

// The spool on its own, on a real directory: no ClickHouse, no gateway.

const batch = (id: string, rows = 1, table = 't'): SpooledBatch => ({
  id,
  table,
  rows: Array.from({ length: rows }, (_, i) => ({ id, i })),
});

async function openSpool(dir: string, maxBytes = 1 << 20, policy: SpoolFullPolicy = 'drop-oldest') {
  const logged = capturedLogger();
  const spool = new Spool(dir, maxBytes, policy, logged.log);
  await spool.open();
  return { spool, messages: logged.messages };
}

/** Peeks and acknowledges every batch, as the writer's replay does: the ids in order. */
async function drainIds(spool: Spool): Promise<string[]> {
  const ids: string[] = [];
  for (let b = await spool.peek(); b; b = await spool.peek()) {
    ids.push(b.id);
    await spool.ack(b.id);
  }
  return ids;
}

/** The size on disk of one encoded batch: 8 header bytes and its JSON. */
const recordBytes = (b: SpooledBatch) => 8 + Buffer.byteLength(JSON.stringify(b));

describe('Spool', () => {
  test('is a FIFO: batches come back in order, each acknowledged once, and the files go when it is empty', async () => {
    const dir = tempDir('spool');
    const { spool } = await openSpool(dir);
    assert.equal(spool.empty, true);
    for (const id of ['a', 'b', 'c']) assert.deepEqual(await spool.append(batch(id, 2)), { stored: true, dropped: 0 });
    assert.equal(spool.rows, 6);
    assert.equal(spool.bytes, recordBytes(batch('a', 2)) * 3);
    assert.equal((await spool.peek())?.id, 'a', 'peek does not remove');
    await assert.rejects(spool.ack('b'), /out of order/, 'only the head can be acknowledged');
    assert.deepEqual(await drainIds(spool), ['a', 'b', 'c']);
    assert.equal(spool.empty, true);
    assert.equal(spool.bytes, 0);
    await spool.close();
    assert.deepEqual(readdirSync(dir), [], 'no segment file is left behind');
  });

  test('survives a restart: a reopened spool replays what the last run left, in order, with the same ids', async () => {
    const dir = tempDir('spool');
    const first = (await openSpool(dir)).spool;
    for (const id of ['a', 'b', 'c']) await first.append(batch(id, 3));
    await first.ack((await first.peek())!.id);
    await first.close();

    const { spool, messages } = await openSpool(dir);
    // Segments are append-only: a batch acknowledged in a segment not yet finished comes back after a crash.
    // At least once, with its id, which the writer sends as the insert's deduplication token.
    assert.equal(spool.rows, 9);
    assert.deepEqual(await drainIds(spool), ['a', 'b', 'c']);
    assert.ok(messages().includes('spool reopened with batches to replay'));
  });

  test('a torn tail or a corrupted record is skipped, never replayed as garbage, and logged', async () => {
    const dir = tempDir('spool');
    const first = (await openSpool(dir)).spool;
    for (const id of ['a', 'b']) await first.append(batch(id));
    await first.close();
    const [segment] = readdirSync(dir);
    const file = path.join(dir, segment!);
    // A crash mid-append: a header that promises more bytes than were written.
    appendFileSync(file, Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 123]));
    const torn = await openSpool(dir);
    assert.deepEqual(await drainIds(torn.spool), ['a', 'b']);
    assert.ok(torn.messages().some((m) => m.includes('torn or corrupted record')));
    await torn.spool.close();

    // One flipped byte in the second record's JSON: its checksum no longer matches.
    const second = (await openSpool(dir)).spool;
    for (const id of ['c', 'd']) await second.append(batch(id));
    await second.close();
    const [next] = readdirSync(dir);
    const bytes = readFileSync(path.join(dir, next!));
    bytes[recordBytes(batch('c')) + 12]! ^= 0x01;
    writeFileSync(path.join(dir, next!), bytes);
    const corrupt = await openSpool(dir);
    assert.deepEqual(await drainIds(corrupt.spool), ['c'], 'the corrupted record and what follows it are skipped');
    assert.ok(corrupt.messages().some((m) => m.includes('torn or corrupted record')));
  });

  test('full, drop-newest: the new batch is refused and counted; what was stored stays', async () => {
    const one = recordBytes(batch('a', 2));
    const { spool, messages } = await openSpool(tempDir('spool'), one * 2, 'drop-newest');
    assert.equal((await spool.append(batch('a', 2))).stored, true);
    assert.equal((await spool.append(batch('b', 2))).stored, true);
    assert.deepEqual(await spool.append(batch('c', 2)), { stored: false, dropped: 2 });
    assert.ok(spool.bytes <= one * 2, 'the bound holds');
    assert.ok(messages().some((m) => m.includes('spool full: batch dropped (drop-newest)')));
    assert.deepEqual(await drainIds(spool), ['a', 'b']);
  });

  test('full, drop-oldest: the oldest segment is given up and its rows counted; the newest batch is kept', async () => {
    const one = recordBytes(batch('b00', 2));
    // Segments are an eighth of the bound: with room for 16 records, each segment holds two.
    const { spool, messages } = await openSpool(tempDir('spool'), one * 16, 'drop-oldest');
    for (let i = 0; i < 16; i++)
      assert.equal((await spool.append(batch(`b${String(i).padStart(2, '0')}`, 2))).stored, true);
    assert.deepEqual(
      await spool.append(batch('b16', 2)),
      { stored: true, dropped: 4 },
      'one segment of two batches, four rows',
    );
    assert.ok(spool.bytes <= one * 16, 'the bound holds');
    assert.ok(messages().some((m) => m.includes('oldest segment dropped')));
    const ids = await drainIds(spool);
    assert.equal(ids[0], 'b02', 'the two oldest batches went');
    assert.equal(ids.at(-1), 'b16');
    assert.equal(ids.length, 15);
  });

  test('a batch larger than the whole spool is refused, not stored by emptying everything', async () => {
    const { spool } = await openSpool(tempDir('spool'), 1000, 'drop-oldest');
    await spool.append(batch('small'));
    assert.deepEqual(await spool.append(batch('huge', 100)), { stored: false, dropped: 100 });
    assert.deepEqual(await drainIds(spool), ['small']);
  });

  test('rewrite changes rows in place (erasure): ids are kept, emptied batches go, the change survives a restart', async () => {
    const dir = tempDir('spool');
    const first = (await openSpool(dir)).spool;
    await first.append({ id: 'a', table: 't', rows: [{ who: 'alice' }, { who: 'bob' }] });
    await first.append({ id: 'b', table: 't', rows: [{ who: 'alice' }] });
    await first.append({ id: 'c', table: 't', rows: [{ who: 'carol' }] });
    const bytesBefore = first.bytes;
    const removed = await first.rewrite((b) => b.rows.filter((r) => (r as { who: string }).who !== 'alice'));
    assert.equal(removed, 2);
    assert.equal(first.rows, 2);
    assert.ok(first.bytes < bytesBefore, 'the byte count follows the rewritten segment');
    await first.close();

    const { spool } = await openSpool(dir);
    const seen: SpooledBatch[] = [];
    for (let b = await spool.peek(); b; b = await spool.peek()) {
      seen.push(b);
      await spool.ack(b.id);
    }
    assert.deepEqual(
      seen.map((b) => [b.id, b.rows]),
      [
        ['a', [{ who: 'bob' }]],
        ['c', [{ who: 'carol' }]],
      ],
    );
  });
});
