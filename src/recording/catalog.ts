/**
 * The recordings catalog on the control plane's PostgreSQL (owner `recordings`).
 *
 * Its rows are mutated by every node (uploads, legal holds, deletions by the
 * API, the retention sweeper and erasure) and those changes must be ordered:
 * a legal hold set through one node must stop a deletion started on another.
 * Each change of state is one transaction on the row. ClickHouse keeps an
 * analytical copy (table `recordings`, read by the recording-compliance
 * dashboard and the DSAR access archive), written only from here after each
 * committed change; nothing the API serves reads it.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { VigieError } from '../errors.js';
import type { Logger } from '../logging.js';
import { type Database, importOnce, migrateStore, type Queryable, type StoreMigration } from '../store/index.js';
import type { CatalogRow } from './RecordingService.js';

export const RECORDINGS_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'recordings: the catalog and the states of each recording',
    sql: `CREATE TABLE IF NOT EXISTS recordings (
  tenant text NOT NULL,
  id text NOT NULL,
  session_id text NOT NULL,
  room text NOT NULL,
  call_id text NOT NULL,
  participants text[] NOT NULL,
  tracks text[] NOT NULL,
  codecs text[] NOT NULL,
  started_at timestamptz NOT NULL,
  ended_at timestamptz NOT NULL,
  duration_s double precision NOT NULL,
  size_bytes bigint NOT NULL,
  sha256 text NOT NULL,
  content_type text NOT NULL,
  storage_target text NOT NULL,
  storage_country text NOT NULL,
  object_key text NOT NULL,
  version_id text NOT NULL,
  retain_until timestamptz,
  lock_mode text NOT NULL,
  legal_hold boolean NOT NULL,
  retention_policy text NOT NULL,
  status text NOT NULL CHECK (status IN ('uploading', 'ready', 'failed', 'deleting', 'deleted')),
  deleted_at timestamptz,
  deletion_reason text NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS recordings_listing ON recordings (tenant, started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS recordings_due ON recordings (retain_until) WHERE status IN ('ready', 'deleting');
CREATE INDEX IF NOT EXISTS recordings_participants ON recordings USING gin (participants);
`,
  },
];

export type RecordingStatus = CatalogRow['status'] | 'deleting';

/** A deletion claimed by a node that died mid-way is taken over after this long. */
const STALE_CLAIM = "interval '15 minutes'";

const TIMES = ['started_at', 'ended_at', 'retain_until', 'deleted_at', 'updated_at'] as const;

/** A PostgreSQL row as the rest of the gateway knows it: times in ISO 8601, the hold as 0/1. */
function fromPg(r: Record<string, unknown>): CatalogRow {
  const row = { ...r } as Record<string, unknown>;
  for (const t of TIMES) row[t] = r[t] == null ? null : new Date(r[t] as string | Date).toISOString();
  row.legal_hold = r.legal_hold ? 1 : 0;
  row.size_bytes = Number(r.size_bytes);
  return row as unknown as CatalogRow;
}

/** A time as PostgreSQL reads it from JSON: epoch ms (uploads), ISO 8601, or ClickHouse's UTC `YYYY-MM-DD hh:mm:ss`. */
const isoTime = (v: number | string | null): string | null =>
  v == null
    ? null
    : typeof v === 'number'
      ? new Date(v).toISOString()
      : v.includes('T')
        ? v
        : `${v.replace(' ', 'T')}Z`;

/** A row in the shape `jsonb_populate_recordset(NULL::recordings, …)` reads. */
function toPg(r: CatalogRow): Record<string, unknown> {
  const row: Record<string, unknown> = { ...r, legal_hold: Boolean(Number(r.legal_hold)) };
  for (const t of TIMES) row[t] = isoTime(r[t]);
  return row;
}

/** The analytical copy's row: times in epoch milliseconds, as the telemetry writer sends them. */
function toCopy(r: CatalogRow): Record<string, unknown> {
  const row: Record<string, unknown> = { ...r };
  for (const t of TIMES) row[t] = r[t] == null ? null : Date.parse(String(r[t]));
  return row;
}

const INSERT = `INSERT INTO recordings SELECT * FROM jsonb_populate_recordset(NULL::recordings, $1::jsonb)`;

export interface CatalogListQuery {
  tenant: string;
  room?: string;
  callId?: string;
  participant?: string;
  from?: string;
  to?: string;
  includeDeleted: boolean;
  /** Where the previous page ended. */
  after?: { startedMs: number; id: string };
  limit: number;
}

export interface CatalogDeps {
  db: Database;
  /** The analytical copy in ClickHouse, through the telemetry writer. */
  copy: { write(table: string, row: unknown): void; flush(): Promise<void> };
  log: Logger;
}

export class RecordingCatalog {
  constructor(private readonly d: CatalogDeps) {}

  /** Applies the owner's migrations. */
  async migrate(): Promise<void> {
    await migrateStore(this.d.db, 'recordings', RECORDINGS_MIGRATIONS, this.d.log);
  }

  /**
   * Imports, once for the cluster, the catalog the version before kept in
   * ClickHouse (each recording's latest version). Rows already here win.
   */
  importFromClickHouse(ch: { client: ClickHouseClient; database: string }): Promise<number | undefined> {
    return importOnce(this.d.db, 'clickhouse:recordings', this.d.log, async (tx) => {
      await this.d.copy.flush();
      const rs = await ch.client.query({
        query: `SELECT * FROM ${ch.database}.recordings FINAL`,
        format: 'JSONEachRow',
      });
      const rows = await rs.json<CatalogRow>();
      let n = 0;
      for (let i = 0; i < rows.length; i += 500) {
        const batch = rows.slice(i, i + 500).map(toPg);
        n += (await tx.query(`${INSERT} ON CONFLICT (tenant, id) DO NOTHING RETURNING id`, [JSON.stringify(batch)]))
          .rows.length;
      }
      return n;
    });
  }

  /** Sends the copy of committed changes: in ClickHouse, or in the telemetry spool while it is down, on return. */
  async #copy(rows: CatalogRow[]): Promise<void> {
    for (const r of rows) this.d.copy.write('recordings', toCopy(r));
    await this.d.copy.flush();
  }

  /**
   * Writes the row of an upload (`uploading`, then `ready` or `failed`). A
   * recording already past its upload (deleted by erasure meanwhile, say) is
   * left as it is: an upload never brings a row back.
   */
  async putUpload(row: CatalogRow): Promise<CatalogRow | undefined> {
    const set = Object.keys(toPg(row))
      .filter((c) => c !== 'tenant' && c !== 'id')
      .map((c) => `${c} = EXCLUDED.${c}`)
      .join(', ');
    const { rows } = await this.d.db.query(
      `${INSERT} ON CONFLICT (tenant, id) DO UPDATE SET ${set}
       WHERE recordings.status IN ('uploading', 'failed') RETURNING *`,
      [JSON.stringify([toPg(row)])],
    );
    const written = rows.map(fromPg);
    await this.#copy(written);
    return written[0];
  }

  async get(tenant: string, id: string): Promise<CatalogRow | undefined> {
    const { rows } = await this.d.db.query('SELECT * FROM recordings WHERE tenant = $1 AND id = $2', [tenant, id]);
    return rows[0] && fromPg(rows[0]);
  }

  async require(tenant: string, id: string): Promise<CatalogRow> {
    const row = await this.get(tenant, id);
    if (!row) throw new VigieError('NOT_FOUND', 'no such recording');
    return row;
  }

  /** One page, newest first. */
  async list(q: CatalogListQuery): Promise<CatalogRow[]> {
    const params: unknown[] = [q.tenant];
    const where = ['tenant = $1'];
    const add = (clause: (n: string) => string, value: unknown) => {
      if (value === undefined) return;
      params.push(value);
      where.push(clause(`$${params.length}`));
    };
    if (!q.includeDeleted) where.push("status NOT IN ('deleted', 'deleting')");
    add((n) => `room = ${n}`, q.room);
    add((n) => `call_id = ${n}`, q.callId);
    add((n) => `${n} = ANY (participants)`, q.participant);
    // As epoch milliseconds: any ISO 8601 year (0000 included) is then a time PostgreSQL can compare.
    const ms = (iso?: string) => {
      if (iso === undefined) return undefined;
      const t = Date.parse(iso);
      if (Number.isNaN(t)) throw new VigieError('INVALID_REQUEST', `not a valid time: ${iso.slice(0, 40)}`);
      return t;
    };
    add((n) => `started_at >= to_timestamp(${n}::double precision / 1000)`, ms(q.from));
    add((n) => `started_at < to_timestamp(${n}::double precision / 1000)`, ms(q.to));
    if (q.after) {
      params.push(q.after.startedMs, q.after.id);
      where.push(
        `(started_at, id) < (to_timestamp($${params.length - 1}::double precision / 1000), $${params.length})`,
      );
    }
    params.push(q.limit);
    const { rows } = await this.d.db.query(
      `SELECT * FROM recordings WHERE ${where.join(' AND ')} ORDER BY started_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(fromPg);
  }

  /** The subject's recordings not deleted (erasure, access requests). */
  async ofSubject(tenant: string, pseudonym: string, statuses: RecordingStatus[]): Promise<CatalogRow[]> {
    const { rows } = await this.d.db.query(
      'SELECT * FROM recordings WHERE tenant = $1 AND $2 = ANY (participants) AND status = ANY ($3) ORDER BY id',
      [tenant, pseudonym, statuses],
    );
    return rows.map(fromPg);
  }

  /** Recordings whose retention has expired and that nothing holds, and deletions a dead node left half done. */
  async due(limit: number): Promise<CatalogRow[]> {
    const { rows } = await this.d.db.query(
      `SELECT * FROM recordings
       WHERE (status = 'ready' AND NOT legal_hold AND retain_until <= now())
          OR (status = 'deleting' AND updated_at < now() - ${STALE_CLAIM})
       ORDER BY retain_until LIMIT $1`,
      [limit],
    );
    return rows.map(fromPg);
  }

  /** Locks the row for the transaction `tx`. */
  async #lock(tx: Queryable, tenant: string, id: string): Promise<CatalogRow | undefined> {
    const { rows } = await tx.query('SELECT * FROM recordings WHERE tenant = $1 AND id = $2 FOR UPDATE', [tenant, id]);
    return rows[0] && fromPg(rows[0]);
  }

  /**
   * Legal hold. Set: the row first (in a transaction that refuses a recording
   * being deleted), then the store; cleared: the store first, then the row. In
   * between, the catalog errs on the side of keeping: a sweeper on any node
   * reads the hold before it claims the recording. `check` runs on the locked
   * row and throws to refuse; `apply` changes the store and undoes the row's
   * change by throwing.
   */
  async setLegalHold(
    tenant: string,
    id: string,
    on: boolean,
    check: (row: CatalogRow) => void,
    apply: (row: CatalogRow) => Promise<void>,
  ): Promise<CatalogRow> {
    const write = (tx: Queryable, hold: boolean) =>
      tx.query(
        `UPDATE recordings SET legal_hold = $3, updated_at = now() WHERE tenant = $1 AND id = $2 AND status = 'ready'
         RETURNING *`,
        [tenant, id, hold],
      );
    const before = await this.d.db.transaction(async (tx) => {
      const row = await this.#lock(tx, tenant, id);
      if (!row) throw new VigieError('NOT_FOUND', 'no such recording');
      if (row.status !== 'ready') throw new VigieError('INVALID_REQUEST', `recording is ${row.status}`);
      check(row);
      if (on) await write(tx, true);
      return row;
    });
    try {
      await apply(before);
    } catch (err) {
      if (on && !before.legal_hold) await this.d.db.transaction((tx) => write(tx, false));
      throw err;
    }
    const { rows } = on ? { rows: [] } : await this.d.db.transaction((tx) => write(tx, false));
    const after = rows[0] ? fromPg(rows[0]) : await this.require(tenant, id);
    await this.#copy([after]);
    return after;
  }

  /**
   * Claims a recording for deletion: `deleting`, in a transaction on the row,
   * only if it is in one of `from` and not under legal hold (a deletion left
   * half done by a node that died is claimed again once stale). The object is
   * removed after the claim, then `finishDeletion` or `releaseClaim`. Resolves
   * to the row as it was before the claim, or undefined when it cannot be
   * claimed: `refusal` says why.
   */
  async claimDeletion(
    tenant: string,
    id: string,
    from: RecordingStatus[],
    opts: { expired?: boolean } = {},
  ): Promise<{ row?: CatalogRow; refusal?: 'missing' | 'deleted' | 'legal-hold' | 'busy' | 'not-due' }> {
    return this.d.db.transaction(async (tx) => {
      const row = await this.#lock(tx, tenant, id);
      if (!row) return { refusal: 'missing' as const };
      if (row.status === 'deleted') return { row, refusal: 'deleted' as const };
      if (row.legal_hold) return { row, refusal: 'legal-hold' as const };
      const { rows: stale } = await tx.query(
        `SELECT 1 FROM recordings WHERE tenant = $1 AND id = $2 AND status = 'deleting'
         AND updated_at < now() - ${STALE_CLAIM}`,
        [tenant, id],
      );
      if (!from.includes(row.status) && !stale[0]) return { row, refusal: 'busy' as const };
      if (opts.expired && !(row.retain_until && Date.parse(row.retain_until as string) <= Date.now()))
        return { row, refusal: 'not-due' as const };
      await tx.query(`UPDATE recordings SET status = 'deleting', updated_at = now() WHERE tenant = $1 AND id = $2`, [
        tenant,
        id,
      ]);
      return { row };
    });
  }

  /** The object is gone: the row stays as the deletion record, without pseudonyms when `forget` is set. */
  async finishDeletion(row: CatalogRow, reason: string, opts: { forget: boolean }): Promise<CatalogRow> {
    const { rows } = await this.d.db.query(
      `UPDATE recordings SET status = 'deleted', deleted_at = now(), deletion_reason = $3, updated_at = now(),
         participants = CASE WHEN $4 THEN '{}'::text[] ELSE participants END
       WHERE tenant = $1 AND id = $2 RETURNING *`,
      [row.tenant, row.id, reason, opts.forget],
    );
    const after = fromPg(rows[0]!);
    await this.#copy([after]);
    return after;
  }

  /** The object could not be removed: the row goes back to the state it was claimed from. */
  async releaseClaim(row: CatalogRow): Promise<void> {
    const status = row.status === 'deleting' ? 'ready' : row.status;
    await this.d.db.query(
      `UPDATE recordings SET status = $3, updated_at = now() WHERE tenant = $1 AND id = $2 AND status = 'deleting'`,
      [row.tenant, row.id, status],
    );
  }
}
