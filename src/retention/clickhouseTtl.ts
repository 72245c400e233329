import type { ClickHouseClient } from '@clickhouse/client';
import { sqlString } from '../clickhouse/index.js';
import type { TenantConfig } from '../config/index.js';
import { policyFor, type DataCategory, type RetentionPolicy } from './policy.js';

/** Tables whose rows carry identities (pseudonyms), by retention category. */
const TABLES: Partial<Record<DataCategory, { table: string; identityColumns: string[] }>> = {
  track_stats: { table: 'track_stats', identityColumns: ['participant', 'peer_id'] },
  client_stats: { table: 'client_stats', identityColumns: ['participant', 'peer_id'] },
  call_events: { table: 'call_events', identityColumns: ['participant', 'peer_id'] },
};

/**
 * Per-tenant retention as ClickHouse TTLs. `delete` is a table TTL that drops
 * expired rows; `anonymize` is a column TTL that resets the identity columns
 * to their default (empty) once expired, keeping the measurements.
 * The duration is chosen per row from its tenant.
 */
export function ttlStatements(db: string, policies: Map<string, RetentionPolicy>, tenants: TenantConfig[], onCluster = ''): string[] {
  const out: string[] = [];
  const fallback = policies.get('default')!;
  for (const [category, t] of Object.entries(TABLES) as Array<[DataCategory, { table: string; identityColumns: string[] }]>) {
    const byAction = (action: 'delete' | 'anonymize') => {
      const ids: string[] = [];
      const secs: number[] = [];
      for (const tenant of tenants) {
        const rule = policyFor(policies, tenant.id, tenant.retentionPolicy).categories[category];
        ids.push(sqlString(tenant.id));
        secs.push(rule.action === action ? rule.duration : 0);
      }
      const def = fallback.categories[category].action === action ? fallback.categories[category].duration : 0;
      // 0 means "not this action for that tenant": pushed 1000 years out.
      const far = 1000 * 31_536_000;
      return `toDateTime(ts) + toIntervalSecond(if(transform(tenant, [${ids.join(', ')}], [${secs.join(', ')}], ${def}) = 0, ${far}, transform(tenant, [${ids.join(', ')}], [${secs.join(', ')}], ${def})))`;
    };
    out.push(`ALTER TABLE ${db}.${t.table}${onCluster} MODIFY TTL ${byAction('delete')}`);
    for (const col of t.identityColumns) out.push(`ALTER TABLE ${db}.${t.table}${onCluster} MODIFY COLUMN ${col} String TTL ${byAction('anonymize')}`);
  }
  return out;
}

export async function applyClickHouseTtls(client: ClickHouseClient, db: string, policies: Map<string, RetentionPolicy>, tenants: TenantConfig[], onCluster = ''): Promise<void> {
  for (const q of ttlStatements(db, policies, tenants, onCluster)) await client.command({ query: q });
}
