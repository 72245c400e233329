import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from '../logging.js';
import type { Database, Queryable } from '../store/index.js';

export interface ShipperOptions {
  /** How often the outbox is looked at for rows no append woke this node for (another node's, a failed insert's). */
  pollMs: number;
  batchRows: number;
  /**
   * How long the rows of appends wait to be shipped together. A run costs several statements on the store and a
   * ClickHouse insert: one per append was most of an audited request's cost. The outbox is durable, so only
   * ClickHouse's copy lags, by this much.
   */
  delayMs: number;
}

/**
 * Ships the audit outbox (PostgreSQL) to ClickHouse, the analytical copy that
 * exports and verification read.
 *
 * A batch's rows are marked with its id before the insert, and the id is the
 * insert's deduplication token: a batch sent again (a node crashed before
 * deleting it, two nodes sent it at once) holds the same rows under the same
 * token and is stored once. Any node ships any node's rows, so the entries of a
 * node that died still reach ClickHouse; a row leaves the outbox only once
 * ClickHouse has acknowledged it.
 */
export class AuditShipper {
  /** `shipped`: a batch acknowledged by ClickHouse and removed from the outbox. */
  readonly observer = new EventEmitter<{ shipped: [table: string, rows: number] }>();
  #running?: Promise<void>;
  #again = false;
  #timer?: NodeJS.Timeout;
  #closed = false;
  #failing = false;
  /** The run appends are waiting for, and how many appended since the last run started. */
  #soon?: NodeJS.Timeout;
  #queued = 0;
  private readonly options: ShipperOptions;

  constructor(
    private readonly db: Database,
    private readonly client: Pick<ClickHouseClient, 'insert'>,
    private readonly database: string,
    private readonly log: Logger,
    options: Partial<ShipperOptions> = {},
  ) {
    this.options = { pollMs: 2000, batchRows: 1000, delayMs: 200, ...options };
  }

  /** Queues a row for ClickHouse, in the caller's transaction: it is shipped only if that commits. */
  static enqueue(tx: Queryable, table: 'audit_log' | 'audit_checkpoints', row: { tenant: string; seq: number }) {
    return AuditShipper.enqueueWith(tx, table, [row], 'SELECT 1', []);
  }

  /**
   * Queues rows (in this order), and runs `then` (a statement whose parameters start at $3) in the same statement:
   * the embedded store executes each statement on the main thread, so an append spends as few as it can there.
   */
  static enqueueWith(
    tx: Queryable,
    table: 'audit_log' | 'audit_checkpoints',
    rows: readonly { tenant: string; seq: number }[],
    then: string,
    params: readonly unknown[],
  ) {
    return tx.query(
      `WITH queued AS (
         INSERT INTO audit_outbox (tbl, tenant, seq, body)
         SELECT $1, r.body->>'tenant', (r.body->>'seq')::bigint, r.body
         FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS r(body, n) ORDER BY r.n)
       ${then}`,
      [table, JSON.stringify(rows), ...params],
    );
  }

  start(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => this.kick(), this.options.pollMs);
    this.#timer.unref();
    this.kick();
  }

  /**
   * Appends committed rows: shipped with the others of the next `delayMs`, or at once when `batchRows` wait.
   */
  queued(rows = 1): void {
    if (this.#closed) return;
    this.#queued += rows;
    if (this.#queued >= this.options.batchRows) this.kick();
    else this.#soon ??= setTimeout(() => this.kick(), this.options.delayMs);
  }

  /** Ships what the outbox holds now, in the background; one run at a time per node. */
  kick(): void {
    if (this.#closed) return;
    clearTimeout(this.#soon);
    this.#soon = undefined;
    this.#queued = 0;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#run().finally(() => (this.#running = undefined));
  }

  async #run(): Promise<void> {
    do {
      this.#again = false;
      try {
        // Only what is there now: rows appended meanwhile have their own run coming (queued), and shipping them here
        // would send a small batch after each insert under load, as one per append did.
        const upTo = await this.#lastRow();
        while (upTo != null && !this.#closed && (await this.shipOnce(upTo)));
        if (this.#failing) this.log.info('audit outbox shipped to ClickHouse again');
        this.#failing = false;
      } catch (err) {
        // Kept in the outbox; the next poll or append tries again.
        if (!this.#failing)
          this.log.warn({ reason: (err as Error).message?.slice(0, 200) }, 'audit outbox not shipped; kept, retried');
        this.#failing = true;
        return;
      }
    } while (this.#again && !this.#closed);
  }

  async #lastRow(): Promise<string | undefined> {
    const { rows } = await this.db.query<{ last: string | null }>('SELECT max(id)::text AS last FROM audit_outbox');
    return rows[0]?.last ?? undefined;
  }

  /**
   * Ships one batch (a pending one first, else a new one of rows up to `upTo`); false when the outbox had nothing
   * to ship.
   */
  async shipOnce(upTo?: string): Promise<boolean> {
    const pending = await this.db.query<{ batch: string }>(
      'SELECT batch FROM audit_outbox WHERE batch IS NOT NULL ORDER BY id LIMIT 1',
    );
    const batch = pending.rows[0]?.batch ?? (await this.#formBatch(upTo));
    if (!batch) return false;
    const { rows } = await this.db.query<{ tbl: string; body: Record<string, unknown> | string }>(
      'SELECT tbl, body FROM audit_outbox WHERE batch = $1 ORDER BY tenant, seq, id',
      [batch],
    );
    if (rows[0])
      await this.client.insert({
        table: `${this.database}.${rows[0].tbl}`,
        values: rows.map((r) => (typeof r.body === 'string' ? JSON.parse(r.body) : r.body)),
        format: 'JSONEachRow',
        // Every insert carries its token: the embedded engine keeps settings for the session.
        clickhouse_settings: { insert_deduplication_token: batch },
      });
    await this.db.query('DELETE FROM audit_outbox WHERE batch = $1', [batch]);
    if (rows[0]) this.observer.emit('shipped', rows[0].tbl, rows.length);
    return true;
  }

  /** Marks up to batchRows unbatched rows of one table as a new batch (committed before it is sent). */
  async #formBatch(upTo?: string): Promise<string | undefined> {
    const id = `audit:${randomUUID()}`;
    const { rows } = await this.db.query(
      `UPDATE audit_outbox SET batch = $1 WHERE id IN (
         SELECT id FROM audit_outbox
         WHERE batch IS NULL AND id <= $3 AND tbl = (
           SELECT tbl FROM audit_outbox WHERE batch IS NULL AND id <= $3 ORDER BY id LIMIT 1)
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING id`,
      [id, this.options.batchRows, upTo ?? '9223372036854775807'],
    );
    return rows.length ? id : undefined;
  }

  /**
   * Waits until every row in the outbox when called is in ClickHouse (before
   * reading the chain back); false when it could not be shipped in time.
   */
  async drain(timeoutMs = 30_000): Promise<boolean> {
    const last = await this.#lastRow();
    if (last == null) return true;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = await this.db.query('SELECT 1 FROM audit_outbox WHERE id <= $1 LIMIT 1', [last]);
      if (left.rows.length === 0) return true;
      if (Date.now() >= deadline || this.#closed) return false;
      this.kick();
      await Promise.race([this.#running, new Promise((r) => setTimeout(r, 100))]);
    }
  }

  /** Stops shipping; what is left stays in the outbox for any node. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#soon);
    await this.#running;
  }
}
