/**
 * 4. Recording and compliance: recordings per day and their size; retention
 * deletions and legal holds; audit events; data-subject requests.
 *
 * `recordings` and `retention_deletions` are Vigie tables (migration 3).
 * `audit_log` and `dsar_requests` are not created by Vigie yet: their expected
 * shape is in dashboards/future-tables.sql, which the test creates.
 * `recordings` is a ReplacingMergeTree (a row per version), so it is read FINAL.
 */
import { RowBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import { QueryCatalog } from '../lib/clickhouse.js';
import {
  finish,
  statPanel,
  tablePanel,
  TENANTS,
  tenantVariable,
  timeSeriesPanel,
  vigieDashboard,
} from '../lib/panels.js';

export const COMPLIANCE_UID = 'vigie-compliance';

export function recordingCompliance() {
  const cat = new QueryCatalog(COMPLIANCE_UID);
  const d = vigieDashboard(
    COMPLIANCE_UID,
    'Vigie · Recording and compliance',
    'Recordings and their retention, legal holds, deletions, the audit trail and data-subject requests: evidence for the DPO.',
  )
    .withVariable(
      tenantVariable(
        cat,
        `
          SELECT DISTINCT tenant FROM (
            SELECT tenant FROM recordings
            UNION ALL SELECT tenant FROM audit_log WHERE $__timeFilter(ts)
            UNION ALL SELECT tenant FROM dsar_requests
            UNION ALL SELECT tenant FROM retention_deletions WHERE $__timeFilter(ts)
          ) WHERE tenant != '' ORDER BY tenant`,
      ),
    )
    .withRow(new RowBuilder('Recordings'))
    .withPanel(
      statPanel(cat, {
        title: 'Stored now',
        description: 'Recordings kept today (not deleted), whatever their date, and their size.',
        sql: `
          SELECT count() AS recordings_stored, sum(size_bytes) AS bytes_stored
          FROM recordings FINAL
          WHERE ${TENANTS} AND deleted_at IS NULL AND status = 'ready'`,
        columns: ['recordings_stored', 'bytes_stored'],
        units: { bytes_stored: 'bytes' },
        w: 6,
        h: 4,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Legal holds',
        description: 'Recordings on legal hold now: the retention sweeper will not delete them.',
        sql: `SELECT countIf(legal_hold = 1) AS legal_holds FROM recordings FINAL WHERE ${TENANTS} AND deleted_at IS NULL`,
        columns: ['legal_holds'],
        w: 6,
        h: 4,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Expiring within 30 days',
        sql: `
          SELECT countIf(retain_until <= now() + INTERVAL 30 DAY) AS expiring_30d
          FROM recordings FINAL
          WHERE ${TENANTS} AND deleted_at IS NULL AND legal_hold = 0 AND retain_until IS NOT NULL`,
        columns: ['expiring_30d'],
        w: 6,
        h: 4,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Past retention, not deleted',
        description:
          'Recordings whose retention ended more than a day ago, not on hold and not deleted: the sweeper should have taken them.',
        sql: `
          SELECT countIf(retain_until < now() - INTERVAL 1 DAY) AS overdue
          FROM recordings FINAL
          WHERE ${TENANTS} AND deleted_at IS NULL AND legal_hold = 0 AND retain_until IS NOT NULL`,
        columns: ['overdue'],
        thresholds: [
          { value: null, color: 'green' },
          { value: 1, color: 'red' },
        ],
        w: 6,
        h: 4,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Recordings per day',
        description: 'Recording files started each day, and the hours they hold (failed uploads left out).',
        sql: `
          SELECT toStartOfDay(started_at) AS time, count() AS recordings, round(sum(duration_s) / 3600, 2) AS recorded_hours
          FROM recordings FINAL
          WHERE $__timeFilter(started_at) AND ${TENANTS} AND status != 'failed'
          GROUP BY time ORDER BY time`,
        columns: ['time', 'recordings', 'recorded_hours'],
        bars: true,
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Recorded volume per day',
        description: 'Bytes recorded each day.',
        sql: `
          SELECT toStartOfDay(started_at) AS time, sum(size_bytes) AS recorded_bytes
          FROM recordings FINAL
          WHERE $__timeFilter(started_at) AND ${TENANTS} AND status != 'failed'
          GROUP BY time ORDER BY time`,
        columns: ['time', 'recorded_bytes'],
        unit: 'bytes',
        bars: true,
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      tablePanel(cat, {
        title: 'Legal holds and upcoming expiries',
        description: 'Recordings on legal hold, and those whose retention ends within 30 days.',
        sql: `
          SELECT id, tenant, room, call_id, started_at, round(duration_s) AS duration_s, size_bytes, storage_target,
            retain_until, legal_hold, dateDiff('day', now(), retain_until) AS days_left
          FROM recordings FINAL
          WHERE ${TENANTS} AND deleted_at IS NULL AND (legal_hold = 1 OR retain_until <= now() + INTERVAL 30 DAY)
          ORDER BY legal_hold DESC, retain_until ASC
          LIMIT 200`,
        columns: [
          'id',
          'tenant',
          'room',
          'call_id',
          'started_at',
          'duration_s',
          'size_bytes',
          'storage_target',
          'retain_until',
          'legal_hold',
          'days_left',
        ],
        units: { duration_s: 's', size_bytes: 'bytes' },
        w: 24,
        h: 8,
      }),
    )
    .withRow(new RowBuilder('Retention'))
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Retention deletions per day',
        description: 'Objects and rows deleted by retention policies, by data category.',
        sql: `
          SELECT toStartOfDay(ts) AS time, category, count() AS deletions
          FROM retention_deletions
          WHERE $__timeFilter(ts) AND ${TENANTS}
          GROUP BY time, category ORDER BY time`,
        columns: ['time', 'category', 'deletions'],
        bars: true,
        stack: true,
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      tablePanel(cat, {
        title: 'Retention deletions',
        description: 'The latest deletions: what was deleted (object and version), and under which policy.',
        sql: `
          SELECT ts, tenant, category, object_id, version_id, policy
          FROM retention_deletions
          WHERE $__timeFilter(ts) AND ${TENANTS}
          ORDER BY ts DESC
          LIMIT 200`,
        columns: ['ts', 'tenant', 'category', 'object_id', 'version_id', 'policy'],
        w: 12,
        h: 8,
      }),
    )
    .withRow(new RowBuilder('Audit trail'))
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Audit events',
        description: 'Audited actions per interval, by action.',
        sql: `
          SELECT $__timeInterval(ts) AS time, action, count() AS events
          FROM audit_log
          WHERE $__timeFilter(ts) AND ${TENANTS}
          GROUP BY time, action ORDER BY time`,
        columns: ['time', 'action', 'events'],
        bars: true,
        stack: true,
        min: 0,
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Refused or failed actions',
        description: 'Audited actions whose result was not ok.',
        sql: `SELECT countIf(result != 'ok') AS not_ok FROM audit_log WHERE $__timeFilter(ts) AND ${TENANTS}`,
        columns: ['not_ok'],
        w: 4,
        h: 8,
      }),
    )
    .withPanel(
      statPanel(cat, {
        title: 'Audit sequence gaps',
        description:
          'Missing sequence numbers in each tenant’s audit trail over the period (the trail numbers every entry; a gap means an entry is missing).',
        sql: `
          SELECT sum(toInt64(max_seq) - toInt64(min_seq) + 1 - entries) AS seq_gaps
          FROM (
            SELECT tenant, min(seq) AS min_seq, max(seq) AS max_seq, uniqExact(seq) AS entries
            FROM audit_log
            WHERE $__timeFilter(ts) AND ${TENANTS}
            GROUP BY tenant
          )`,
        columns: ['seq_gaps'],
        thresholds: [
          { value: null, color: 'green' },
          { value: 1, color: 'red' },
        ],
        w: 8,
        h: 8,
      }),
    )
    .withPanel(
      tablePanel(cat, {
        title: 'Audit log',
        description: 'The latest audited actions. Actors are key ids or roles, never identities.',
        sql: `
          SELECT ts, tenant, seq, actor, action, target, result
          FROM audit_log
          WHERE $__timeFilter(ts) AND ${TENANTS}
          ORDER BY ts DESC, seq DESC
          LIMIT 500`,
        columns: ['ts', 'tenant', 'seq', 'actor', 'action', 'target', 'result'],
        w: 24,
        h: 9,
      }),
    )
    .withRow(new RowBuilder('Data-subject requests'))
    .withPanel(
      statPanel(cat, {
        title: 'Open requests',
        description: 'Access and erasure requests not yet completed or rejected.',
        sql: `
          SELECT countIf(last_status NOT IN ('completed', 'rejected')) AS open_requests,
            countIf(last_status NOT IN ('completed', 'rejected') AND received < now() - INTERVAL 30 DAY) AS overdue_30d
          FROM (
            SELECT request_id, min(ts) AS received, argMax(status, ts) AS last_status
            FROM dsar_requests WHERE ${TENANTS} GROUP BY request_id
          )`,
        columns: ['open_requests', 'overdue_30d'],
        w: 6,
        h: 8,
      }),
    )
    .withPanel(
      timeSeriesPanel(cat, {
        title: 'Requests received per day',
        sql: `
          SELECT toStartOfDay(received) AS time, request_kind AS kind, count() AS requests
          FROM (SELECT request_id, any(kind) AS request_kind, min(ts) AS received FROM dsar_requests WHERE ${TENANTS} GROUP BY request_id)
          WHERE received >= $__fromTime AND received <= $__toTime
          GROUP BY time, kind ORDER BY time`,
        columns: ['time', 'kind', 'requests'],
        bars: true,
        stack: true,
        min: 0,
        w: 6,
        h: 8,
      }),
    )
    .withPanel(
      tablePanel(cat, {
        title: 'Requests',
        description: 'Each request, its current status and how long it has been open (GDPR: one month to answer).',
        sql: `
          SELECT request_id, request_tenant AS tenant, request_kind AS kind, received, last_update, last_status AS status,
            dateDiff('day', received, if(last_status IN ('completed', 'rejected'), last_update, now())) AS days_open
          FROM (
            SELECT request_id, any(tenant) AS request_tenant, any(kind) AS request_kind, min(ts) AS received, max(ts) AS last_update, argMax(status, ts) AS last_status
            FROM dsar_requests WHERE ${TENANTS} GROUP BY request_id
          )
          WHERE last_update >= $__fromTime OR last_status NOT IN ('completed', 'rejected')
          ORDER BY received DESC
          LIMIT 200`,
        columns: ['request_id', 'tenant', 'kind', 'received', 'last_update', 'status', 'days_open'],
        w: 12,
        h: 8,
      }),
    );
  return { dashboard: finish(d), catalog: cat };
}
