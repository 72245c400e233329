/**
 * 3. SFU infrastructure: worker CPU; rooms, peers, producers and consumers;
 * the transport mix (udp, tcp, relay); ICE failures; joins and transports per
 * node (telemetry rows name their node); the ClickHouse writer's
 * queue, spool and insert latency.
 *
 * The gateway's OpenTelemetry metrics (src/telemetry/gatewayMetrics.ts) reach
 * ClickHouse through the collector's clickhouse exporter, in the `otel`
 * database, one table per metric type (otel_metrics_gauge, _sum, _histogram).
 * The gateway exports with delta temporality and the collector turns any
 * cumulative series into deltas, so a counter's row is what happened between
 * StartTimeUnix and TimeUnix. The transport mix and ICE failures come from
 * Vigie's own tables.
 */
import { RowBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import { OTEL_DB, QueryCatalog } from '../lib/clickhouse.js';
import { finish, pieChartPanel, queryVariable, statPanel, timeSeriesPanel, vigieDashboard } from '../lib/panels.js';

export const SFU_UID = 'vigie-sfu';

const SERVICE = `ServiceName = \${service:sqlstring}`;
/** One gateway process: its host (container) name. */
const INSTANCE = `ResourceAttributes['host.name']`;

/** A gauge summed over gateway instances (each instance's mean in the interval first). */
function gaugeSql(metrics: string[], label: string): string {
  return `
    SELECT time, ${label}, sum(v) AS value FROM (
      SELECT $__timeInterval(TimeUnix) AS time, replaceOne(MetricName, 'vigie.', '') AS ${label}, ${INSTANCE} AS instance, avg(Value) AS v
      FROM ${OTEL_DB}.otel_metrics_gauge
      WHERE $__timeFilter(TimeUnix) AND ${SERVICE} AND MetricName IN (${metrics.map((m) => `'${m}'`).join(', ')})
      GROUP BY time, ${label}, instance
    )
    GROUP BY time, ${label} ORDER BY time`;
}

export function sfuInfrastructure() {
  const cat = new QueryCatalog(SFU_UID);
  const d = vigieDashboard(
    SFU_UID,
    'Vigie · SFU infrastructure',
    'mediasoup workers, rooms and peers, how media reaches the SFU, ICE failures, and the telemetry pipeline into ClickHouse.',
  )
    .withVariable(
      queryVariable(cat, {
        name: 'service',
        label: 'Service',
        description: 'OTEL_SERVICE_NAME of the gateways (vigie-gateway by default).',
        sql: `SELECT DISTINCT ServiceName FROM ${OTEL_DB}.otel_metrics_gauge WHERE $__timeFilter(TimeUnix) AND MetricName LIKE 'vigie.%' ORDER BY ServiceName`,
        columns: ['ServiceName'],
      }),
    )
    .withRow(new RowBuilder('Media workers'))
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Worker CPU',
        description:
          'CPU time of each mediasoup worker (user + system) over wall time: 100% is one core. From vigie.worker.cpu.',
        sql: `
          SELECT $__timeInterval(TimeUnix) AS time, concat(${INSTANCE}, ' worker ', Attributes['worker']) AS worker,
            100 * sum(Value) / greatest(sum(dateDiff('millisecond', StartTimeUnix, TimeUnix)) / 1000, 0.001) AS cpu_pct
          FROM ${OTEL_DB}.otel_metrics_sum
          WHERE $__timeFilter(TimeUnix) AND ${SERVICE} AND MetricName = 'vigie.worker.cpu' AND StartTimeUnix < TimeUnix
          GROUP BY time, worker ORDER BY time`,
        columns: ['time', 'worker', 'cpu_pct'],
        unit: 'percent',
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Rooms and peers',
        description: 'vigie.rooms and vigie.peers, summed over gateways.',
        sql: gaugeSql(['vigie.rooms', 'vigie.peers'], 'metric'),
        columns: ['time', 'metric', 'value'],
        min: 0,
        w: 6,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Producers and consumers',
        description: 'vigie.producers and vigie.consumers, summed over gateways.',
        sql: gaugeSql(['vigie.producers', 'vigie.consumers'], 'metric'),
        columns: ['time', 'metric', 'value'],
        min: 0,
        w: 6,
        h: 8,
      }),
    )
    .withRow(new RowBuilder('Network paths'))
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Transport mix',
        description:
          'Connected WebRTC transports by path: relay (TURN, as the browser reports its candidate), else the ICE protocol, udp or tcp.',
        sql: `
          SELECT $__timeInterval(ts) AS time,
            multiIf(candidate_type = 'relay', 'relay', protocol = 'udp', 'udp', protocol = 'tcp', 'tcp', 'unknown') AS path,
            uniqExact(transport_id) AS transports
          FROM transport_stats
          WHERE $__timeFilter(ts) AND ice_state IN ('connected', 'completed')
          GROUP BY time, path ORDER BY time`,
        columns: ['time', 'path', 'transports'],
        stack: true,
        min: 0,
        w: 10,
        h: 8,
      }),
    )
    .withPanel(
      pieChartPanel(cat, {
        title: 'Transport mix (period)',
        sql: `
          SELECT multiIf(candidate_type = 'relay', 'relay', protocol = 'udp', 'udp', protocol = 'tcp', 'tcp', 'unknown') AS path,
            uniqExact(transport_id) AS transports
          FROM transport_stats
          WHERE $__timeFilter(ts)
          GROUP BY path ORDER BY path`,
        columns: ['path', 'transports'],
        w: 5,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'ICE and DTLS failures',
        description: 'transport.failed (DTLS failed), ICE disconnections and ICE restarts, from call_events.',
        sql: `
          SELECT $__timeInterval(ts) AS time,
            multiIf(event = 'transport.failed', 'transport failed', event = 'ice.restart', 'ICE restart', 'ICE disconnected') AS kind,
            count() AS events
          FROM call_events
          WHERE $__timeFilter(ts) AND (event IN ('transport.failed', 'ice.restart') OR (event = 'ice.state' AND attrs['state'] = 'disconnected'))
          GROUP BY time, kind ORDER BY time`,
        columns: ['time', 'kind', 'events'],
        bars: true,
        stack: true,
        min: 0,
        w: 9,
        h: 8,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Transports connected',
        description: 'Share of WebRTC transports created in the period that reached DTLS connected.',
        sql: `
          SELECT round(100 * uniqExactIf(object_id, event = 'transport.connected') / greatest(uniqExactIf(object_id, event = 'transport.created'), 1), 1) AS connected_pct
          FROM call_events
          WHERE $__timeFilter(ts) AND event IN ('transport.created', 'transport.connected')`,
        columns: ['connected_pct'],
        unit: 'percent',
        thresholds: [
          { value: null, color: 'red' },
          { value: 90, color: 'orange' },
          { value: 98, color: 'green' },
        ],
        w: 6,
        h: 5,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Worker deaths',
        sql: `SELECT count() AS worker_deaths FROM call_events WHERE $__timeFilter(ts) AND event = 'worker.died'`,
        columns: ['worker_deaths'],
        thresholds: [
          { value: null, color: 'green' },
          { value: 1, color: 'red' },
        ],
        w: 6,
        h: 5,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'TURN-relayed transports',
        sql: `SELECT uniqExactIf(transport_id, candidate_type = 'relay') AS relayed FROM transport_stats WHERE $__timeFilter(ts)`,
        columns: ['relayed'],
        w: 6,
        h: 5,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'TCP transports',
        sql: `SELECT uniqExactIf(transport_id, protocol = 'tcp' AND candidate_type != 'relay') AS tcp FROM transport_stats WHERE $__timeFilter(ts)`,
        columns: ['tcp'],
        w: 6,
        h: 5,
      }),
    )
    .withRow(new RowBuilder('Nodes'))
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Participants joined, per node',
        description:
          'peer.joined call events by the node (VIGIE_NODE_ID) that served them: how rooms spread over the nodes.',
        sql: `
          SELECT $__timeInterval(ts) AS time, if(node = '', '(unnamed)', node) AS node, count() AS joins
          FROM call_events
          WHERE $__timeFilter(ts) AND event = 'peer.joined'
          GROUP BY time, node ORDER BY time`,
        columns: ['time', 'node', 'joins'],
        bars: true,
        stack: true,
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Media transports, per node',
        description: 'WebRTC transports sampled in the interval, by the node that carries them.',
        sql: `
          SELECT $__timeInterval(ts) AS time, if(node = '', '(unnamed)', node) AS node, uniqExact(transport_id) AS transports
          FROM transport_stats
          WHERE $__timeFilter(ts)
          GROUP BY time, node ORDER BY time`,
        columns: ['time', 'node', 'transports'],
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withRow(new RowBuilder('Telemetry pipeline (ClickHouse writer)'))
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Writer queue',
        description: 'Rows held in memory by the ClickHouse writer (vigie.writer.queue_depth), per gateway.',
        sql: `
          SELECT $__timeInterval(TimeUnix) AS time, ${INSTANCE} AS instance, max(Value) AS queued_rows
          FROM ${OTEL_DB}.otel_metrics_gauge
          WHERE $__timeFilter(TimeUnix) AND ${SERVICE} AND MetricName = 'vigie.writer.queue_depth'
          GROUP BY time, instance ORDER BY time`,
        columns: ['time', 'instance', 'queued_rows'],
        min: 0,
        w: 6,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Spool on disk',
        description: 'Bytes waiting in the spool while ClickHouse is unavailable (vigie.spool.bytes), per gateway.',
        sql: `
          SELECT $__timeInterval(TimeUnix) AS time, ${INSTANCE} AS instance, max(Value) AS spool_bytes
          FROM ${OTEL_DB}.otel_metrics_gauge
          WHERE $__timeFilter(TimeUnix) AND ${SERVICE} AND MetricName = 'vigie.spool.bytes'
          GROUP BY time, instance ORDER BY time`,
        columns: ['time', 'instance', 'spool_bytes'],
        unit: 'bytes',
        min: 0,
        w: 6,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Insert latency',
        description:
          'Successful ClickHouse inserts (vigie.clickhouse.insert_latency): mean, and p50/p95 as the upper bound of the histogram bucket holding that rank (the maximum for the last bucket).',
        sql: `
          SELECT time, sum_ms / n AS mean_ms,
            if(i50 <= length(bounds), bounds[i50], max_ms) AS p50_ms,
            if(i95 <= length(bounds), bounds[i95], max_ms) AS p95_ms,
            max_ms
          FROM (
            SELECT $__timeInterval(TimeUnix) AS time, sum(Count) AS n, sum(Sum) AS sum_ms, max(Max) AS max_ms,
              any(ExplicitBounds) AS bounds, sumForEach(BucketCounts) AS buckets,
              arrayFirstIndex(c -> c >= 0.5 * n, arrayCumSum(buckets)) AS i50,
              arrayFirstIndex(c -> c >= 0.95 * n, arrayCumSum(buckets)) AS i95
            FROM ${OTEL_DB}.otel_metrics_histogram
            WHERE $__timeFilter(TimeUnix) AND ${SERVICE} AND MetricName = 'vigie.clickhouse.insert_latency' AND Attributes['ok'] = 'true' AND Count > 0
            GROUP BY time
          )
          ORDER BY time`,
        columns: ['time', 'mean_ms', 'p50_ms', 'p95_ms', 'max_ms'],
        unit: 'ms',
        min: 0,
        w: 6,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Rows written, dropped, failed inserts',
        description:
          'Per interval: rows written (vigie.rows.written), rows given up by a full spool (vigie.rows.dropped), inserts ClickHouse refused or could not take.',
        sql: `
          SELECT time, series, sum(v) AS value FROM (
            SELECT $__timeInterval(TimeUnix) AS time, replaceOne(MetricName, 'vigie.', '') AS series, sum(Value) AS v
            FROM ${OTEL_DB}.otel_metrics_sum
            WHERE $__timeFilter(TimeUnix) AND ${SERVICE} AND MetricName IN ('vigie.rows.written', 'vigie.rows.dropped')
            GROUP BY time, series
            UNION ALL
            SELECT $__timeInterval(TimeUnix) AS time, 'inserts.failed' AS series, toFloat64(sum(Count)) AS v
            FROM ${OTEL_DB}.otel_metrics_histogram
            WHERE $__timeFilter(TimeUnix) AND ${SERVICE} AND MetricName = 'vigie.clickhouse.insert_latency' AND Attributes['ok'] = 'false'
            GROUP BY time, series
          )
          GROUP BY time, series ORDER BY time`,
        columns: ['time', 'series', 'value'],
        bars: true,
        min: 0,
        w: 6,
        h: 8,
      }),
    );
  return { dashboard: finish(d), catalog: cat };
}
