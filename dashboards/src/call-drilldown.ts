/**
 * 2. Call drill-down: one call, its participants and tracks. Each track's
 * bitrate, loss, jitter, RTT and score over time; call events as annotations, and
 * quality issues (src/diagnosis) as regions on the timeline of whose network it was;
 * the browser's view (client_stats) beside the SFU's (track_stats).
 */
import { AnnotationQueryBuilder, RowBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import { CLICKHOUSE_DS, QueryCatalog } from '../lib/clickhouse.js';
import { finish, queryVariable, tablePanel, timeSeriesPanel, vigieDashboard } from '../lib/panels.js';

export const DRILLDOWN_UID = 'vigie-call-drilldown';

/** The call, narrowed to the chosen participants. */
const CALL = `tenant = \${tenant:sqlstring} AND call_id = \${call:sqlstring}`;
const PARTICIPANTS = `participant IN (\${participant:sqlstring})`;
/** A readable series name for a track: participant (short pseudonym), kind, direction, track id. */
const TRACK = `concat(substring(participant, 1, 8), ' ', kind, ' ', direction, ' ', substring(track_id, 1, 8))`;

/** The join funnel's step columns, in the order a join reaches them. */
const JOIN_STEPS = [
  'token_issued_ms',
  'ws_open_ms',
  'joined_ms',
  'send_connected_ms',
  'recv_connected_ms',
  'first_rtp_ms',
  'first_frame_ms',
  'first_audio_ms',
];

export function callDrilldown() {
  const cat = new QueryCatalog(DRILLDOWN_UID);
  const perTrack = (
    title: string,
    expr: string,
    column: string,
    o: { unit?: string; description?: string; where?: string; min?: number; max?: number; w?: number } = {},
  ) =>
    timeSeriesPanel(cat, {
      title,
      description: o.description,
      sql: `
        SELECT $__timeInterval(ts) AS time, ${TRACK} AS track, ${expr} AS ${column}
        FROM track_stats
        WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS}${o.where ? ` AND ${o.where}` : ''}
        GROUP BY time, track ORDER BY time`,
      columns: ['time', 'track', column],
      unit: o.unit,
      min: o.min,
      max: o.max,
      w: o.w ?? 12,
      h: 8,
    });

  const d = vigieDashboard(
    DRILLDOWN_UID,
    'Vigie · Call drill-down',
    'One call: its participants (pseudonyms), each track’s quality over time, call events, and the browser’s view beside the SFU’s.',
  )
    .withVariable(
      queryVariable(cat, {
        name: 'tenant',
        label: 'Tenant',
        sql: `SELECT DISTINCT tenant FROM call_events WHERE $__timeFilter(ts) AND tenant != '' ORDER BY tenant`,
        columns: ['tenant'],
      }),
    )
    .withVariable(
      queryVariable(cat, {
        name: 'call',
        label: 'Call',
        description:
          'Calls of the tenant in the period, latest first: the value is the call id, the label its room and start.',
        sql: `
          SELECT call_id, concat(any(room), ' · ', formatDateTime(min(ts), '%Y-%m-%d %H:%i'), ' · ', substring(call_id, 1, 8)) AS label
          FROM call_events
          WHERE $__timeFilter(ts) AND tenant = \${tenant:sqlstring} AND call_id != ''
          GROUP BY call_id ORDER BY min(ts) DESC LIMIT 500`,
        columns: ['call_id', 'label'],
      }),
    )
    .withVariable(
      queryVariable(cat, {
        name: 'participant',
        label: 'Participant',
        description: 'Participants of the call, by pseudonym. Identities are never shown here.',
        multi: true,
        includeAll: true,
        sql: `SELECT DISTINCT participant FROM call_events WHERE ${CALL} AND participant != '' ORDER BY participant`,
        columns: ['participant'],
      }),
    )
    .annotation(
      new AnnotationQueryBuilder()
        .name('Call events')
        .datasource(CLICKHOUSE_DS)
        .enable(true)
        .iconColor('#8AB8FF')
        .target(
          cat.annotation(
            'Call events',
            `
            SELECT ts AS time, event AS title,
              concat(event, if(reason != '', concat(' (', reason, ')'), ''), if(participant != '', concat(' · ', substring(participant, 1, 8)), '')) AS text,
              event AS tags
            FROM call_events
            WHERE $__timeFilter(ts) AND ${CALL} AND (participant = '' OR ${PARTICIPANTS})
              AND event NOT IN ('producer.score', 'consumer.score', 'consumer.layers', 'quality.issue', 'quality.resolved')
            ORDER BY ts`,
            ['time', 'title', 'text', 'tags'],
          ),
        ),
    )
    .annotation(
      new AnnotationQueryBuilder()
        .name('Quality issues')
        .datasource(CLICKHOUSE_DS)
        .enable(true)
        .iconColor('#F2495C')
        .target(
          // One region per issue (src/diagnosis): from its quality.issue event to its quality.resolved one, or to
          // now while it lasts. Shown when the participant whose network it is, or one who suffered from it, is
          // chosen.
          cat.annotation(
            'Quality issues',
            `
            SELECT min(ts) AS time,
              if(countIf(event = 'quality.resolved') > 0, maxIf(ts, event = 'quality.resolved'), now64(3, 'UTC')) AS timeEnd,
              concat(replaceAll(anyIf(attrs['issue'], event = 'quality.issue'), '_', ' '), ' · ', substring(anyIf(participant, event = 'quality.issue'), 1, 8)) AS title,
              concat(replaceAll(anyIf(attrs['issue'], event = 'quality.issue'), '_', ' '), ' on the ', anyIf(attrs['direction'], event = 'quality.issue'),
                ' of ', substring(anyIf(participant, event = 'quality.issue'), 1, 8), ' (', anyIf(attrs['kind'], event = 'quality.issue'), ')',
                if(anyIf(attrs['loss_pct'], event = 'quality.issue') != '', concat(': ', anyIf(attrs['loss_pct'], event = 'quality.issue'), '% lost'), ''),
                '; affected: ', toString(length(splitByChar(',', anyIf(attrs['affected'], event = 'quality.issue')))),
                if(countIf(event = 'quality.resolved') > 0, concat(' · ', anyIf(reason, event = 'quality.resolved')), ' · ongoing')) AS text,
              anyIf(attrs['issue'], event = 'quality.issue') AS tags
            FROM call_events
            WHERE $__timeFilter(ts) AND ${CALL} AND event IN ('quality.issue', 'quality.resolved')
              AND (${PARTICIPANTS} OR hasAny(splitByChar(',', attrs['affected']), [\${participant:sqlstring}]))
            GROUP BY attrs['issue_id']
            HAVING countIf(event = 'quality.issue') > 0
            ORDER BY time`,
            ['time', 'timeEnd', 'title', 'text', 'tags'],
          ),
        ),
    )
    .withRow(new RowBuilder('Call'))
    .withPanel(
      tablePanel(cat, {
        title: 'Participants',
        description: 'One row per participant (pseudonym): duration and quality, from call_summary.',
        sql: `
          SELECT participant, started, ended, round(duration_s) AS duration_s, samples,
            round(mos_mean, 2) AS mos_mean, round(mos_p05, 2) AS mos_p05,
            round(100 * loss_p95, 2) AS loss_p95, round(jitter_p95_ms, 1) AS jitter_p95_ms, round(rtt_p95_ms, 1) AS rtt_p95_ms
          FROM call_summary
          WHERE ${CALL} AND ${PARTICIPANTS}
          ORDER BY started`,
        columns: [
          'participant',
          'started',
          'ended',
          'duration_s',
          'samples',
          'mos_mean',
          'mos_p05',
          'loss_p95',
          'jitter_p95_ms',
          'rtt_p95_ms',
        ],
        units: { duration_s: 's', loss_p95: 'percent', jitter_p95_ms: 'ms', rtt_p95_ms: 'ms' },
        w: 24,
        h: 6,
      }),
    )
    .withPanel(
      tablePanel(cat, {
        title: 'Tracks',
        description:
          'Every producer (inbound: participant to SFU) and consumer (outbound: SFU to participant) of the call.',
        sql: `
          SELECT track_id, participant, kind, direction, source, codec, ssrc, min(ts) AS first_sample, max(ts) AS last_sample,
            round(avg(bitrate_bps)) AS mean_bitrate_bps, sum(packets) AS packets, sum(packets_lost) AS packets_lost
          FROM track_stats
          WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS}
          GROUP BY track_id, participant, kind, direction, source, codec, ssrc
          ORDER BY participant, kind, direction`,
        columns: [
          'track_id',
          'participant',
          'kind',
          'direction',
          'source',
          'codec',
          'ssrc',
          'first_sample',
          'last_sample',
          'mean_bitrate_bps',
          'packets',
          'packets_lost',
        ],
        units: { mean_bitrate_bps: 'bps' },
        w: 24,
        h: 7,
      }),
    )
    .withRow(new RowBuilder('Tracks over time (SFU view, track_stats)'))
    .withPanel(perTrack('Bitrate per track', 'avg(bitrate_bps)', 'bitrate', { unit: 'bps', min: 0 }))
    .withPanel(perTrack('Packet loss per track', '100 * avg(loss_fraction)', 'loss_pct', { unit: 'percent', min: 0 }))
    .withPanel(
      perTrack('Jitter per track', 'avg(jitter_ms)', 'jitter', { unit: 'ms', min: 0, where: 'jitter_ms IS NOT NULL' }),
    )
    .withPanel(perTrack('RTT per track', 'avg(rtt_ms)', 'rtt', { unit: 'ms', min: 0, where: 'rtt_ms IS NOT NULL' }))
    .withPanel(
      perTrack('Score per track', 'avg(score)', 'mean_score', {
        description: 'mediasoup’s 0–10 transmission score.',
        min: 0,
        max: 10,
      }),
    )
    .withPanel(
      perTrack('Quality per track (audio MOS, video score)', 'avg(coalesce(mos, video_quality))', 'quality', {
        description: 'Audio: MOS from the E-model; video: the 1–5 video quality heuristic.',
        min: 1,
        max: 5,
        where: '(mos IS NOT NULL OR video_quality IS NOT NULL)',
      }),
    )
    .withRow(new RowBuilder('Browser view (client_stats) beside the SFU view (track_stats)'))
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Jitter: SFU and browser',
        description:
          'The same tracks measured by the SFU (sfu …) and reported by the browser’s getStats() (browser …), by SSRC.',
        sql: `
          SELECT time, series, jitter FROM (
            SELECT $__timeInterval(ts) AS time, concat('sfu ', kind, ' ', direction, ' ssrc ', toString(ssrc)) AS series, avg(jitter_ms) AS jitter
            FROM track_stats
            WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS} AND jitter_ms IS NOT NULL
            GROUP BY time, series
            UNION ALL
            SELECT $__timeInterval(ts) AS time, concat('browser ', kind, ' ', direction, ' ssrc ', toString(ssrc)) AS series, avg(jitter_ms) AS jitter
            FROM client_stats
            WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS} AND jitter_ms IS NOT NULL
            GROUP BY time, series
          ) ORDER BY time`,
        columns: ['time', 'series', 'jitter'],
        unit: 'ms',
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'RTT: SFU and browser',
        description:
          'Round-trip time per participant as the SFU measures it (RTCP) and as the browser’s selected candidate pair reports it.',
        sql: `
          SELECT time, series, rtt FROM (
            SELECT $__timeInterval(ts) AS time, concat('sfu ', substring(participant, 1, 8)) AS series, avg(rtt_ms) AS rtt
            FROM track_stats
            WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS} AND rtt_ms IS NOT NULL
            GROUP BY time, series
            UNION ALL
            SELECT $__timeInterval(ts) AS time, concat('browser ', substring(participant, 1, 8)) AS series, avg(rtt_ms) AS rtt
            FROM client_stats
            WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS} AND rtt_ms IS NOT NULL
            GROUP BY time, series
          ) ORDER BY time`,
        columns: ['time', 'series', 'rtt'],
        unit: 'ms',
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Browser: jitter-buffer delay',
        description:
          'What the receiving browser reports: mean jitter-buffer delay per received track. Freezes are in the table beside.',
        sql: `
          SELECT $__timeInterval(ts) AS time, concat(substring(participant, 1, 8), ' ', kind, ' ssrc ', toString(ssrc)) AS track,
            avg(jitter_buffer_delay_ms) AS jitter_buffer_delay
          FROM client_stats
          WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS} AND direction = 'inbound' AND jitter_buffer_delay_ms IS NOT NULL
          GROUP BY time, track ORDER BY time`,
        columns: ['time', 'track', 'jitter_buffer_delay'],
        unit: 'ms',
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      tablePanel(cat, {
        title: 'SFU and browser, track by track',
        description:
          'Each SFU track beside the browser’s report of the same track (they share the producer or consumer id). Packet counts: the SFU sums its intervals, the browser’s counters are cumulative.',
        sql: `
          SELECT s.participant AS participant, s.kind AS kind, s.direction AS sfu_direction, s.track_id AS track_id,
            s.packets AS sfu_packets, s.lost AS sfu_packets_lost, s.jitter AS sfu_jitter_ms,
            c.packets AS browser_packets, c.lost AS browser_packets_lost, c.jitter AS browser_jitter_ms,
            c.jbd AS browser_jitter_buffer_ms, c.freezes AS browser_freezes, c.path AS browser_path
          FROM (
            SELECT participant, kind, direction, track_id, sum(packets) AS packets, sum(packets_lost) AS lost, round(avg(jitter_ms), 1) AS jitter
            FROM track_stats
            WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS}
            GROUP BY participant, kind, direction, track_id
          ) AS s
          LEFT JOIN (
            SELECT if(direction = 'inbound', consumer_id, producer_id) AS track_id, max(packets) AS packets, max(packets_lost) AS lost,
              round(avg(jitter_ms), 1) AS jitter, round(avg(jitter_buffer_delay_ms), 1) AS jbd, max(freeze_count) AS freezes,
              concat(any(protocol), if(any(candidate_type) != '', concat('/', any(candidate_type)), '')) AS path
            FROM client_stats
            WHERE $__timeFilter(ts) AND ${CALL}
            GROUP BY track_id
          ) AS c ON s.track_id = c.track_id
          ORDER BY participant, kind, sfu_direction`,
        columns: [
          'participant',
          'kind',
          'sfu_direction',
          'track_id',
          'sfu_packets',
          'sfu_packets_lost',
          'sfu_jitter_ms',
          'browser_packets',
          'browser_packets_lost',
          'browser_jitter_ms',
          'browser_jitter_buffer_ms',
          'browser_freezes',
          'browser_path',
        ],
        w: 12,
        h: 8,
      }),
    )
    .withRow(new RowBuilder('Events'))
    .withPanel(
      tablePanel(cat, {
        title: 'Join funnel',
        description:
          'Each join of the chosen participants: milliseconds from the join request to each step (token issue and WebSocket opening come before it, hence negative), and how it ended. A refused join stops at "joined" with its error code.',
        sql: `
          SELECT ts AS join_start, substring(participant, 1, 8) AS who, outcome, failed_step, error_code, reason,
            token_issued_ms, ws_open_ms, joined_ms, send_connected_ms, recv_connected_ms, first_rtp_ms, first_frame_ms, first_audio_ms
          FROM join_funnel
          WHERE $__timeFilter(ts) AND ${CALL} AND ${PARTICIPANTS}
          ORDER BY ts`,
        columns: ['join_start', 'who', 'outcome', 'failed_step', 'error_code', 'reason', ...JOIN_STEPS],
        units: Object.fromEntries(JOIN_STEPS.map((c) => [c, 'ms'])),
        w: 24,
        h: 6,
      }),
    )
    .withPanel(
      tablePanel(cat, {
        title: 'Call events',
        description: 'Every event of the call (score and layer changes left out), oldest first.',
        sql: `
          SELECT ts, event, substring(participant, 1, 8) AS who, object_id, reason, toString(attrs) AS details
          FROM call_events
          WHERE $__timeFilter(ts) AND ${CALL} AND (participant = '' OR ${PARTICIPANTS})
            AND event NOT IN ('producer.score', 'consumer.score', 'consumer.layers')
          ORDER BY ts
          LIMIT 1000`,
        columns: ['ts', 'event', 'who', 'object_id', 'reason', 'details'],
        w: 24,
        h: 9,
      }),
    );
  return { dashboard: finish(d), catalog: cat };
}
