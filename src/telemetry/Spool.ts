import { mkdir, open, readdir, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { writeFileAtomic } from '../files.js';
import type { Logger } from '../logging.js';

/** A batch as it waits on disk: its table, its rows, and its insert deduplication token. */
export interface SpooledBatch {
  id: string;
  table: string;
  rows: unknown[];
}

interface Segment {
  seq: number;
  file: string;
  bytes: number;
  /** Rows not yet replayed, for the dropped-rows count when a segment is given up. */
  rows: number;
  /** Parsed records, loaded when the segment becomes the replay head. */
  pending?: SpooledBatch[];
}

const HEADER = 8; // u32 length + u32 crc32 of the payload
/** Segments are at most 1/8 of the bound, so drop-oldest gives up an eighth at a time, not everything. */
const MAX_SEGMENT_BYTES = 8 << 20;

/** One record: `[length][crc32][json]`. */
function encode(batch: SpooledBatch): Buffer {
  const payload = Buffer.from(JSON.stringify(batch));
  const record = Buffer.allocUnsafe(HEADER + payload.length);
  record.writeUInt32LE(payload.length, 0);
  record.writeUInt32LE(crc32(payload), 4);
  payload.copy(record, HEADER);
  return record;
}

export type SpoolFullPolicy = 'drop-oldest' | 'drop-newest';

/**
 * Durable FIFO of batches that ClickHouse could not take. Segments are
 * append-only files of `[length][crc32][json]` records, fsynced per batch; a
 * torn or corrupted tail (a crash mid-write) is detected by its checksum and
 * skipped, never replayed as garbage. The spool's size is bounded; when full,
 * the policy decides what is given up, and the caller counts it.
 */
export class Spool {
  readonly #segments: Segment[] = [];
  #writer?: { seg: Segment; fh: FileHandle };
  #bytes = 0;
  readonly #segmentBytes: number;
  /**
   * append, peek and ack run one at a time: an ack that empties the segment an
   * append is still writing to would otherwise remove it under that append,
   * and the batch would be lost without being counted.
   */
  #lock: Promise<unknown> = Promise.resolve();

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly policy: SpoolFullPolicy,
    private readonly log: Logger,
  ) {
    this.#segmentBytes = Math.min(MAX_SEGMENT_BYTES, Math.floor(maxBytes / 8));
  }

  /** Reopens segments left by an earlier run, oldest first. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const names = (await readdir(this.dir)).filter((n) => /^seg-\d{12}\.log$/.test(n)).sort();
    for (const name of names) {
      const file = path.join(this.dir, name);
      const bytes = (await stat(file)).size;
      const seg: Segment = { seq: Number(name.slice(4, 16)), file, bytes, rows: 0 };
      // Parsed once to count rows, then released: only the replay head stays in memory.
      seg.rows = (await this.#readSegment(seg)).reduce((n, b) => n + b.rows.length, 0);
      this.#segments.push(seg);
      this.#bytes += bytes;
    }
    if (names.length)
      this.log.info(
        { segments: names.length, bytes: this.#bytes, rows: this.rows },
        'spool reopened with batches to replay',
      );
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Rows waiting on disk. */
  get rows(): number {
    return this.#segments.reduce((n, s) => n + s.rows, 0);
  }

  get empty(): boolean {
    return this.#segments.length === 0;
  }

  /**
   * Appends a batch durably. `dropped` counts rows given up to make room
   * (drop-oldest) or refused (drop-newest, then `stored` is false).
   */
  append(batch: SpooledBatch): Promise<{ stored: boolean; dropped: number }> {
    return this.#exclusive(() => this.#append(batch));
  }

  async #append(batch: SpooledBatch): Promise<{ stored: boolean; dropped: number }> {
    const record = encode(batch);

    let dropped = 0;
    while (this.#bytes + record.length > this.maxBytes) {
      const nothingOlder =
        this.#segments.length === 0 ||
        (this.#segments.length === 1 &&
          this.#writer !== undefined &&
          this.#writer.seg.bytes + record.length > this.maxBytes);
      if (this.policy === 'drop-newest' || nothingOlder) {
        const why = this.policy === 'drop-newest' ? 'drop-newest' : 'larger than the whole spool';
        this.log.error(
          { table: batch.table, rows: batch.rows.length, spoolBytes: this.#bytes },
          `spool full: batch dropped (${why})`,
        );
        return { stored: false, dropped: dropped + batch.rows.length };
      }
      const oldest = this.#segments[0]!;
      if (this.#writer?.seg === oldest) await this.#closeWriter();
      dropped += oldest.rows;
      this.log.error(
        { segment: path.basename(oldest.file), rows: oldest.rows, spoolBytes: this.#bytes },
        'spool full: oldest segment dropped (drop-oldest)',
      );
      await this.#removeHead();
    }

    if (!this.#writer || (this.#writer.seg.bytes > 0 && this.#writer.seg.bytes + record.length > this.#segmentBytes)) {
      await this.#closeWriter();
      const seq = (this.#segments.at(-1)?.seq ?? 0) + 1;
      const seg: Segment = {
        seq,
        file: path.join(this.dir, `seg-${String(seq).padStart(12, '0')}.log`),
        bytes: 0,
        rows: 0,
        pending: [],
      };
      this.#writer = { seg, fh: await open(seg.file, 'a') };
      this.#segments.push(seg);
    }
    const { seg, fh } = this.#writer;
    await fh.write(record);
    await fh.datasync();
    seg.bytes += record.length;
    seg.rows += batch.rows.length;
    seg.pending!.push(batch);
    this.#bytes += record.length;
    return { stored: true, dropped };
  }

  /** The oldest batch, without removing it. */
  peek(): Promise<SpooledBatch | undefined> {
    return this.#exclusive(() => this.#peek());
  }

  async #peek(): Promise<SpooledBatch | undefined> {
    while (this.#segments.length > 0) {
      const head = this.#segments[0]!;
      head.pending ??= await this.#readSegment(head);
      if (head.pending.length > 0) return head.pending[0];
      if (this.#writer?.seg === head) return undefined;
      await this.#removeHead();
    }
    return undefined;
  }

  /** Removes the batch `peek` returned, once ClickHouse has it. */
  ack(id: string): Promise<void> {
    return this.#exclusive(() => this.#ack(id));
  }

  async #ack(id: string): Promise<void> {
    const head = this.#segments[0];
    const first = head?.pending?.[0];
    if (!head || !first || first.id !== id) throw new Error('spool ack out of order');
    head.pending!.shift();
    head.rows -= first.rows.length;
    if (head.pending!.length === 0) {
      if (this.#writer?.seg === head) await this.#closeWriter();
      await this.#removeHead();
    }
  }

  /**
   * Passes every spooled batch through `rows` (erasure, retention) and replaces
   * each segment that changed, atomically, with what it returns. Batch ids are
   * kept, so the batch being replayed is still acknowledged; other batches left
   * empty are dropped. Returns how many rows were removed.
   */
  rewrite(rows: (batch: SpooledBatch) => unknown[]): Promise<number> {
    return this.#exclusive(() => this.#rewrite(rows));
  }

  async #rewrite(fn: (batch: SpooledBatch) => unknown[]): Promise<number> {
    // The next append starts a new segment: no file is rewritten under an open handle.
    await this.#closeWriter();
    let removed = 0;
    for (const seg of this.#segments) {
      // The head's pending list holds only unacknowledged batches: rewriting from it also drops what ClickHouse already
      // has.
      const batches = seg.pending ?? (await this.#readSegment(seg));
      const kept: SpooledBatch[] = [];
      let changed = false;
      for (const [i, b] of batches.entries()) {
        const rows = fn(b);
        if (rows.length !== b.rows.length || rows.some((r, j) => r !== b.rows[j])) changed = true;
        removed += b.rows.length - rows.length;
        if (rows.length > 0 || (seg === this.#segments[0] && i === 0)) kept.push({ ...b, rows });
      }
      if (!changed) continue;
      const buf = Buffer.concat(kept.map(encode));
      await writeFileAtomic(seg.file, buf);
      this.#bytes += buf.length - seg.bytes;
      seg.bytes = buf.length;
      seg.rows = kept.reduce((n, b) => n + b.rows.length, 0);
      if (seg.pending) seg.pending = kept;
    }
    return removed;
  }

  close(): Promise<void> {
    return this.#exclusive(() => this.#closeWriter());
  }

  async #closeWriter(): Promise<void> {
    const w = this.#writer;
    this.#writer = undefined;
    await w?.fh.close();
  }

  async #removeHead(): Promise<void> {
    const head = this.#segments.shift();
    if (!head) return;
    this.#bytes -= head.bytes;
    await rm(head.file, { force: true });
  }

  async #readSegment(seg: Segment): Promise<SpooledBatch[]> {
    const buf = await readFile(seg.file);
    const out: SpooledBatch[] = [];
    let off = 0;
    while (off + HEADER <= buf.length) {
      const len = buf.readUInt32LE(off);
      const sum = buf.readUInt32LE(off + 4);
      const end = off + HEADER + len;
      if (end > buf.length || crc32(buf.subarray(off + HEADER, end)) !== sum) {
        this.log.error(
          { segment: path.basename(seg.file), offset: off, lostBytes: buf.length - off },
          'spool segment has a torn or corrupted record; the rest of it is skipped',
        );
        break;
      }
      out.push(JSON.parse(buf.subarray(off + HEADER, end).toString('utf8')) as SpooledBatch);
      off = end;
    }
    if (off < buf.length && off + HEADER > buf.length) {
      this.log.error(
        { segment: path.basename(seg.file), lostBytes: buf.length - off },
        'spool segment ends with a partial header; skipped',
      );
    }
    return out;
  }
}
