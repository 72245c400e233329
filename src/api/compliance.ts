import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  dsarAccess,
  dsarErase,
  exportAudit,
  htmlToPdf,
  PDF_MAX_ROWS,
  markdownToHtml,
  recordOfProcessing,
  recordOfProcessingMarkdown,
  subprocessorReport,
  subprocessorReportMarkdown,
  type Compliance,
} from '../compliance/index.js';
import { documentLanguage, LANGUAGES, type Lang, translator } from '../compliance/i18n.js';
import { VigieError } from '../errors.js';
import { authenticate, type Principal } from './principal.js';
import { openapi, parse } from './schema.js';

/** The document's language; unset: the tenant's default language, else English. */
const lang = z.enum(LANGUAGES).optional();
const exportBody = z
  .object({
    from: z.iso.datetime(),
    to: z.iso.datetime(),
    format: z.enum(['jsonl', 'csv', 'html', 'pdf']).default('jsonl'),
    lang,
  })
  .refine((b) => Date.parse(b.from) < Date.parse(b.to), { message: 'from must be before to', path: ['to'] });
const dsarBody = z.object({ identity: z.string().min(1).max(256) });
const idParam = z.object({ id: z.uuid() });
const reportQuery = z.object({ format: z.enum(['json', 'md', 'html']).default('json'), lang });

const CONTENT_TYPES: Record<string, string> = {
  jsonl: 'application/x-ndjson',
  csv: 'text/csv',
  html: 'text/html',
  pdf: 'application/pdf',
  tar: 'application/x-tar',
};

/** DPO only, scoped to the caller's tenant. */
async function dpo(app: FastifyInstance, req: FastifyRequest): Promise<{ p: Principal; c: Compliance }> {
  const p = await authenticate(app, req);
  if (!p.scopes.has('dpo')) throw new VigieError('FORBIDDEN', 'the dpo role is required');
  if (!app.compliance) throw new VigieError('FORBIDDEN', 'compliance is unavailable on this gateway');
  return { p, c: app.compliance };
}

export async function complianceRoutes(app: FastifyInstance): Promise<void> {
  const db = app.clickhouse.database;
  const exportsDir = path.join(app.config.dataDir, 'exports');
  // Exports and data-subject requests read ClickHouse: what the writers (and the audit journal) still hold goes there
  // first.
  const flush = async () => {
    await app.telemetry?.writer.flush();
    await app.compliance?.audit.flush();
  };
  /**
   * A request about someone without a salt (never seen, or already erased) must
   * not create one: it gets a value no pseudonym (32 hex digits) can equal.
   */
  const languageOf = (p: Principal, asked: z.infer<typeof lang>) => documentLanguage(asked, app.tenants.get(p.tenant));
  const subjectPseudonym = async (tenant: string, identity: string) =>
    (await app.telemetry!.keys.pseudonymizer.existing(tenant, identity)) ?? 'unknown-subject';
  /** Where a data-subject request reads: ClickHouse, and the catalog and the requests on PostgreSQL. */
  const dsarContext = (c: Compliance) => ({
    client: app.clickhouse.client,
    db,
    store: app.recording?.store,
    catalog: app.recording?.catalog,
    controlPlane: {
      dsar_requests: (tenant: string, subject: string) => c.dsar.ofSubject(tenant, subject),
      ...(app.recording && {
        recordings: (tenant: string, subject: string) =>
          app.recording!.catalog.ofSubject(tenant, subject, ['uploading', 'ready', 'failed', 'deleting', 'deleted']),
      }),
    },
    flush: async () => void (await flush()),
  });
  /** Runs the work of a request; if it throws, the request is recorded as failed (still to answer), then rethrown. */
  const answering = async <T>(requestId: string, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      await app.compliance?.dsar
        .close(requestId, 'failed', (err as Error).message?.slice(0, 500) ?? 'failed')
        .catch((closeErr) => app.log.error({ err: closeErr, requestId }, 'could not record a DSAR request as failed'));
      throw err;
    }
  };

  app.get(
    '/v1/compliance/audit/verify',
    {
      schema: {
        tags: ['compliance'],
        summary:
          "Walk the tenant's audit chain against its signed checkpoints and their anchors; names every altered, " +
          'deleted or inserted entry and every checkpoint whose entry is missing',
      },
    },
    async (req) => {
      const { p, c } = await dpo(app, req);
      const result = await c.audit.verify(p.tenant);
      await c.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'audit.verify',
        result: result.ok ? 'ok' : 'tampered',
        sourceIp: req.ip,
      });
      return result;
    },
  );

  app.post(
    '/v1/compliance/exports',
    {
      schema: {
        tags: ['compliance'],
        summary: 'DPO audit export for a period (JSON Lines, CSV, HTML or PDF) with a detached JWS',
        body: openapi(exportBody),
      },
    },
    async (req, reply) => {
      const { p, c } = await dpo(app, req);
      const body = parse(exportBody, req.body);
      await mkdir(exportsDir, { recursive: true });
      const id = randomUUID();
      await flush();
      const format = body.format === 'pdf' ? 'html' : body.format;
      const file = path.join(exportsDir, `${id}.${format}`);
      const pdfLimit =
        body.format === 'pdf'
          ? { maxRows: PDF_MAX_ROWS, maxRowsReason: 'a PDF export (use jsonl or csv for more)' }
          : {};
      const startedAt = performance.now();
      const base = app.config.server.publicUrl;
      const verification = {
        jwksUrl: `${base}/.well-known/jwks.json`,
        kid: c.signer.kid,
        baseUrl: base,
        fileName: `vigie-audit-${id}.${body.format}`,
      };
      const docLang = languageOf(p, body.lang);
      let { rows, sha256 } = await exportAudit({
        client: app.clickhouse.client,
        db,
        tenant: p.tenant,
        from: new Date(body.from),
        to: new Date(body.to),
        format,
        file,
        lang: docLang,
        verification,
        ...pdfLimit,
      });
      let ext: string = format;
      if (body.format === 'pdf') {
        sha256 = await htmlToPdf(file, path.join(exportsDir, `${id}.pdf`));
        ext = 'pdf';
      }
      req.log.info(
        { exportId: id, tenant: p.tenant, format: body.format, rows, ms: Math.round(performance.now() - startedAt) },
        'audit export written',
      );
      const jws = await c.signer.signDigest(sha256);
      await writeFile(
        path.join(exportsDir, `${id}.meta.json`),
        JSON.stringify({ tenant: p.tenant, ext, sha256, jws, rows }),
      );
      await c.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'export.audit',
        target: `export:${id}`,
        sourceIp: req.ip,
        details: { from: body.from, to: body.to, format: body.format, lang: docLang, rows, sha256 },
      });
      return reply
        .code(201)
        .send({ id, rows, sha256, jws, kid: c.signer.kid, download: `/v1/compliance/exports/${id}` });
    },
  );

  app.get(
    '/v1/compliance/exports/:id',
    {
      schema: {
        tags: ['compliance'],
        summary: 'Download an export or a data-subject archive',
        params: openapi(idParam),
      },
    },
    async (req, reply) => {
      const { p, c } = await dpo(app, req);
      const { id } = parse(idParam, req.params);
      const metaFile = path.join(exportsDir, `${id}.meta.json`);
      if (!existsSync(metaFile)) throw new VigieError('NOT_FOUND', 'no such export');
      const meta = JSON.parse(await readFile(metaFile, 'utf8')) as {
        tenant: string;
        ext: string;
        sha256: string;
        jws: string;
      };
      if (meta.tenant !== p.tenant) throw new VigieError('NOT_FOUND', 'no such export');
      await c.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'export.download',
        target: `export:${id}`,
        sourceIp: req.ip,
      });
      const file = path.join(exportsDir, `${id}.${meta.ext}`);
      return (
        reply
          .header('content-type', CONTENT_TYPES[meta.ext] ?? 'application/octet-stream')
          .header('content-disposition', `attachment; filename="vigie-${id}.${meta.ext}"`)
          .header('x-vigie-sha256', meta.sha256)
          .header('x-vigie-signature', meta.jws)
          // The length lets a client show how much of a large export or archive it has.
          .header('content-length', (await stat(file)).size)
          .send(createReadStream(file))
      );
    },
  );

  /**
   * A DPO report: built in the caller's language, its access audited, then sent as JSON, Markdown or HTML.
   * The subprocessor report and the record of processing differ only in what they build.
   */
  function reportRoute<R>(o: {
    path: string;
    summary: string;
    action: 'report.subprocessors' | 'report.ropa';
    title: 'sub.title' | 'ropa.title';
    build: (p: Principal, c: Compliance, lang: Lang) => R;
    markdown: (report: R, c: Compliance) => string;
  }): void {
    app.get(
      o.path,
      { schema: { tags: ['compliance'], summary: o.summary, querystring: openapi(reportQuery) } },
      async (req, reply) => {
        const { p, c } = await dpo(app, req);
        const query = parse(reportQuery, req.query);
        const docLang = languageOf(p, query.lang);
        const report = o.build(p, c, docLang);
        await c.record({ tenant: p.tenant, actor: p.actor, action: o.action, sourceIp: req.ip });
        if (query.format === 'json') return report;
        const md = o.markdown(report, c);
        return query.format === 'md'
          ? reply.type('text/markdown').send(md)
          : reply.type('text/html').send(markdownToHtml(translator(docLang)(o.title), md, docLang));
      },
    );
  }

  reportRoute({
    path: '/v1/compliance/reports/subprocessors',
    summary: 'Subprocessors and data residency, checked against the running configuration',
    action: 'report.subprocessors',
    title: 'sub.title',
    build: (p, c, lang) =>
      subprocessorReport(
        c.subprocessors(),
        app.config,
        app.tenants.list().filter((t) => t.id === p.tenant),
        process.env,
        lang,
      ),
    markdown: (report, c) => subprocessorReportMarkdown(report, c.subprocessors()),
  });

  reportRoute({
    path: '/v1/compliance/reports/ropa',
    summary: 'Record of processing activities (GDPR art. 30)',
    action: 'report.ropa',
    title: 'ropa.title',
    build: (_p, c, lang) =>
      recordOfProcessing(
        app.retention.policies(),
        c.subprocessors(),
        { sse: app.config.storage.sse, store: app.recording?.store.name.startsWith('s3:') ? 's3' : 'local' },
        lang,
      ),
    markdown: (ropa) => recordOfProcessingMarkdown(ropa),
  });

  app.post(
    '/v1/compliance/dsar/access',
    {
      schema: {
        tags: ['compliance'],
        summary: 'Data-subject access: a signed archive of every row and recording about the person',
        body: openapi(dsarBody),
      },
    },
    async (req, reply) => {
      const { p, c } = await dpo(app, req);
      const { identity } = parse(dsarBody, req.body);
      const pseudonym = await subjectPseudonym(p.tenant, identity);
      await mkdir(exportsDir, { recursive: true });
      const { requestId: id } = await c.dsar.open(p.tenant, 'access', pseudonym);
      const { archive, sha256, manifest } = await answering(id, () =>
        dsarAccess(dsarContext(c), { tenant: p.tenant, identity, pseudonym, workDir: exportsDir }),
      );
      await rename(archive, path.join(exportsDir, `${id}.tar`));
      const jws = await c.signer.signDigest(sha256);
      // The subject is named so that their erasure finds and deletes this archive.
      await writeFile(
        path.join(exportsDir, `${id}.meta.json`),
        JSON.stringify({ tenant: p.tenant, ext: 'tar', sha256, jws, subject: pseudonym }),
      );
      await c.dsar.close(id, 'completed', JSON.stringify(manifest.map((m) => ({ file: m.file, rows: m.rows }))));
      await c.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'dsar.access',
        subject: pseudonym,
        target: `export:${id}`,
        sourceIp: req.ip,
        details: { files: manifest.length },
      });
      return reply
        .code(201)
        .send({ id, sha256, jws, kid: c.signer.kid, files: manifest, download: `/v1/compliance/exports/${id}` });
    },
  );

  app.post(
    '/v1/compliance/dsar/erasure',
    {
      schema: {
        tags: ['compliance'],
        summary:
          "Data-subject erasure: the person's rows and recordings, except what a legal hold or a COMPLIANCE lock keeps",
        body: openapi(dsarBody),
      },
    },
    async (req) => {
      const { p, c } = await dpo(app, req);
      const { identity } = parse(dsarBody, req.body);
      const pseudonym = await subjectPseudonym(p.tenant, identity);
      const writer = app.telemetry!.writer;
      const { requestId: id } = await c.dsar.open(p.tenant, 'erasure', pseudonym);
      const result = await answering(id, () =>
        dsarErase(
          {
            ...dsarContext(c),
            rewriteHeld: (fn) => writer.rewriteHeld(fn),
            redactDeliveries: (fn) => app.webhooks.queue.redact(fn),
            exportsDir,
            discardPendingRecordings: app.recording
              ? () => app.recording!.service.discardPending(p.tenant, pseudonym)
              : undefined,
            forget: () => app.telemetry!.keys.pseudonymizer.forget(p.tenant, identity),
          },
          { tenant: p.tenant, identity, pseudonym },
        ),
      );
      await c.dsar.close(id, 'completed', JSON.stringify(result));
      await c.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'dsar.erasure',
        subject: pseudonym,
        sourceIp: req.ip,
        details: { erased: result.erased, recordingsDeleted: result.recordingsDeleted.length, kept: result.kept },
      });
      await flush();
      return { requestId: id, ...result };
    },
  );
}
