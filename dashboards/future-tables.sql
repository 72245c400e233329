-- Tables the "Recording and compliance" dashboard reads, with the columns it
-- relies on. The dashboard issue (#7) was written before these tables existed;
-- since then Vigie creates all four itself (src/clickhouse/migrations.ts:
-- recordings and retention_deletions in migration 3, audit_log and
-- dsar_requests in migration 4), with more columns than listed here.
--
-- So every statement below is a no-op on a migrated database. What the file
-- still does:
--   * it is the contract between the dashboard and the schema: the test
--     creates these tables in a scratch database and checks that each column
--     here exists, with the same type, in the migrated table;
--   * on a database without those migrations (e.g. to try the dashboards
--     on bare ClickHouse), it creates tables the panels can run against:
--       clickhouse-client --database vigie --multiquery < dashboards/future-tables.sql
--
-- Unqualified names: run it in the Vigie database (CLICKHOUSE_DATABASE).
-- Differences from the list in the issue: recordings.retain_until is Nullable
-- (a recording with no retention policy has none), and the dashboard also reads
-- recordings.status and recordings.updated_at (a row per version, read FINAL).

CREATE TABLE IF NOT EXISTS recordings (
  id String,
  tenant LowCardinality(String),
  room String,
  call_id String,
  started_at DateTime64(3, 'UTC'),
  ended_at DateTime64(3, 'UTC'),
  duration_s Float64,
  size_bytes UInt64,
  storage_target String,
  retain_until Nullable(DateTime64(3, 'UTC')),
  legal_hold UInt8,
  status LowCardinality(String) COMMENT 'uploading, ready, failed, deleted',
  deleted_at Nullable(DateTime64(3, 'UTC')),
  deletion_reason String,
  updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (tenant, id);

CREATE TABLE IF NOT EXISTS audit_log (
  ts DateTime64(3, 'UTC'),
  tenant LowCardinality(String),
  seq UInt64,
  actor String,
  action LowCardinality(String),
  target String,
  result LowCardinality(String)
) ENGINE = MergeTree ORDER BY (tenant, seq);

CREATE TABLE IF NOT EXISTS dsar_requests (
  ts DateTime64(3, 'UTC'),
  tenant LowCardinality(String),
  request_id String,
  kind LowCardinality(String) COMMENT 'access or erasure',
  status LowCardinality(String)
) ENGINE = MergeTree ORDER BY (tenant, ts);

CREATE TABLE IF NOT EXISTS retention_deletions (
  ts DateTime64(3, 'UTC'),
  tenant LowCardinality(String),
  category LowCardinality(String),
  object_id String,
  version_id String,
  policy String
) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (tenant, ts);
