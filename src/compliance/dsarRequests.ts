/**
 * Data-subject requests on the control plane's PostgreSQL (owner `dsar`): one
 * row per request, from `received` to `completed` or `failed`, written by
 * whichever node answers it and read by every node. ClickHouse keeps an
 * analytical copy (table `dsar_requests`, one row per change of status, read
 * by the recording-compliance dashboard), written only from here.
 */
import { randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from '../logging.js';
import { type Database, importOnce, migrateStore, type StoreMigration } from '../store/index.js';

export const DSAR_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'dsar_requests: data-subject requests and their status',
    sql: `CREATE TABLE IF NOT EXISTS dsar_requests (
  request_id text PRIMARY KEY,
  tenant text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('access', 'erasure')),
  subject text NOT NULL,
  status text NOT NULL CHECK (status IN ('received', 'completed', 'failed', 'rejected')),
  summary text NOT NULL DEFAULT '',
  received_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS dsar_requests_tenant ON dsar_requests (tenant, received_at);
CREATE INDEX IF NOT EXISTS dsar_requests_subject ON dsar_requests (tenant, subject);
`,
  },
];

export type DsarKind = 'access' | 'erasure';
export type DsarStatus = 'received' | 'completed' | 'failed' | 'rejected';

export interface DsarRequest {
  requestId: string;
  tenant: string;
  kind: DsarKind;
  subject: string;
  status: DsarStatus;
  summary: string;
  receivedAt: string;
  updatedAt: string;
}

const fromPg = (r: Record<string, unknown>): DsarRequest => ({
  requestId: String(r.request_id),
  tenant: String(r.tenant),
  kind: r.kind as DsarKind,
  subject: String(r.subject),
  status: r.status as DsarStatus,
  summary: String(r.summary),
  receivedAt: new Date(r.received_at as Date).toISOString(),
  updatedAt: new Date(r.updated_at as Date).toISOString(),
});

export class DsarRequests {
  constructor(
    private readonly db: Database,
    /** The analytical copy in ClickHouse (the telemetry writer); absent when telemetry is off. */
    private readonly copy: { write(table: string, row: unknown): void; flush(): Promise<void> } | undefined,
    private readonly log: Logger,
  ) {}

  migrate(): Promise<number[]> {
    return migrateStore(this.db, 'dsar', DSAR_MIGRATIONS, this.log);
  }

  /**
   * Imports, once for the cluster, the requests the version before kept in
   * ClickHouse: each request with its latest status, received when first seen.
   */
  importFromClickHouse(ch: { client: ClickHouseClient; database: string }): Promise<number | undefined> {
    return importOnce(this.db, 'clickhouse:dsar_requests', this.log, async (tx) => {
      // Rows the version before left in the telemetry spool are sent first.
      await this.copy?.flush();
      const rs = await ch.client.query({
        query: `SELECT request_id, any(tenant) AS tenant, any(kind) AS kind, any(subject) AS subject,
                       argMax(status, ts) AS status, argMax(summary, ts) AS summary,
                       toUnixTimestamp64Milli(min(ts)) AS received_ms, toUnixTimestamp64Milli(max(ts)) AS updated_ms
                FROM ${ch.database}.dsar_requests GROUP BY request_id`,
        format: 'JSONEachRow',
      });
      let n = 0;
      for (const r of await rs.json<Record<string, string>>()) {
        const { rows } = await tx.query(
          `INSERT INTO dsar_requests (request_id, tenant, kind, subject, status, summary, received_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision / 1000),
                   to_timestamp($8::double precision / 1000))
           ON CONFLICT (request_id) DO NOTHING RETURNING 1`,
          [r.request_id, r.tenant, r.kind, r.subject, r.status, r.summary, r.received_ms, r.updated_ms],
        );
        n += rows.length;
      }
      return n;
    });
  }

  #copy(r: DsarRequest): void {
    this.copy?.write('dsar_requests', {
      ts: Date.parse(r.updatedAt),
      tenant: r.tenant,
      request_id: r.requestId,
      kind: r.kind,
      subject: r.subject,
      status: r.status,
      summary: r.summary,
    });
  }

  /** Records a request as received, before any work on it: a node dying mid-way leaves it visibly open. */
  async open(tenant: string, kind: DsarKind, subject: string, requestId = randomUUID()): Promise<DsarRequest> {
    const { rows } = await this.db.query(
      `INSERT INTO dsar_requests (request_id, tenant, kind, subject, status, received_at, updated_at)
       VALUES ($1, $2, $3, $4, 'received', now(), now()) RETURNING *`,
      [requestId, tenant, kind, subject],
    );
    const r = fromPg(rows[0]!);
    this.#copy(r);
    return r;
  }

  /** Closes an open request; a request already closed stays as it was. */
  async close(requestId: string, status: Exclude<DsarStatus, 'received'>, summary: string): Promise<DsarRequest> {
    const { rows } = await this.db.query(
      `UPDATE dsar_requests SET status = $2, summary = $3, updated_at = now()
       WHERE request_id = $1 AND status = 'received' RETURNING *`,
      [requestId, status, summary],
    );
    if (!rows[0]) throw new Error(`DSAR request ${requestId} is not open`);
    const r = fromPg(rows[0]);
    this.#copy(r);
    return r;
  }

  /** A tenant's requests, newest first. */
  async list(tenant: string, limit: number): Promise<DsarRequest[]> {
    const { rows } = await this.db.query(
      'SELECT * FROM dsar_requests WHERE tenant = $1 ORDER BY received_at DESC, request_id DESC LIMIT $2',
      [tenant, limit],
    );
    return rows.map(fromPg);
  }

  /** The requests about one subject (their access archive lists them). */
  async ofSubject(tenant: string, subject: string): Promise<Array<Record<string, unknown>>> {
    const { rows } = await this.db.query(
      'SELECT * FROM dsar_requests WHERE tenant = $1 AND subject = $2 ORDER BY received_at',
      [tenant, subject],
    );
    return rows;
  }
}
