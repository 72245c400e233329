import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from '../logging.js';

/** What a migration needs to write DDL for one server or for a cluster. */
export interface SchemaContext {
  db: string;
  /** `''` on one server, ` ON CLUSTER 'name'` on a cluster. */
  onCluster: string;
  /** Engine clause: `MergeTree` or its Replicated twin, with ZooKeeper path and replica macros. */
  engine(kind: 'MergeTree' | 'ReplacingMergeTree' | 'AggregatingMergeTree', ...args: string[]): string;
  /** Table settings that make insert deduplication tokens effective on either engine family. */
  dedupSettings: string;
}

export interface Migration {
  version: number;
  name: string;
  statements(ctx: SchemaContext): string[];
}

export function schemaContext(db: string, cluster?: string): SchemaContext {
  return {
    db,
    onCluster: cluster ? ` ON CLUSTER '${cluster}'` : '',
    engine: (kind, ...args) => {
      if (!cluster) return `${kind}${args.length ? `(${args.join(', ')})` : ''}`;
      return `Replicated${kind}(${["'/clickhouse/tables/{shard}/{database}/{table}'", "'{replica}'", ...args].join(', ')})`;
    },
    // Non-replicated MergeTree ignores insert_deduplication_token unless a window is set.
    dedupSettings: cluster ? 'replicated_deduplication_window = 10000' : 'non_replicated_deduplication_window = 10000',
  };
}

/** Columns every telemetry row starts with: when, and whose call. */
const CALL_KEY = `
  ts DateTime64(3, 'UTC'),
  tenant LowCardinality(String),
  room String,
  call_id String,
  peer_id String,
  participant String COMMENT 'pseudonym: HMAC of the identity with the tenant key'`;

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'telemetry: participants, track/transport/client stats, call events, call quality',
    statements: ({ db, onCluster, engine, dedupSettings }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.participants${onCluster} (
        tenant LowCardinality(String),
        participant String,
        identity String COMMENT 'the only clear identity in the database; erasure deletes it here',
        display_name String,
        first_seen DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC')
      ) ENGINE = ${engine('ReplacingMergeTree', 'updated_at')} ORDER BY (tenant, participant) SETTINGS ${dedupSettings}`,

      `CREATE TABLE IF NOT EXISTS ${db}.track_stats${onCluster} (${CALL_KEY},
        track_id String COMMENT 'producer or consumer id',
        producer_id String,
        kind LowCardinality(String),
        direction LowCardinality(String) COMMENT 'inbound: participant to SFU (producer); outbound: SFU to participant (consumer)',
        source LowCardinality(String),
        codec LowCardinality(String),
        ssrc UInt32,
        spatial_layer Int16,
        temporal_layer Int16,
        interval_ms UInt32,
        bitrate_bps Float64,
        packets UInt64,
        bytes UInt64,
        packets_lost Int64,
        loss_fraction Float32,
        jitter_ms Nullable(Float32),
        rtt_ms Nullable(Float32),
        nack_count UInt32,
        pli_count UInt32,
        fir_count UInt32,
        score UInt8,
        frame_rate Nullable(Float32),
        frame_width Nullable(UInt16),
        frame_height Nullable(UInt16),
        mos Nullable(Float32),
        video_quality Nullable(Float32)
      ) ENGINE = ${engine('MergeTree')} PARTITION BY toYYYYMM(ts) ORDER BY (tenant, call_id, track_id, ts) SETTINGS ${dedupSettings}`,

      `CREATE TABLE IF NOT EXISTS ${db}.transport_stats${onCluster} (${CALL_KEY},
        transport_id String,
        direction LowCardinality(String),
        ice_state LowCardinality(String),
        dtls_state LowCardinality(String),
        protocol LowCardinality(String),
        candidate_type LowCardinality(String) COMMENT 'host/srflx/relay as the client reports it; empty when unknown',
        interval_ms UInt32,
        bytes_received UInt64,
        bytes_sent UInt64,
        recv_bitrate_bps Float64,
        send_bitrate_bps Float64,
        available_outgoing_bitrate Nullable(Float64),
        rtt_ms Nullable(Float32)
      ) ENGINE = ${engine('MergeTree')} PARTITION BY toYYYYMM(ts) ORDER BY (tenant, call_id, transport_id, ts) SETTINGS ${dedupSettings}`,

      `CREATE TABLE IF NOT EXISTS ${db}.call_events${onCluster} (${CALL_KEY},
        event LowCardinality(String),
        object_id String,
        reason String,
        attrs Map(String, String)
      ) ENGINE = ${engine('MergeTree')} PARTITION BY toYYYYMM(ts) ORDER BY (tenant, call_id, ts) SETTINGS ${dedupSettings}`,

      `CREATE TABLE IF NOT EXISTS ${db}.client_stats${onCluster} (${CALL_KEY},
        kind LowCardinality(String),
        direction LowCardinality(String) COMMENT 'outbound: what the browser sends; inbound: what it receives',
        producer_id String,
        consumer_id String,
        ssrc UInt32,
        bytes UInt64 COMMENT 'cumulative, as getStats() reports it',
        packets UInt64,
        packets_lost Int64,
        jitter_ms Nullable(Float32),
        jitter_buffer_delay_ms Nullable(Float32) COMMENT 'mean per emitted frame/sample',
        freeze_count Nullable(UInt32),
        total_freezes_duration_ms Nullable(Float32),
        concealed_samples Nullable(UInt64),
        total_samples_received Nullable(UInt64),
        frames_decoded Nullable(UInt64),
        frames_per_second Nullable(Float32),
        frame_width Nullable(UInt16),
        frame_height Nullable(UInt16),
        candidate_type LowCardinality(String),
        protocol LowCardinality(String),
        rtt_ms Nullable(Float32),
        available_outgoing_bitrate Nullable(Float64)
      ) ENGINE = ${engine('MergeTree')} PARTITION BY toYYYYMM(ts) ORDER BY (tenant, call_id, ts) SETTINGS ${dedupSettings}`,

      `CREATE TABLE IF NOT EXISTS ${db}.call_quality_agg${onCluster} (
        tenant LowCardinality(String),
        call_id String,
        participant String,
        room SimpleAggregateFunction(any, String),
        started SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
        ended SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
        samples SimpleAggregateFunction(sum, UInt64),
        loss_avg AggregateFunction(avg, Float32),
        loss_p95 AggregateFunction(quantile(0.95), Float32),
        jitter_avg AggregateFunction(avg, Nullable(Float32)),
        jitter_p95 AggregateFunction(quantile(0.95), Nullable(Float32)),
        rtt_avg AggregateFunction(avg, Nullable(Float32)),
        rtt_p95 AggregateFunction(quantile(0.95), Nullable(Float32)),
        mos_avg AggregateFunction(avg, Nullable(Float32)),
        mos_p95 AggregateFunction(quantile(0.95), Nullable(Float32)),
        mos_p05 AggregateFunction(quantile(0.05), Nullable(Float32))
      ) ENGINE = ${engine('AggregatingMergeTree')} ORDER BY (tenant, call_id, participant)`,

      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.call_quality_mv${onCluster} TO ${db}.call_quality_agg AS
        SELECT tenant, call_id, participant, any(track_stats.room) AS room, min(ts) AS started, max(ts) AS ended, count() AS samples,
          avgState(loss_fraction) AS loss_avg, quantileState(0.95)(loss_fraction) AS loss_p95,
          avgState(jitter_ms) AS jitter_avg, quantileState(0.95)(jitter_ms) AS jitter_p95,
          avgState(rtt_ms) AS rtt_avg, quantileState(0.95)(rtt_ms) AS rtt_p95,
          avgState(mos) AS mos_avg, quantileState(0.95)(mos) AS mos_p95, quantileState(0.05)(mos) AS mos_p05
        FROM ${db}.track_stats GROUP BY tenant, call_id, participant`,

      // One row per participant and call; the call's participants are the rows sharing its call_id.
      // Inner aliases never reuse a column name: ClickHouse resolves aliases before columns.
      `CREATE VIEW IF NOT EXISTS ${db}.call_summary${onCluster} AS
        SELECT tenant, call_id, participant, room_name AS room, first_ts AS started, last_ts AS ended,
          dateDiff('millisecond', first_ts, last_ts) / 1000 AS duration_s, sample_count AS samples,
          m_loss AS loss_mean, q_loss AS loss_p95, m_jitter AS jitter_mean_ms, q_jitter AS jitter_p95_ms,
          m_rtt AS rtt_mean_ms, q_rtt AS rtt_p95_ms, m_mos AS mos_mean, q95_mos AS mos_p95, q05_mos AS mos_p05
        FROM (
          SELECT tenant, call_id, participant, any(room) AS room_name, min(started) AS first_ts, max(ended) AS last_ts, sum(samples) AS sample_count,
            avgMerge(loss_avg) AS m_loss, quantileMerge(0.95)(loss_p95) AS q_loss,
            avgMerge(jitter_avg) AS m_jitter, quantileMerge(0.95)(jitter_p95) AS q_jitter,
            avgMerge(rtt_avg) AS m_rtt, quantileMerge(0.95)(rtt_p95) AS q_rtt,
            avgMerge(mos_avg) AS m_mos, quantileMerge(0.95)(mos_p95) AS q95_mos, quantileMerge(0.05)(mos_p05) AS q05_mos
          FROM ${db}.call_quality_agg GROUP BY tenant, call_id, participant
        )`,
    ],
  },
  {
    version: 2,
    name: 'webhooks: one row per delivery attempt',
    statements: ({ db, onCluster, engine, dedupSettings }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.webhook_attempts${onCluster} (
        ts DateTime64(3, 'UTC'),
        tenant LowCardinality(String),
        endpoint_id String,
        delivery_id String,
        event LowCardinality(String),
        attempt UInt16,
        status_code UInt16,
        outcome LowCardinality(String) COMMENT 'delivered, failed, refused (SSRF), endpoint-disabled',
        error String,
        duration_ms UInt32
      ) ENGINE = ${engine('MergeTree')} PARTITION BY toYYYYMM(ts) ORDER BY (tenant, endpoint_id, ts) SETTINGS ${dedupSettings}`,
    ],
  },
  {
    version: 3,
    name: 'recording: catalog, access records, retention deletions',
    statements: ({ db, onCluster, engine, dedupSettings }) => [
      // One row per stored file; updates are new versions (ReplacingMergeTree on updated_at).
      `CREATE TABLE IF NOT EXISTS ${db}.recordings${onCluster} (
        id String,
        session_id String COMMENT 'one recording session of a room (start to stop)',
        tenant LowCardinality(String),
        room String,
        call_id String,
        participants Array(String) COMMENT 'pseudonyms',
        tracks Array(String),
        codecs Array(String),
        started_at DateTime64(3, 'UTC'),
        ended_at DateTime64(3, 'UTC'),
        duration_s Float64,
        size_bytes UInt64,
        sha256 String,
        content_type String,
        storage_target String,
        storage_country LowCardinality(String),
        object_key String,
        version_id String,
        retain_until Nullable(DateTime64(3, 'UTC')),
        lock_mode LowCardinality(String),
        legal_hold UInt8,
        retention_policy String,
        status LowCardinality(String) COMMENT 'uploading, ready, failed, deleted',
        deleted_at Nullable(DateTime64(3, 'UTC')),
        deletion_reason String,
        updated_at DateTime64(3, 'UTC')
      ) ENGINE = ${engine('ReplacingMergeTree', 'updated_at')} ORDER BY (tenant, id) SETTINGS ${dedupSettings}`,
      `CREATE TABLE IF NOT EXISTS ${db}.access_log${onCluster} (
        ts DateTime64(3, 'UTC'),
        tenant LowCardinality(String),
        actor String COMMENT 'key:<id>, user, operator',
        action LowCardinality(String),
        target String,
        source_ip String,
        result LowCardinality(String)
      ) ENGINE = ${engine('MergeTree')} PARTITION BY toYYYYMM(ts) ORDER BY (tenant, ts) SETTINGS ${dedupSettings}`,
      `CREATE TABLE IF NOT EXISTS ${db}.retention_deletions${onCluster} (
        ts DateTime64(3, 'UTC'),
        tenant LowCardinality(String),
        category LowCardinality(String),
        object_id String,
        object_key String,
        version_id String,
        policy String,
        reason String
      ) ENGINE = ${engine('MergeTree')} PARTITION BY toYYYYMM(ts) ORDER BY (tenant, ts) SETTINGS ${dedupSettings}`,
    ],
  },
  {
    version: 4,
    name: 'compliance: hash-chained audit log, signed checkpoints, data-subject requests',
    statements: ({ db, onCluster, engine, dedupSettings }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.audit_log${onCluster} (
        tenant LowCardinality(String),
        seq UInt64 COMMENT 'position in the tenant chain, from 1',
        ts DateTime64(3, 'UTC'),
        actor String,
        action LowCardinality(String),
        target String,
        subject String COMMENT 'pseudonym of the data subject concerned, if any',
        result LowCardinality(String),
        source_ip String,
        details String COMMENT 'canonical JSON',
        prev_hash String,
        hash String COMMENT 'sha256 of the canonical JSON of every other column'
      ) ENGINE = ${engine('MergeTree')} ORDER BY (tenant, seq) SETTINGS ${dedupSettings}`,
      `CREATE TABLE IF NOT EXISTS ${db}.audit_checkpoints${onCluster} (
        tenant LowCardinality(String),
        seq UInt64,
        hash String,
        ts DateTime64(3, 'UTC'),
        jws String COMMENT 'compact JWS over {tenant, seq, hash, ts}'
      ) ENGINE = ${engine('MergeTree')} ORDER BY (tenant, seq) SETTINGS ${dedupSettings}`,
      `CREATE TABLE IF NOT EXISTS ${db}.dsar_requests${onCluster} (
        ts DateTime64(3, 'UTC'),
        tenant LowCardinality(String),
        request_id String,
        kind LowCardinality(String) COMMENT 'access or erasure',
        subject String COMMENT 'pseudonym',
        status LowCardinality(String),
        summary String
      ) ENGINE = ${engine('MergeTree')} ORDER BY (tenant, ts) SETTINGS ${dedupSettings}`,
    ],
  },
  {
    version: 5,
    name: 'retention: access records name the data subject who made them (erasure reaches them)',
    statements: ({ db, onCluster }) => [
      `ALTER TABLE ${db}.access_log${onCluster} ADD COLUMN IF NOT EXISTS subject String DEFAULT '' COMMENT 'pseudonym of the participant whose user token made the access; empty for API keys' AFTER actor`,
    ],
  },
  {
    version: 6,
    name: 'nodes: telemetry rows name the node that wrote them',
    statements: ({ db, onCluster }) =>
      ['track_stats', 'transport_stats', 'call_events', 'client_stats'].map(
        (t) =>
          `ALTER TABLE ${db}.${t}${onCluster} ADD COLUMN IF NOT EXISTS node LowCardinality(String) DEFAULT '' COMMENT 'node id (VIGIE_NODE_ID) of the gateway that wrote the row; empty in rows written before node ids' AFTER participant`,
      ),
  },
  {
    version: 7,
    name: 'telemetry: the join funnel, one row per join (src/telemetry/JoinFunnelRecorder.ts)',
    statements: ({ db, onCluster, engine, dedupSettings }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.join_funnel${onCluster} (${CALL_KEY},
        node LowCardinality(String) COMMENT 'node id (VIGIE_NODE_ID) of the gateway that wrote the row',
        outcome LowCardinality(String) COMMENT 'joined, failed, abandoned',
        failed_step LowCardinality(String) COMMENT 'the first step not reached, when failed or abandoned',
        error_code LowCardinality(String) COMMENT 'the code the join was refused with (src/errors.ts), DTLS_FAILED or TIMEOUT',
        reason String COMMENT 'why the row was written before every step: refusal message or leave reason',
        token_issued_ms Nullable(Int64) COMMENT 'iat of the token (to the second), usually before the start',
        ws_open_ms Nullable(Int64) COMMENT 'the WebSocket opened, usually before the start',
        joined_ms Nullable(Int32),
        send_connected_ms Nullable(Int32) COMMENT 'send transport: ICE and DTLS connected',
        recv_connected_ms Nullable(Int32) COMMENT 'receive transport: ICE and DTLS connected',
        first_rtp_ms Nullable(Int32) COMMENT 'first RTP of the participant received by the SFU',
        first_frame_ms Nullable(Int32) COMMENT 'first video frame decoded, as the browser reports it',
        first_audio_ms Nullable(Int32) COMMENT 'first audio played, as the browser reports it'
      ) ENGINE = ${engine('MergeTree')} PARTITION BY toYYYYMM(ts) ORDER BY (tenant, call_id, ts) SETTINGS ${dedupSettings}`,
    ],
  },
];

function checksum(m: Migration): string {
  return createHash('sha256')
    .update(m.statements(schemaContext('db')).join(';\n'))
    .digest('hex')
    .slice(0, 16);
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`, in order.
 * Every statement is idempotent (IF NOT EXISTS), so a run that died half way,
 * or two gateways starting together, converge on the same schema.
 */
export async function migrate(
  client: ClickHouseClient,
  opts: { database: string; cluster?: string; log: Logger; migrations?: Migration[] },
): Promise<number[]> {
  const ctx = schemaContext(opts.database, opts.cluster);
  const migrations = opts.migrations ?? MIGRATIONS;
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${ctx.db}${ctx.onCluster}` });
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${ctx.db}.schema_migrations${ctx.onCluster} (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC'))
      ENGINE = ${ctx.engine('ReplacingMergeTree', 'applied_at')} ORDER BY version`,
  });
  const rs = await client.query({
    query: `SELECT version, checksum FROM ${ctx.db}.schema_migrations FINAL`,
    format: 'JSONEachRow',
  });
  const applied = new Map(
    (await rs.json<{ version: number; checksum: string }>()).map((r) => [Number(r.version), r.checksum]),
  );
  const done: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    const sum = checksum(m);
    if (applied.has(m.version)) {
      if (applied.get(m.version) !== sum)
        opts.log.warn({ version: m.version }, 'migration changed after it was applied; write a new migration instead');
      continue;
    }
    opts.log.info({ version: m.version, name: m.name }, 'applying ClickHouse migration');
    for (const statement of m.statements(ctx)) await client.command({ query: statement });
    await client.insert({
      table: `${ctx.db}.schema_migrations`,
      values: [{ version: m.version, name: m.name, checksum: sum, applied_at: Date.now() }],
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: `migration-${m.version}-${sum}` },
    });
    done.push(m.version);
  }
  return done;
}
