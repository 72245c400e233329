/**
 * Compliance: evidence for the DPO.
 *
 * - AuditLog: one hash chain per tenant, signed checkpoints (JWS), verification.
 * - exports: the DPO audit export (JSON Lines, CSV, HTML, PDF), streamed, with a
 *   detached JWS a third party checks against /.well-known/jwks.json.
 * - subprocessors / ropa: the register in compliance/subprocessors.yaml checked
 *   against the running configuration, and the record of processing (art. 30).
 * - dsar: data-subject access (signed archive) and erasure.
 *
 * Decorates `compliance`; other capabilities call `compliance.audit.append`.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AuditLog, type AuditInput } from './AuditLog.js';
import { loadSigner, type Signer } from './signing.js';
import { loadSubprocessors, type SubprocessorRegister } from './subprocessors.js';

export { AuditLog, entryHash, GENESIS, type AuditEntry, type AuditInput } from './AuditLog.js';
export { loadSigner, verifyDigestSignature, canonicalJson, digestPayload, type Signer } from './signing.js';
export { exportAudit, htmlToPdf, legalBasis, PDF_MAX_ROWS, type ExportFormat } from './exports.js';
export { loadSubprocessors, subprocessorReport, subprocessorReportMarkdown, subprocessorsSchema, markdownToHtml, EU_COUNTRIES } from './subprocessors.js';
export { recordOfProcessing, recordOfProcessingMarkdown } from './ropa.js';
export { dsarAccess, dsarErase, identityColumns, SUBJECT_TABLES, IDENTITY_COLUMN_NAMES } from './dsar.js';

export interface Compliance {
  audit: AuditLog;
  signer: Signer;
  subprocessors: () => SubprocessorRegister;
  /** Appends without waiting; failures are logged (an audit entry must not fail the action it records). */
  record: (entry: AuditInput) => void;
}

declare module 'fastify' {
  interface FastifyInstance {
    compliance?: Compliance;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    if (!app.telemetry) {
      app.log.warn('compliance unavailable: VIGIE_TELEMETRY=false (the audit log is written through the telemetry writer)');
      return;
    }
    const log = app.log.child({ component: 'compliance' });
    const signer = await loadSigner(app.config.dataDir, app.config.compliance.signingKeyFile);
    const writer = app.telemetry.writer;
    const audit = new AuditLog(app.clickhouse.client, app.clickhouse.database, writer, signer, { checkpointEvery: app.config.compliance.checkpointEvery, checkpointMinutes: app.config.compliance.checkpointMinutes }, log);
    if (app.clickhouse.schemaReady) await audit.init();
    const register = loadSubprocessors(app.config.compliance.subprocessorsFile);
    const record = (entry: AuditInput) => void audit.append(entry).catch((err) => log.error({ err, action: entry.action }, 'audit append failed'));
    record({ tenant: 'system', actor: 'system', action: 'retention.policies_loaded', details: { policies: [...app.retention.policies().keys()] } });
    app.recording?.sweeper.observer.on('deleted', (r) =>
      record({ tenant: r.tenant, actor: 'system:retention', action: 'retention.delete', target: `recording:${r.id}`, details: { policy: r.retention_policy, objectKey: r.object_key, versionId: r.version_id, retainUntil: r.retain_until } }),
    );
    app.decorate('compliance', { audit, signer, subprocessors: () => register, record });
    // "Every M minutes" holds even for a chain that gets no new entry to trigger it.
    const timer = setInterval(() => void audit.checkpointAll().catch((err) => log.error({ err }, 'audit checkpoint failed')), app.config.compliance.checkpointMinutes * 60_000);
    timer.unref();
    app.addHook('onClose', async () => {
      clearInterval(timer);
      await audit.checkpointAll().catch(() => undefined);
    });
  },
  { name: 'vigie-compliance', dependencies: ['vigie-core', 'vigie-clickhouse', 'vigie-telemetry', 'vigie-retention'] },
);
