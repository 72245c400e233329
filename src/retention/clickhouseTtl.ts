import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { sqlString } from '../clickhouse/index.js';
import { TABLE_RULES, type TtlRule } from './inventory.js';
import { policyFor, type RetentionPolicy } from './policy.js';

/**
 * "Never" for a TTL: 60 years. ClickHouse TTLs are DateTime (seconds up to
 * 2106), so a longer interval would wrap around to an earlier date.
 */
const NEVER = 60 * 31_536_000;

export interface TableTtl {
  table: string;
  statements: string[];
  /** Identifies the statements; kept in the table's comment so unchanged TTLs are not re-applied. */
  fingerprint: string;
}

/**
 * Per-tenant retention as ClickHouse TTLs, for every table with a TTL rule in
 * the inventory. `delete` is a table TTL that drops expired rows; `anonymize`
 * is a column TTL that resets the identity columns to '' once expired, keeping
 * the measurements. The duration is chosen per row from its tenant; rows of a
 * tenant no longer configured follow the "default" policy.
 */
export function ttlStatements(
  db: string,
  policies: Map<string, RetentionPolicy>,
  tenants: Array<{ id: string; retentionPolicy?: string }>,
  onCluster = '',
): TableTtl[] {
  const fallback = policies.get('default')!;
  const ids = tenants.map((t) => sqlString(t.id)).join(', ');
  const rules = tenants.map((t) => policyFor(policies, t.id, t.retentionPolicy));
  const out: TableTtl[] = [];
  for (const [table, r] of Object.entries(TABLE_RULES)) {
    if (!('category' in r)) continue;
    const rule = r as TtlRule;
    const seconds = (action: 'delete' | 'anonymize', p: RetentionPolicy) => {
      const c = p.categories[rule.category];
      return c.action === action ? Math.min(c.duration, NEVER) : NEVER;
    };
    // Built as one line: the statements' text is fingerprinted (a changed text would alter the tables again).
    const ttl = (action: 'delete' | 'anonymize') => {
      const durations = rules.map((p) => seconds(action, p)).join(', ');
      const otherwise = seconds(action, fallback);
      return `toDateTime(${rule.ts}) + toIntervalSecond(transform(tenant, [${ids}], [${durations}], ${otherwise}))`;
    };
    const statements = [`ALTER TABLE ${db}.${table}${onCluster} MODIFY TTL ${ttl('delete')}`];
    for (const col of rule.identityColumns ?? [])
      statements.push(`ALTER TABLE ${db}.${table}${onCluster} MODIFY COLUMN ${col} String TTL ${ttl('anonymize')}`);
    out.push({
      table,
      statements,
      fingerprint: createHash('sha256').update(statements.join(';\n')).digest('hex').slice(0, 16),
    });
  }
  return out;
}

const COMMENT_PREFIX = 'vigie-ttl:';

/**
 * Applies the TTLs whose statements changed since they were last applied (the
 * fingerprint is kept in each table's comment): a restart, or a tenant change
 * that does not touch retention, costs no ALTER and no merge. Returns the
 * tables altered.
 */
export async function applyClickHouseTtls(
  client: ClickHouseClient,
  db: string,
  policies: Map<string, RetentionPolicy>,
  tenants: Array<{ id: string; retentionPolicy?: string }>,
  onCluster = '',
): Promise<string[]> {
  const rs = await client.query({
    query: `SELECT name, comment FROM system.tables WHERE database = {db:String}`,
    query_params: { db },
    format: 'JSONEachRow',
  });
  const comments = new Map((await rs.json<{ name: string; comment: string }>()).map((t) => [t.name, t.comment]));
  const altered: string[] = [];
  for (const t of ttlStatements(db, policies, tenants, onCluster)) {
    if (comments.get(t.table) === `${COMMENT_PREFIX}${t.fingerprint}`) continue;
    for (const q of t.statements) await client.command({ query: q });
    // Written last: a run that dies half way leaves the old fingerprint, and the next run applies again.
    const comment = sqlString(`${COMMENT_PREFIX}${t.fingerprint}`);
    await client.command({ query: `ALTER TABLE ${db}.${t.table}${onCluster} MODIFY COMMENT ${comment}` });
    altered.push(t.table);
  }
  return altered;
}
