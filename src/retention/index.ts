/**
 * Retention: the YAML policies in retention-policies/ (schema published there),
 * applied to everything the gateway stores (src/retention/inventory.ts): as
 * ClickHouse TTLs per tenant and category, as S3 Object Lock on recordings (by
 * the recording capability) and a sweeper that deletes expired recordings, and
 * by a sweep of the files under DATA_DIR (exports, spool) and of the webhook outbox.
 *
 * Decorates `retention` ({ policies, policyOf, reload }). A tenant that names
 * an unknown policy is refused, at start as through the admin API. A policy
 * set or a tenant change that would shorten a COMPLIANCE lock already promised
 * to a tenant is refused too; the promises are kept in PostgreSQL (table
 * `retention_promises`, shared by every node; the guard file of the version
 * before, DATA_DIR/retention-applied.json, is imported once), and their loss
 * while COMPLIANCE-locked recordings exist stops the start rather than let a
 * lock be shortened.
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { VigieError } from '../errors.js';
import { applyClickHouseTtls } from './clickhouseTtl.js';
import { DataDirSweeper } from './DataDirSweeper.js';
import { migrateStore, importLegacyFile } from '../store/index.js';
import { complianceShortenings, keepPromises, parseGuardFile, readPromises, RETENTION_MIGRATIONS } from './guard.js';
import { loadPolicies, policyFor, PolicyError, type RetentionPolicy } from './policy.js';

export { loadPolicies, policyFor, PolicyError, DATA_CATEGORIES, ANONYMIZABLE, type RetentionPolicy } from './policy.js';
export { complianceShortenings, RETENTION_MIGRATIONS, type PromisedLock } from './guard.js';
export { Sweeper } from './Sweeper.js';
export { DataDirSweeper } from './DataDirSweeper.js';
export { ttlStatements, applyClickHouseTtls } from './clickhouseTtl.js';
export { TABLE_RULES, STORE_TABLE_RULES, FILE_RULES, fileRule, expireRow } from './inventory.js';

export interface Retention {
  policies(): Map<string, RetentionPolicy>;
  /** The policy that applies to a tenant ("default" for a tenant no longer configured). */
  policyOf(tenant: string): RetentionPolicy;
  /** Re-reads the policy folder; throws PolicyError (and keeps the current set) if refused. */
  reload(): Promise<Map<string, RetentionPolicy>>;
  /**
   * Applies the ClickHouse TTLs that changed; returns the tables altered (none when ClickHouse is not ready, or
   * when another node holds the TTL singleton).
   */
  applyTtls(): Promise<string[]>;
  files: DataDirSweeper;
}

declare module 'fastify' {
  interface FastifyInstance {
    retention: Retention;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const guardFile = path.join(app.config.dataDir, 'retention-applied.json');
    const log = app.log.child({ component: 'retention' });
    const ch = app.clickhouse;

    await migrateStore(app.db, 'retention', RETENTION_MIGRATIONS, log);
    const imported = await importLegacyFile(guardFile, async (content) => {
      const locks = parseGuardFile(guardFile, content, app.tenants.list());
      await keepPromises(app.db, locks);
      return locks.size;
    });
    if (imported) log.info({ tenants: imported.rows, file: guardFile }, 'retention guard imported into PostgreSQL');

    /** No promise although COMPLIANCE-locked recordings exist: the promises were lost, not never made. */
    const checkMissingGuard = async () => {
      const rs = await ch.client.query({
        query: `SELECT DISTINCT tenant FROM ${ch.database}.recordings WHERE lock_mode = 'compliance'`,
        format: 'JSONEachRow',
      });
      const tenants = (await rs.json<{ tenant: string }>()).map((r) => r.tenant);
      if (tenants.length)
        throw new PolicyError(
          `the retention promises (PostgreSQL table retention_promises) are missing, but tenants ` +
            `${tenants.join(', ')} have COMPLIANCE-locked recordings: restore the control plane from a backup ` +
            `(it records the locks promised to each tenant)`,
        );
    };
    let promised = await readPromises(app.db);
    if (!promised.size) {
      if (ch.schemaReady) await checkMissingGuard();
      else
        ch.observer.once(
          'ready',
          () =>
            void checkMissingGuard().catch((err) =>
              log.fatal(
                { reason: (err as Error).message },
                'retention promises lost; COMPLIANCE locks are not protected against shortening',
              ),
            ),
        );
    }

    // TTLs are table-wide: one node applies them (the others would repeat the same ALTERs and merges).
    const ttlLock = await app.nodes.singleton('retention-ttl');
    let current = new Map<string, RetentionPolicy>();
    const policyOf = (tenant: string) => policyFor(current, tenant, app.tenants.get(tenant)?.retentionPolicy);
    // One ALTER sequence at a time: a tenant change during a reload must not interleave its statements.
    let ttlChain: Promise<unknown> = Promise.resolve();
    const applyTtls = (): Promise<string[]> => {
      const run = ttlChain.then(async () => {
        if (!ch.schemaReady || !ttlLock.held) return [];
        const altered = await applyClickHouseTtls(
          ch.client,
          ch.database,
          current,
          app.tenants.list(),
          app.config.clickhouse.cluster ? ` ON CLUSTER '${app.config.clickhouse.cluster}'` : '',
        );
        if (altered.length) log.info({ tables: altered }, 'retention TTLs applied');
        return altered;
      });
      ttlChain = run.catch(() => undefined);
      return run;
    };
    const commit = (next: Map<string, RetentionPolicy>, tenants = app.tenants.list()) => {
      const { problems, locks } = complianceShortenings(promised!, next, tenants);
      if (problems.length) throw new PolicyError(`retention policies refused:\n  - ${problems.join('\n  - ')}`);
      return locks;
    };
    const reload = async () => {
      const next = loadPolicies(app.config.retention.policiesDir);
      // Another node may have promised more since: checked against what every node promised.
      promised = await readPromises(app.db);
      const locks = commit(next);
      await keepPromises(app.db, locks);
      promised = locks;
      current = next;
      log.info({ policies: [...next.keys()], dir: app.config.retention.policiesDir }, 'retention policies loaded');
      await applyTtls();
      return next;
    };
    await reload();

    // A tenant created or changed must name a policy that exists, and keep the locks promised to it.
    app.tenants.addCheck((tenant) => {
      try {
        commit(current, [...app.tenants.list().filter((t) => t.id !== tenant.id), tenant]);
      } catch (err) {
        throw new VigieError('INVALID_REQUEST', (err as Error).message);
      }
    });
    app.tenants.observer.on('changed', () => {
      const keeping = (async () => {
        promised = await readPromises(app.db);
        promised = commit(current);
        await keepPromises(app.db, promised);
      })();
      keeping.catch((err) => log.error({ err }, 'retention promises not updated after a tenant change'));
      applyTtls().catch((err) => log.error({ err }, 'could not apply TTLs'));
    });
    // The node that takes the job over (its holder died) applies what may have changed since.
    ttlLock.observer.on('acquired', () => void applyTtls().catch((err) => log.error({ err }, 'could not apply TTLs')));
    // A remote ClickHouse that was down at start gets its TTLs once it is up.
    ch.observer.on('ready', () => void applyTtls().catch((err) => log.error({ err }, 'could not apply TTLs')));

    const files = new DataDirSweeper({
      dataDir: app.config.dataDir,
      policyOf,
      writer: app.telemetry?.writer,
      journal: app.webhooks?.queue,
      log,
    });
    files.start(app.config.retention.sweepIntervalSeconds);
    app.addHook('onClose', async () => files.stop());
    app.decorate('retention', { policies: () => current, policyOf, reload, applyTtls, files });
  },
  { name: 'vigie-retention', dependencies: ['vigie-store', 'vigie-core', 'vigie-clickhouse', 'vigie-nodes'] },
);
