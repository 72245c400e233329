/**
 * Retention: the YAML policies in retention-policies/ (schema published there),
 * applied as ClickHouse TTLs per tenant and category, as S3 Object Lock on
 * recordings (by the recording capability), and by a sweeper that deletes
 * expired recordings.
 *
 * Decorates `retention` ({ policies, reload }). A policy set that would shorten
 * a COMPLIANCE lock already promised is refused, at start as at reload; the
 * last applied set is kept in DATA_DIR/retention-applied.json to know.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../files.js';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { applyClickHouseTtls } from './clickhouseTtl.js';
import { complianceShortenings, loadPolicies, PolicyError, type RetentionPolicy } from './policy.js';

export { loadPolicies, complianceShortenings, policyFor, PolicyError, DATA_CATEGORIES, type RetentionPolicy } from './policy.js';
export { Sweeper } from './Sweeper.js';
export { ttlStatements, applyClickHouseTtls } from './clickhouseTtl.js';

export interface Retention {
  policies(): Map<string, RetentionPolicy>;
  /** Re-reads the policy folder; throws PolicyError (and keeps the current set) if refused. */
  reload(): Promise<Map<string, RetentionPolicy>>;
}

declare module 'fastify' {
  interface FastifyInstance {
    retention: Retention;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const appliedFile = path.join(app.config.dataDir, 'retention-applied.json');
    const readApplied = (): Map<string, RetentionPolicy> => {
      try {
        return new Map((JSON.parse(readFileSync(appliedFile, 'utf8')) as RetentionPolicy[]).map((p) => [p.name, p]));
      } catch {
        return new Map();
      }
    };
    const log = app.log.child({ component: 'retention' });
    let current = new Map<string, RetentionPolicy>();
    const reload = async () => {
      const next = loadPolicies(app.config.retention.policiesDir);
      const problems = complianceShortenings(readApplied(), next);
      if (problems.length) throw new PolicyError(`retention policies refused:\n  - ${problems.join('\n  - ')}`);
      if (app.clickhouse.schemaReady) await applyClickHouseTtls(app.clickhouse.client, app.clickhouse.database, next, app.tenants.list());
      writeFileAtomicSync(appliedFile, JSON.stringify([...next.values()], null, 2));
      current = next;
      log.info({ policies: [...next.keys()], dir: app.config.retention.policiesDir }, 'retention policies loaded');
      return next;
    };
    await reload();
    app.tenants.observer.on('changed', () => {
      if (app.clickhouse.schemaReady) void applyClickHouseTtls(app.clickhouse.client, app.clickhouse.database, current, app.tenants.list()).catch((err) => log.error({ err }, 'could not apply TTLs'));
    });
    app.decorate('retention', { policies: () => current, reload });
  },
  { name: 'vigie-retention', dependencies: ['vigie-core', 'vigie-clickhouse'] },
);
