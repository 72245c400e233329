import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { sqlString, type ClickHouseClient } from '../clickhouse/index.js';
import { VigieError } from '../errors.js';
import { sha256File } from '../files.js';
import { escapeHtml as html } from '../html.js';
import { translator, type Lang, type MessageKey, type Translate } from './i18n.js';

export type ExportFormat = 'jsonl' | 'csv' | 'html' | 'pdf';

/** The legal basis recorded beside each kind of audited action, by action prefix, first match wins. */
const LEGAL_BASES: ReadonlyArray<readonly [actionPrefix: string, basis: MessageKey]> = [
  ['dsar.', 'basis.dsar'],
  ['retention.', 'basis.retention'],
  ['recording.legal_hold', 'basis.legalHold'],
  ['recording.delete', 'basis.delete'],
];
const DEFAULT_LEGAL_BASIS: MessageKey = 'basis.default';

export function legalBasis(action: string, lang: Lang = 'en'): string {
  return translator(lang)(LEGAL_BASES.find(([prefix]) => action.startsWith(prefix))?.[1] ?? DEFAULT_LEGAL_BASIS);
}

/** The same table as `legalBasis`, evaluated by ClickHouse so that rows never have to be parsed in JS. */
const legalBasisSql = (t: Translate) => {
  const cases = LEGAL_BASES.map(
    ([prefix, basis]) => `startsWith(action, ${sqlString(prefix)}), ${sqlString(t(basis))}`,
  );
  return `multiIf(${cases.join(', ')}, ${sqlString(t(DEFAULT_LEGAL_BASIS))})`;
};

/** The audited actions that give access to a recording's content (the summary counts them apart). */
export const RECORDING_ACCESS_ACTIONS = ['recording.read', 'recording.download'];
/** Rows of each summary table; the rest is counted, and every entry is in the export itself. */
const SUMMARY_ROWS = 100;

/** What the summary page says about checking the file; the signature itself is made once the file is written. */
export interface ExportVerification {
  jwksUrl: string;
  kid: string;
  /** The gateway the `vigie verify` command talks to. */
  baseUrl: string;
  /** The name the command line saves the file under. */
  fileName: string;
}

/** Rows per query. Each page is one bounded result, also with the embedded engine, which materializes results whole. */
const EXPORT_PAGE = 10_000;
const COLUMNS = [
  'seq',
  'ts',
  'actor',
  'action',
  'target',
  'subject',
  'result',
  'source_ip',
  'legal_basis',
  'hash',
] as const;
/** JSON Lines also carries `details` (canonical JSON of the action's parameters). */
const JSONL_COLUMNS = [
  'seq',
  'ts',
  'actor',
  'action',
  'target',
  'subject',
  'result',
  'source_ip',
  'details',
  'legal_basis',
  'hash',
] as const;

/** How ClickHouse writes each format's rows: the bytes go from the engine to the file without being parsed. */
const ROW_FORMATS: Record<
  Exclude<ExportFormat, 'pdf'>,
  { columns: readonly string[]; format: string; settings: Record<string, string | number> }
> = {
  jsonl: {
    columns: JSONL_COLUMNS,
    format: 'JSONEachRow',
    settings: { output_format_json_quote_64bit_integers: 0, output_format_json_escape_forward_slashes: 0 },
  },
  csv: { columns: COLUMNS, format: 'CSV', settings: {} },
  // XML escaping of text content (&, <) is what HTML needs inside a table cell.
  html: {
    columns: COLUMNS,
    format: 'CustomSeparated',
    settings: {
      format_custom_escaping_rule: 'XML',
      format_custom_row_before_delimiter: '<tr><td>',
      format_custom_field_delimiter: '</td><td>',
      format_custom_row_after_delimiter: '</td></tr>\n',
    },
  },
};

/**
 * Streams a tenant's audit entries for a period (who accessed which personal
 * data, every deletion and erasure, with its legal basis) into a file, in
 * constant memory: ClickHouse formats the rows (JSON Lines, CSV or HTML table
 * rows) and the bytes flow to disk through a hash, a page at a time, never
 * parsed or held together. The export is a snapshot: entries appended after it
 * starts are not in it. Returns the row count and the file's SHA-256.
 */
export async function exportAudit(o: {
  client: ClickHouseClient;
  db: string;
  tenant: string;
  from: Date;
  to: Date;
  format: Exclude<ExportFormat, 'pdf'>;
  file: string;
  maxRows?: number;
  maxRowsReason?: string;
  /** Language of the legal bases and of the HTML document (src/compliance/i18n.ts). */
  lang?: Lang;
  /** For the HTML summary page's "how to verify" section. */
  verification?: ExportVerification;
}): Promise<{ rows: number; sha256: string }> {
  const t = translator(o.lang ?? 'en');
  const period = `tenant = {t:String}
    AND ts >= fromUnixTimestamp64Milli({from:Int64}) AND ts < fromUnixTimestamp64Milli({to:Int64})`;
  const params = { t: o.tenant, from: o.from.getTime(), to: o.to.getTime() };
  // The chain's seq bounds the snapshot, and cuts it into pages on the primary key (tenant, seq).
  const bounds = await o.client.query({
    query: `SELECT count() AS rows, min(seq) AS first, max(seq) AS last FROM ${o.db}.audit_log WHERE ${period}`,
    query_params: params,
    format: 'JSONEachRow',
  });
  const [b] = await bounds.json<{ rows: number; first: number; last: number }>();
  const [rows, first, last] = [Number(b!.rows), Number(b!.first), Number(b!.last)];
  if (o.maxRows !== undefined && rows > o.maxRows)
    throw new VigieError(
      'INVALID_REQUEST',
      `the period holds ${rows} audit entries; ${o.maxRowsReason ?? 'this export'} is limited to ${o.maxRows}: ` +
        `choose a shorter period`,
    );

  const out = createWriteStream(o.file);
  const hash = createHash('sha256');
  const write = async (chunk: string | Buffer) => {
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  };
  try {
    if (o.format === 'csv') await write(`${COLUMNS.join(',')}\n`);
    if (o.format === 'html') {
      const summary =
        rows > 0 ? await summarize({ ...o, period, params: { ...params, lo: first, hi: last } }) : undefined;
      await write(htmlHead(o, t, { rows, first, last, summary }));
    }
    const { columns, format, settings } = ROW_FORMATS[o.format];
    // ts as text, under its own name: prefer_column_name_to_alias keeps WHERE on the DateTime64 column.
    const select = columns
      .map((c) => (c === 'ts' ? 'toString(ts) AS ts' : c === 'legal_basis' ? `${legalBasisSql(t)} AS legal_basis` : c))
      .join(', ');
    // A SETTINGS clause, not clickhouse_settings: the embedded engine turns those into session-wide SETs that would
    // outlive the query.
    const querySettings = Object.entries({ prefer_column_name_to_alias: 1, ...settings })
      .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : sqlString(v)}`)
      .join(', ');
    for (let lo = first; rows > 0 && lo <= last; lo += EXPORT_PAGE) {
      const page = await o.client.exec({
        query: `SELECT ${select}
                FROM ${o.db}.audit_log
                WHERE ${period} AND seq BETWEEN {lo:UInt64} AND {hi:UInt64}
                ORDER BY seq
                SETTINGS ${querySettings}
                FORMAT ${format}`,
        query_params: { ...params, lo, hi: Math.min(lo + EXPORT_PAGE - 1, last) },
      });
      for await (const chunk of page.stream) await write(chunk as Buffer);
    }
    if (o.format === 'html') await write(`</tbody></table><p>${html(t('audit.count', { rows }))}</p></body></html>\n`);
    out.end();
    await once(out, 'finish');
  } catch (err) {
    // A half-written export is worse than none: it would be signed as if complete.
    out.destroy();
    await rm(o.file, { force: true });
    throw err;
  }
  return { rows, sha256: hash.digest('hex') };
}

interface Summary {
  byAction: Array<{ key: string; n: number }>;
  byActor: Array<{ key: string; n: number }>;
  recordings: Array<{ target: string; actor: string; n: number; first: string; last: string }>;
  recordingAccesses: number;
  counts: { actions: number; actors: number; recordingRows: number };
}

/**
 * The summary page's numbers, counted by ClickHouse over exactly the export's snapshot (the same period and seq
 * bounds).
 */
async function summarize(o: {
  client: ClickHouseClient;
  db: string;
  period: string;
  params: Record<string, unknown>;
}): Promise<Summary> {
  const where = `${o.period} AND seq BETWEEN {lo:UInt64} AND {hi:UInt64}`;
  const q = async <T>(query: string, extra: Record<string, unknown> = {}) =>
    (await o.client.query({ query, query_params: { ...o.params, ...extra }, format: 'JSONEachRow' })).json<T>();
  const grouped = async (column: 'action' | 'actor') => {
    const rows = await q<{ key: string; n: string; groups: string }>(
      `SELECT ${column} AS key, count() AS n, count() OVER () AS groups
       FROM ${o.db}.audit_log
       WHERE ${where}
       GROUP BY key
       ORDER BY n DESC, key
       LIMIT ${SUMMARY_ROWS}`,
    );
    return { rows: rows.map((r) => ({ key: r.key, n: Number(r.n) })), groups: Number(rows[0]?.groups ?? 0) };
  };
  const [byAction, byActor] = [await grouped('action'), await grouped('actor')];
  const recordings = await q<{
    target: string;
    actor: string;
    n: string;
    first: string;
    last: string;
    groups: string;
    total: string;
  }>(
    `SELECT target, actor, count() AS n, toString(min(ts)) AS first, toString(max(ts)) AS last,
            count() OVER () AS groups, sum(count()) OVER () AS total
     FROM ${o.db}.audit_log
     WHERE ${where} AND action IN {actions:Array(String)}
     GROUP BY target, actor
     ORDER BY target, actor
     LIMIT ${SUMMARY_ROWS}`,
    { actions: RECORDING_ACCESS_ACTIONS },
  );
  return {
    byAction: byAction.rows,
    byActor: byActor.rows,
    recordings: recordings.map((r) => ({
      target: r.target,
      actor: r.actor,
      n: Number(r.n),
      first: r.first,
      last: r.last,
    })),
    recordingAccesses: Number(recordings[0]?.total ?? 0),
    counts: { actions: byAction.groups, actors: byActor.groups, recordingRows: Number(recordings[0]?.groups ?? 0) },
  };
}

/**
 * The HTML export's head: a summary page (period, entries per action and per
 * actor, accesses to recordings, how to verify the file), then the entries
 * table's header. The table has fixed column widths, so the chain hash (64 hex
 * digits, written in full and wrapped) cannot crowd out the readable columns.
 */
function htmlHead(
  o: { tenant: string; from: Date; to: Date; lang?: Lang; verification?: ExportVerification },
  t: Translate,
  s: { rows: number; first: number; last: number; summary?: Summary },
): string {
  const row = (cells: Array<string | number>) => `<tr>${cells.map((c) => `<td>${html(c)}</td>`).join('')}</tr>`;
  const table = (cls: string, head: MessageKey[], body: Array<Array<string | number>>, total: number) =>
    `<table class="${cls}"><thead><tr>${head.map((k) => `<th>${html(t(k))}</th>`).join('')}</tr></thead>` +
    `<tbody>${body.map(row).join('')}</tbody></table>` +
    (total > body.length ? `<p>${html(t('audit.more', { n: total - body.length }))}</p>` : '');
  const v = o.verification;
  const summary = s.summary
    ? [
        `<p>${html(t('audit.total', { rows: s.rows, first: s.first, last: s.last }))}</p>`,
        `<h3>${html(t('audit.byAction'))}</h3>`,
        table(
          'by-action',
          ['audit.col.action', 'audit.col.entries'],
          s.summary.byAction.map((r) => [r.key, r.n]),
          s.summary.counts.actions,
        ),
        `<h3>${html(t('audit.byActor'))}</h3>`,
        table(
          'by-actor',
          ['audit.col.actor', 'audit.col.entries'],
          s.summary.byActor.map((r) => [r.key, r.n]),
          s.summary.counts.actors,
        ),
        `<h3>${html(t('audit.recordings'))}</h3>`,
        s.summary.recordingAccesses === 0
          ? `<p>${html(t('audit.recordings.none'))}</p>`
          : `<p class="recording-accesses">` +
            `${html(t('audit.recordings.total', { n: s.summary.recordingAccesses }))}</p>` +
            table(
              'recordings',
              ['audit.col.recording', 'audit.col.actor', 'audit.col.entries', 'audit.col.first', 'audit.col.last'],
              s.summary.recordings.map((r) => [r.target, r.actor, r.n, r.first, r.last]),
              s.summary.counts.recordingRows,
            ),
      ].join('')
    : `<p>${html(t('audit.empty'))}</p>`;
  const verify = [
    `<h3>${html(t('audit.verify'))}</h3>`,
    `<p>${html(t('audit.verify.intro'))}</p>`,
    v
      ? `<ul><li>${html(t('audit.verify.kid', { kid: v.kid }))}</li>` +
        `<li>${html(t('audit.verify.jwks', { url: v.jwksUrl }))}</li></ul>`
      : '',
    v
      ? `<p>${html(t('audit.verify.command'))}</p>` +
        `<pre class="verify-command">${html(`VIGIE_URL=${v.baseUrl} vigie verify ${v.fileName}`)}</pre>`
      : '',
    `<p>${html(t('audit.verify.manual'))}</p>`,
    `<p>${html(t('audit.verify.hash'))}</p>`,
  ].join('');
  const widths = {
    seq: 3,
    ts: 10,
    actor: 10,
    action: 11,
    target: 12,
    subject: 10,
    result: 6,
    source_ip: 8,
    legal_basis: 16,
    hash: 14,
  } satisfies Record<(typeof COLUMNS)[number], number>;
  const style =
    'body{font:11px sans-serif}table{border-collapse:collapse}' +
    'td,th{border:1px solid #999;padding:2px 4px;text-align:left;vertical-align:top;overflow-wrap:anywhere}' +
    'th{background:#eee}' +
    '.summary{break-after:page}.entries{width:100%;table-layout:fixed}' +
    '.entries td:last-child{font:8px monospace;word-break:break-all;color:#444}' +
    'pre{white-space:pre-wrap;background:#f4f4f4;padding:4px}@page{size:A4 landscape;margin:10mm}';
  const title = html(t('audit.title', { tenant: o.tenant }));
  const period = html(
    t('audit.period', { from: o.from.toISOString(), to: o.to.toISOString(), at: new Date().toISOString() }),
  );
  return (
    `<!doctype html><html lang="${o.lang ?? 'en'}"><head><meta charset="utf-8">` +
    `<title>${title}</title><style>${style}</style></head><body>` +
    `<section class="summary"><h1>${title}</h1><p>${period}</p>` +
    `<h2>${html(t('audit.summary'))}</h2>${summary}${verify}</section>` +
    `<h2>${html(t('audit.entries'))}</h2><table class="entries">` +
    `<colgroup>${COLUMNS.map((c) => `<col style="width:${widths[c]}%">`).join('')}</colgroup>` +
    `<thead><tr>${COLUMNS.map((c) => `<th>${html(t(`audit.col.${c}`))}</th>`).join('')}</tr></thead><tbody>`
  );
}

/**
 * Above this, Chromium's print-to-PDF stops being a tool for people: 5,000
 * entries take 15 s and 17 MB here, and at 20,000 Chromium gives up without
 * writing the file. Larger periods are exported as JSON Lines or CSV.
 */
export const PDF_MAX_ROWS = 5_000;

/** Prints an HTML export to PDF with Debian's Chromium (headless). */
export async function htmlToPdf(
  htmlFile: string,
  pdfFile: string,
  chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
): Promise<string> {
  await promisify(execFile)(
    chromium,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-pdf-header-footer',
      `--print-to-pdf=${pdfFile}`,
      `file://${htmlFile}`,
    ],
    { timeout: 120_000 },
  );
  // Chromium can exit 0 without writing anything (out of memory on a huge page).
  if (!existsSync(pdfFile) || statSync(pdfFile).size === 0)
    throw new Error(`Chromium did not print ${htmlFile} to PDF`);
  return sha256File(pdfFile);
}
