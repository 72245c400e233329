/**
 * 1. Call quality overview: volume, the MOS distribution, loss/jitter/RTT
 * percentiles over time, and the worst calls, each linking to its drill-down.
 */
import { RowBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import { QueryCatalog } from '../lib/clickhouse.js';
import {
  barChartPanel,
  finish,
  statPanel,
  tablePanel,
  TENANTS,
  tenantVariable,
  timeSeriesPanel,
  vigieDashboard,
} from '../lib/panels.js';
import { DRILLDOWN_UID } from './call-drilldown.js';

export const QUALITY_UID = 'vigie-call-quality';

export function qualityOverview() {
  const cat = new QueryCatalog(QUALITY_UID);
  const d = vigieDashboard(
    QUALITY_UID,
    'Vigie · Call quality overview',
    'Calls and participants, audio MOS, loss, jitter and RTT across all calls, and the worst calls of the period.',
  )
    .withVariable(
      tenantVariable(
        cat,
        `SELECT DISTINCT tenant FROM call_events WHERE $__timeFilter(ts) AND tenant != '' ORDER BY tenant`,
      ),
    )
    .withRow(new RowBuilder('Volume'))
    .withPanel(
      statPanel(cat, {
        title: 'Calls',
        description: 'Distinct calls with at least one event in the period.',
        sql: `SELECT uniqExact(call_id) AS calls FROM call_events WHERE $__timeFilter(ts) AND ${TENANTS} AND call_id != ''`,
        columns: ['calls'],
        w: 4,
        h: 5,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Participants',
        description: 'Distinct participants (pseudonyms) who joined a call in the period.',
        sql: `SELECT uniqExact(tenant, participant) AS participants FROM call_events WHERE $__timeFilter(ts) AND ${TENANTS} AND event = 'peer.joined'`,
        columns: ['participants'],
        w: 4,
        h: 5,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Participant-minutes',
        description: 'Time spent in calls, summed over participants, from peer.left events.',
        sql: `SELECT round(sum(toUInt64OrZero(attrs['duration_ms'])) / 60000, 1) AS participant_minutes FROM call_events WHERE $__timeFilter(ts) AND ${TENANTS} AND event = 'peer.left'`,
        columns: ['participant_minutes'],
        w: 4,
        h: 5,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Calls with poor audio',
        description:
          'Calls where at least one participant’s audio MOS 5th percentile fell below 3.1 (quality.alert threshold).',
        sql: `
          SELECT uniqExactIf(call_id, mos_p05 < 3.1) AS poor_calls
          FROM call_summary
          WHERE ${TENANTS} AND ended >= $__fromTime AND started <= $__toTime`,
        columns: ['poor_calls'],
        w: 4,
        h: 5,
        thresholds: [
          { value: null, color: 'green' },
          { value: 1, color: 'orange' },
        ],
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Median audio MOS',
        sql: `SELECT round(quantile(0.5)(mos), 2) AS mos_median FROM track_stats WHERE $__timeFilter(ts) AND ${TENANTS} AND kind = 'audio'`,
        columns: ['mos_median'],
        w: 4,
        h: 5,
        decimals: 2,
        thresholds: [
          { value: null, color: 'red' },
          { value: 3.1, color: 'orange' },
          { value: 3.6, color: 'green' },
        ],
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Relayed transports',
        description:
          'Share of connected transports that go through TURN (candidate type relay, as the browser reports it).',
        sql: `
          SELECT round(100 * uniqExactIf(transport_id, candidate_type = 'relay') / greatest(uniqExact(transport_id), 1), 1) AS relayed_pct
          FROM transport_stats WHERE $__timeFilter(ts) AND ${TENANTS}`,
        columns: ['relayed_pct'],
        unit: 'percent',
        w: 4,
        h: 5,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Active calls and participants',
        description: 'Calls and participants with at least one stats sample in each interval.',
        sql: `
          SELECT $__timeInterval(ts) AS time, uniqExact(call_id) AS calls, uniqExact(tenant, participant) AS participants
          FROM track_stats
          WHERE $__timeFilter(ts) AND ${TENANTS}
          GROUP BY time ORDER BY time`,
        columns: ['time', 'calls', 'participants'],
        w: 24,
        h: 7,
        min: 0,
      }),
    )
    .withRow(new RowBuilder('Quality'))
    .withPanel(
      barChartPanel(cat, {
        title: 'Audio MOS distribution',
        description:
          'Audio samples (one per track and sampling interval) by MOS, in steps of 0.25. Above 4.0 is good, below 3.1 poor.',
        sql: `
          SELECT concat(toString(bucket), '–', toString(bucket + 0.25)) AS mos, samples
          FROM (
            SELECT floor(assumeNotNull(mos) * 4) / 4 AS bucket, count() AS samples
            FROM track_stats
            WHERE $__timeFilter(ts) AND ${TENANTS} AND kind = 'audio' AND mos IS NOT NULL
            GROUP BY bucket
          )
          ORDER BY bucket`,
        columns: ['mos', 'samples'],
        xField: 'mos',
        w: 8,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Audio MOS over time',
        description: 'Median and 5th percentile (the bad tail) of audio MOS.',
        sql: `
          SELECT $__timeInterval(ts) AS time, quantile(0.5)(mos) AS p50, quantile(0.05)(mos) AS p05
          FROM track_stats
          WHERE $__timeFilter(ts) AND ${TENANTS} AND kind = 'audio' AND mos IS NOT NULL
          GROUP BY time ORDER BY time`,
        columns: ['time', 'p50', 'p05'],
        w: 16,
        h: 8,
        min: 1,
        max: 5,
        decimals: 2,
      }),
    )
    .withPanel(
      percentilesOverTime(cat, {
        title: 'Packet loss percentiles',
        description: 'Loss over each sampling interval, across every track.',
        expr: '100 * loss_fraction',
        unit: 'percent',
      }),
    )
    .withPanel(
      percentilesOverTime(cat, { title: 'Jitter percentiles', expr: 'jitter_ms', unit: 'ms', nonNull: 'jitter_ms' }),
    )
    .withPanel(percentilesOverTime(cat, { title: 'RTT percentiles', expr: 'rtt_ms', unit: 'ms', nonNull: 'rtt_ms' }))
    .withRow(new RowBuilder('Joins'))
    .withPanel(
      tablePanel(cat, {
        title: 'Join funnel per tenant',
        description:
          'Joins of the period (one join_funnel row each), those refused or abandoned, and the median and 95th percentile of the time from the join request to each step: in the room, transports connected (ICE and DTLS), first RTP at the SFU, first frame decoded and first audio played in the browser.',
        sql: `
          SELECT tenant, count() AS joins, countIf(outcome = 'failed') AS refused_or_failed, countIf(outcome = 'abandoned') AS gave_up,
            ${FUNNEL_COLUMNS.map(([c, n]) => `round(quantile(0.5)(${c})) AS ${n}_p50, round(quantile(0.95)(${c})) AS ${n}_p95`).join(',\n            ')}
          FROM join_funnel
          WHERE $__timeFilter(ts) AND ${TENANTS}
          GROUP BY tenant ORDER BY tenant`,
        columns: [
          'tenant',
          'joins',
          'refused_or_failed',
          'gave_up',
          ...FUNNEL_COLUMNS.flatMap(([, n]) => [`${n}_p50`, `${n}_p95`]),
        ],
        units: Object.fromEntries(FUNNEL_COLUMNS.flatMap(([, n]) => [`${n}_p50`, `${n}_p95`].map((c) => [c, 'ms']))),
        w: 24,
        h: 6,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Join to first frame',
        description:
          'Per tenant, median and 95th percentile of the time from the join request to the first video frame the browser decoded.',
        sql: `
          SELECT $__timeInterval(ts) AS time, tenant, quantile(0.5)(first_frame_ms) AS p50, quantile(0.95)(first_frame_ms) AS p95
          FROM join_funnel
          WHERE $__timeFilter(ts) AND ${TENANTS} AND first_frame_ms IS NOT NULL
          GROUP BY time, tenant ORDER BY time`,
        columns: ['time', 'tenant', 'p50', 'p95'],
        unit: 'ms',
        w: 24,
        h: 8,
        min: 0,
      }),
    )
    .withRow(new RowBuilder('Calls to look at'))
    .withPanel(
      tablePanel(cat, {
        title: 'Worst calls',
        description:
          'Calls of the period, worst audio first (lowest MOS 5th percentile of any participant). Click a call id to open its drill-down.',
        sql: `
          SELECT tenant, call_id, any(room) AS call_room, min(started) AS call_start, round(max(duration_s)) AS call_duration_s,
            count() AS participants,
            round(min(mos_p05), 2) AS worst_mos_p05,
            round(100 * max(loss_p95), 2) AS worst_loss_p95,
            round(max(jitter_p95_ms), 1) AS worst_jitter_p95_ms,
            round(max(rtt_p95_ms), 1) AS worst_rtt_p95_ms
          FROM call_summary
          WHERE ${TENANTS} AND ended >= $__fromTime AND started <= $__toTime
          GROUP BY tenant, call_id
          ORDER BY worst_mos_p05 ASC NULLS LAST, worst_loss_p95 DESC
          LIMIT 50`,
        columns: [
          'tenant',
          'call_id',
          'call_room',
          'call_start',
          'call_duration_s',
          'participants',
          'worst_mos_p05',
          'worst_loss_p95',
          'worst_jitter_p95_ms',
          'worst_rtt_p95_ms',
        ],
        units: { call_duration_s: 's', worst_loss_p95: 'percent', worst_jitter_p95_ms: 'ms', worst_rtt_p95_ms: 'ms' },
        links: [
          {
            field: 'call_id',
            title: 'Open the call drill-down',
            url: `/d/${DRILLDOWN_UID}?var-tenant=\${__data.fields.tenant}&var-call=\${__data.fields.call_id}&var-participant=$__all&\${__url_time_range}`,
          },
        ],
        w: 24,
        h: 10,
      }),
    );
  return { dashboard: finish(d), catalog: cat };
}

/** The join funnel's steps after the join request: column, and the short name of its percentiles. */
const FUNNEL_COLUMNS = [
  ['joined_ms', 'joined'],
  ['send_connected_ms', 'send_connected'],
  ['recv_connected_ms', 'recv_connected'],
  ['first_rtp_ms', 'first_rtp'],
  ['first_frame_ms', 'first_frame'],
  ['first_audio_ms', 'first_audio'],
] as const;

/** p50/p95/p99 of one track_stats measure over time: the same query shape for loss, jitter and RTT. */
function percentilesOverTime(
  cat: Parameters<typeof timeSeriesPanel>[0],
  o: { title: string; description?: string; expr: string; unit: string; nonNull?: string },
) {
  const q = (p: number) => `quantile(${p})(${o.expr.replace(/^100 \* /, '')})`;
  const scale = o.expr.startsWith('100 * ') ? '100 * ' : '';
  return timeSeriesPanel(cat, {
    title: o.title,
    ...(o.description ? { description: o.description } : {}),
    sql: `
          SELECT $__timeInterval(ts) AS time,
            ${scale}${q(0.5)} AS p50, ${scale}${q(0.95)} AS p95, ${scale}${q(0.99)} AS p99
          FROM track_stats
          WHERE $__timeFilter(ts) AND ${TENANTS}${o.nonNull ? ` AND ${o.nonNull} IS NOT NULL` : ''}
          GROUP BY time ORDER BY time`,
    columns: ['time', 'p50', 'p95', 'p99'],
    unit: o.unit,
    w: 8,
    h: 8,
    min: 0,
  });
}
