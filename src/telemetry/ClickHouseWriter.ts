import { randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from '../logging.js';
import type { Spool, SpooledBatch } from './Spool.js';

export interface WriterOptions {
  database: string;
  batchRows: number;
  flushIntervalMs: number;
  /**
   * Tables whose rows may wait longer than `flushIntervalMs` for their batch (ms): a trickle of rows costs an insert
   * per flush whatever its size, so a table nobody reads in real time is sent less often, in fewer, larger inserts.
   */
  flushIntervalMsByTable?: Record<string, number>;
  maxBufferedRows: number;
}

export interface WriterCounters {
  rowsWritten: number;
  rowsDropped: number;
  rowsSpooled: number;
  insertErrors: number;
}

/**
 * Writes rows to ClickHouse in batches (by size and by time) without ever
 * losing them to an outage:
 *
 * - Each batch gets an id that is also its `insert_deduplication_token`, so a
 *   batch sent twice (a timeout after ClickHouse took it, a replay after a
 *   crash) is stored once.
 * - A batch ClickHouse refuses or cannot be reached for goes to the durable
 *   spool; while the spool holds anything, new batches queue behind it there,
 *   and a replay loop drains it in order once ClickHouse answers again.
 * - Memory is bounded: past `maxBufferedRows`, batches go to the spool at once.
 * - Only a full spool loses rows, per its policy; each is counted in rowsDropped.
 */
export class ClickHouseWriter {
  readonly counters: WriterCounters = { rowsWritten: 0, rowsDropped: 0, rowsSpooled: 0, insertErrors: 0 };
  /** Called after every insert attempt, for latency metrics. */
  onInsert?: (ms: number, rows: number, ok: boolean) => void;
  readonly #buffers = new Map<string, unknown[]>();
  /** When each table's oldest buffered row was written. */
  readonly #oldest = new Map<string, number>();
  #buffered = 0;
  #inFlight = 0;
  #chain: Promise<void> = Promise.resolve();
  #replaying?: Promise<void>;
  /** The replay's insert in flight, if any: a batch read from the spool before a rewrite. */
  #replayInsert?: Promise<boolean>;
  #timer?: NodeJS.Timeout;
  #closed = false;
  #backoffMs = 500;
  #wake?: () => void;

  constructor(
    /** Only `insert`: the writer's one call to ClickHouse, and the seam its unit tests replace. */
    private readonly client: Pick<ClickHouseClient, 'insert'>,
    private readonly spool: Spool,
    private readonly options: WriterOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.#timer = setInterval(() => this.#flushDue(), this.options.flushIntervalMs);
    this.#timer.unref();
    if (!this.spool.empty) this.#startReplay();
  }

  /** Rows held in memory, waiting for their batch or their insert. */
  get queuedRows(): number {
    return this.#buffered + this.#inFlight;
  }

  get spoolBytes(): number {
    return this.spool.bytes;
  }

  write(table: string, row: unknown): void {
    if (this.#closed) {
      this.counters.rowsDropped++;
      this.log.warn({ table }, 'row written after the writer closed; dropped');
      return;
    }
    let buf = this.#buffers.get(table);
    if (!buf) {
      buf = [];
      this.#buffers.set(table, buf);
    }
    if (buf.length === 0) this.#oldest.set(table, Date.now());
    buf.push(row);
    this.#buffered++;
    if (buf.length >= this.options.batchRows) this.#flushTable(table);
  }

  /**
   * Appends a batch to the spool and returns once it is fsynced there, then
   * ships it in the background (the audit journal). Nothing is buffered in
   * memory first, and a batch the spool does not store is an error for the
   * caller, never a silent drop: give this writer a spool that cannot fill.
   */
  async persist(id: string, table: string, rows: unknown[]): Promise<void> {
    if (this.#closed) throw new Error('writer closed');
    const { stored } = await this.spool.append({ id, table, rows });
    if (!stored) throw new Error(`the spool refused a batch for ${table}`);
    this.counters.rowsSpooled += rows.length;
    this.#startReplay();
  }

  /** Sends everything buffered and waits until it is in ClickHouse or in the spool. */
  async flush(): Promise<void> {
    this.#flushAll();
    await this.#chain;
  }

  /** Waits until the spool has been replayed (tests, shutdown with a live ClickHouse). */
  async drain(timeoutMs = 30_000): Promise<boolean> {
    await this.flush();
    const deadline = Date.now() + timeoutMs;
    while (!this.spool.empty && Date.now() < deadline) {
      this.#startReplay();
      await Promise.race([this.#replaying, new Promise((r) => setTimeout(r, 100))]);
    }
    // Empty once the last batch is acknowledged: the replay then ends at once (and says so); wait for that.
    if (this.spool.empty) await this.#replaying;
    return this.spool.empty;
  }

  /**
   * Passes every row the writer still holds (memory, spool) through `fn`,
   * which returns the row to keep (possibly changed) or undefined to remove it
   * (erasure, retention). Returns how many rows were removed, once no batch
   * read before the rewrite can still reach ClickHouse unchanged.
   */
  async rewriteHeld(fn: (table: string, row: unknown) => unknown): Promise<number> {
    await this.flush();
    const removed = await this.spool.rewrite((b) => b.rows.map((r) => fn(b.table, r)).filter((r) => r !== undefined));
    await this.#replayInsert;
    return removed;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    this.#closed = true;
    this.#wake?.();
    await this.#replaying?.catch(() => undefined);
    await this.spool.close();
  }

  #flushAll(): void {
    for (const table of this.#buffers.keys()) this.#flushTable(table);
  }

  /** At each tick: every table, but one with a longer interval of its own only once its oldest row has waited it. */
  #flushDue(): void {
    const now = Date.now();
    for (const table of this.#buffers.keys()) {
      const waitMs = this.options.flushIntervalMsByTable?.[table];
      if (waitMs === undefined || now - (this.#oldest.get(table) ?? now) >= waitMs) this.#flushTable(table);
    }
  }

  #flushTable(table: string): void {
    const rows = this.#buffers.get(table);
    if (!rows || rows.length === 0) return;
    this.#buffers.set(table, []);
    this.#buffered -= rows.length;
    const batch: SpooledBatch = { id: randomUUID(), table, rows };
    // Over the memory bound, or behind a backlog: straight to disk, in order.
    const toSpool = this.#inFlight + rows.length > this.options.maxBufferedRows;
    this.#inFlight += rows.length;
    this.#chain = this.#chain.then(() => this.#send(batch, toSpool)).finally(() => (this.#inFlight -= rows.length));
  }

  async #send(batch: SpooledBatch, forceSpool: boolean): Promise<void> {
    if (!forceSpool && this.spool.empty && !this.#replaying) {
      if (await this.#insert(batch)) return;
    }
    await this.#toSpool(batch);
    this.#startReplay();
  }

  async #toSpool(batch: SpooledBatch): Promise<void> {
    try {
      const { stored, dropped } = await this.spool.append(batch);
      this.counters.rowsDropped += dropped;
      if (stored) this.counters.rowsSpooled += batch.rows.length;
    } catch (err) {
      this.counters.rowsDropped += batch.rows.length;
      this.log.error({ err, table: batch.table, rows: batch.rows.length }, 'spool write failed; batch dropped');
    }
  }

  async #insert(batch: SpooledBatch): Promise<boolean> {
    const started = performance.now();
    try {
      await this.client.insert({
        table: `${this.options.database}.${batch.table}`,
        values: batch.rows,
        format: 'JSONEachRow',
        // Every insert carries its own token: the embedded engine keeps settings
        // for the session, so a missing token would reuse the previous one.
        clickhouse_settings: { insert_deduplication_token: batch.id },
      });
      const ms = performance.now() - started;
      this.counters.rowsWritten += batch.rows.length;
      this.onInsert?.(ms, batch.rows.length, true);
      this.#backoffMs = 500;
      return true;
    } catch (err) {
      this.counters.insertErrors++;
      this.onInsert?.(performance.now() - started, batch.rows.length, false);
      this.log.warn(
        { table: batch.table, rows: batch.rows.length, reason: (err as Error).message?.slice(0, 200) },
        'ClickHouse insert failed; batch kept in the spool',
      );
      return false;
    }
  }

  #startReplay(): void {
    if (this.#replaying || this.#closed) return;
    this.#replaying = this.#replay().finally(() => (this.#replaying = undefined));
  }

  async #replay(): Promise<void> {
    let replayed = 0;
    for (;;) {
      const batch = await this.spool.peek();
      if (!batch) break;
      this.#replayInsert = this.#insert(batch);
      const inserted = await this.#replayInsert;
      this.#replayInsert = undefined;
      if (inserted) {
        await this.spool.ack(batch.id);
        replayed += batch.rows.length;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.#backoffMs);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      if (this.#closed) return;
      this.#backoffMs = Math.min(this.#backoffMs * 2, 30_000);
    }
    if (replayed > 0) this.log.info({ rows: replayed }, 'spool replayed into ClickHouse');
  }
}
