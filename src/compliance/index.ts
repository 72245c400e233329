/**
 * Compliance: evidence for the DPO.
 *
 * - AuditLog: one hash chain per tenant, appended in PostgreSQL under a lock on its
 *   head (one chain on any number of nodes), shipped to ClickHouse from an outbox;
 *   signed checkpoints (JWS) anchored outside ClickHouse (anchors.ts), verification
 *   against both, with every signing key by kid.
 * - exports: the DPO audit export (JSON Lines, CSV, HTML, PDF), streamed, with a
 *   detached JWS a third party checks against /.well-known/jwks.json.
 * - subprocessors / ropa: the register in compliance/subprocessors.yaml checked
 *   against the running configuration, and the record of processing (art. 30).
 * - dsar: data-subject access (signed archive) and erasure.
 * - i18n: the one catalogue (English, French) of every fixed text in the DPO's documents.
 *
 * Decorates `compliance`; other capabilities `await compliance.record(...)`
 * before answering the action it records.
 */
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ClickHouseWriter, Spool } from '../telemetry/index.js';
import { FileAnchors, ObjectStoreAnchors, type CheckpointAnchors } from './anchors.js';
import type { Logger } from '../logging.js';
import { AuditLog, type AuditEntry, type AuditInput } from './AuditLog.js';
import { DsarRequests } from './dsarRequests.js';
import { importWhenReady } from '../store/index.js';
import { loadSigner, type Signer } from './signing.js';
import { loadSubprocessors, type SubprocessorRegister } from './subprocessors.js';

export {
  ANCHORING_LOCK,
  AuditLog,
  entryHash,
  GENESIS,
  type AuditEntry,
  type AuditInput,
  type VerifyResult,
} from './AuditLog.js';
export { FileAnchors, ObjectStoreAnchors, type CheckpointAnchors, type SignedCheckpoint } from './anchors.js';
export { loadSigner, verifyDigestSignature, canonicalJson, digestPayload, type Signer } from './signing.js';
export { exportAudit, htmlToPdf, legalBasis, PDF_MAX_ROWS, type ExportFormat } from './exports.js';
export {
  loadSubprocessors,
  subprocessorReport,
  subprocessorReportMarkdown,
  subprocessorsSchema,
  markdownToHtml,
  EU_COUNTRIES,
} from './subprocessors.js';
export { recordOfProcessing, recordOfProcessingMarkdown } from './ropa.js';
export { dsarAccess, dsarErase, identityColumns, SUBJECT_TABLES, IDENTITY_COLUMN_NAMES } from './dsar.js';
export { DsarRequests, DSAR_MIGRATIONS, type DsarRequest } from './dsarRequests.js';

export interface Compliance {
  audit: AuditLog;
  signer: Signer;
  anchors: CheckpointAnchors;
  subprocessors: () => SubprocessorRegister;
  /**
   * Appends an entry and resolves once it is durable: await it before
   * answering the audited action. Rejects with UNAVAILABLE while the audit log
   * cannot continue its chains (ClickHouse unread since start).
   */
  record: (entry: AuditInput) => Promise<AuditEntry>;
  /** Data-subject requests and their status (PostgreSQL). */
  dsar: DsarRequests;
}

declare module 'fastify' {
  interface FastifyInstance {
    compliance?: Compliance;
  }
}

/** The journal never dropped: its spool is unbounded. */
const JOURNAL_UNBOUNDED = Number.MAX_SAFE_INTEGER;
/** How often a node checks for chains due a periodic checkpoint, and tries to take over anchoring. */
const ANCHORING_TICK_MS = 30_000;

/**
 * The local journal where the version before fsynced audit entries until
 * ClickHouse took them. If one is left, it is shipped (its batches keep their
 * deduplication tokens) before the heads are imported, then renamed
 * `audit-journal.imported`.
 */
async function openLegacyJournal(app: FastifyInstance, log: Logger) {
  const dir = path.join(app.config.dataDir, 'audit-journal');
  if (!existsSync(dir)) return undefined;
  const spool = new Spool(dir, JOURNAL_UNBOUNDED, 'drop-newest', log);
  await spool.open();
  const writer = new ClickHouseWriter(
    app.clickhouse.client,
    spool,
    { database: app.clickhouse.database, ...app.config.writer },
    log,
  );
  writer.start();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await writer.close();
  };
  return {
    drain: (timeoutMs?: number) => writer.drain(timeoutMs),
    retire: async () => {
      await close();
      await rename(dir, `${dir}.imported`);
      log.info({ dir: `${dir}.imported` }, 'the audit journal of the version before is shipped and set aside');
    },
    close,
  };
}

export default fp(
  async (app: FastifyInstance) => {
    const { config } = app;
    const log = app.log.child({ component: 'compliance' });
    const signer = await loadSigner(config.dataDir, config.compliance.signingKeyFile, app.db, log);
    const legacy = await openLegacyJournal(app, log);
    const store = app.recording?.store;
    const anchors: CheckpointAnchors =
      store?.listVersions && config.storage.driver === 's3'
        ? new ObjectStoreAnchors(
            store as typeof store & Required<Pick<typeof store, 'listVersions'>>,
            config.compliance.anchorRetentionDays,
          )
        : new FileAnchors(path.join(config.dataDir, 'audit', 'anchors.jsonl'));
    const audit = new AuditLog(
      app.db,
      app.clickhouse.client,
      app.clickhouse.database,
      signer,
      anchors,
      { checkpointEvery: config.compliance.checkpointEvery, checkpointMinutes: config.compliance.checkpointMinutes },
      log,
      legacy,
    );

    // The chains continue from their stored heads, never from 1: until those are imported, audited actions are refused.
    let closed = false;
    const init = async (attempt: number): Promise<void> => {
      if (closed) return;
      const ok = await audit
        .init(2000, () => app.clickhouse.schemaReady)
        .catch((err) => {
          log.warn({ reason: (err as Error).message }, 'audit chain heads not readable yet');
          return false;
        });
      if (ok) return;
      if (attempt === 0)
        log.error(
          'audit log not ready: the chain heads cannot be imported from ClickHouse; audited actions answer ' +
            'UNAVAILABLE until they are',
        );
      setTimeout(() => void init(attempt + 1), Math.min(5000, 250 * 2 ** attempt)).unref();
    };
    await init(0);

    const dsar = new DsarRequests(app.db, app.telemetry?.writer, log);
    await dsar.migrate();
    // The requests of the version before are in ClickHouse: imported once, as soon as ClickHouse can be read.
    await importWhenReady(app.clickhouse, 'DSAR requests', log, () => dsar.importFromClickHouse(app.clickhouse));

    const register = loadSubprocessors(config.compliance.subprocessorsFile);
    const system = (entry: AuditInput) =>
      void audit.appendWhenReady(entry).catch((err) => log.error({ err, action: entry.action }, 'audit append failed'));
    system({
      tenant: 'system',
      actor: 'system',
      action: 'retention.policies_loaded',
      details: { policies: [...app.retention.policies().keys()] },
    });
    app.recording?.sweeper.observer.on('deleted', (r) =>
      system({
        tenant: r.tenant,
        actor: 'system:retention',
        action: 'retention.delete',
        target: `recording:${r.id}`,
        details: {
          policy: r.retention_policy,
          objectKey: r.object_key,
          versionId: r.version_id,
          retainUntil: r.retain_until,
        },
      }),
    );
    const record = (entry: AuditInput) => {
      const appended = audit.append(entry);
      // Callers await it; one that does not must not turn a refusal into an unhandled rejection.
      appended.catch((err) => log.error({ err, action: entry.action, tenant: entry.tenant }, 'audit append failed'));
      return appended;
    };
    app.decorate('compliance', { audit, signer, anchors, subprocessors: () => register, record, dsar });
    // "Every M minutes" holds even for a chain that gets no new entry to trigger it; one node at a time signs
    // those (the anchoring lock), and it ticks more often than M so that another node takes over soon after.
    const timer = setInterval(
      () => void audit.anchoringTick().catch((err) => log.error({ err }, 'audit checkpoint failed')),
      Math.min(ANCHORING_TICK_MS, config.compliance.checkpointMinutes * 60_000),
    );
    timer.unref();
    app.addHook('onClose', async () => {
      closed = true;
      clearInterval(timer);
      // What was appended and not yet committed goes in first, and the final checkpoint covers it.
      await audit.settle();
      await audit.checkpointAll().catch((err) => log.error({ err }, 'final audit checkpoint failed'));
      // What ClickHouse has not taken stays in the outbox for any node.
      await audit.close();
      await legacy?.close();
    });
  },
  { name: 'vigie-compliance', dependencies: ['vigie-store', 'vigie-core', 'vigie-clickhouse', 'vigie-retention'] },
);
