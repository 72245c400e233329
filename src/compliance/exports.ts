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

export type ExportFormat = 'jsonl' | 'csv' | 'html' | 'pdf';

/** The legal basis recorded beside each kind of audited action, by action prefix, first match wins. */
const LEGAL_BASES: ReadonlyArray<readonly [actionPrefix: string, basis: string]> = [
  ['dsar.', 'GDPR art. 15-17 (data subject request)'],
  ['retention.', 'GDPR art. 5(1)(e) (storage limitation, retention policy)'],
  ['recording.legal_hold', 'GDPR art. 17(3)(e) (legal claims)'],
  ['recording.delete', 'GDPR art. 17 / controller instruction'],
];
const DEFAULT_LEGAL_BASIS = 'GDPR art. 6(1)(b)/(f) (service operation, accountability art. 5(2))';

export function legalBasis(action: string): string {
  return LEGAL_BASES.find(([prefix]) => action.startsWith(prefix))?.[1] ?? DEFAULT_LEGAL_BASIS;
}

/** The same table as `legalBasis`, evaluated by ClickHouse so that rows never have to be parsed in JS. */
const LEGAL_BASIS_SQL = `multiIf(${LEGAL_BASES.map(([prefix, basis]) => `startsWith(action, ${sqlString(prefix)}), ${sqlString(basis)}`).join(', ')}, ${sqlString(DEFAULT_LEGAL_BASIS)})`;

/** Rows per query. Each page is one bounded result, also with the embedded engine, which materializes results whole. */
const EXPORT_PAGE = 10_000;
const COLUMNS = ['seq', 'ts', 'actor', 'action', 'target', 'subject', 'result', 'source_ip', 'legal_basis', 'hash'] as const;
/** JSON Lines also carries `details` (canonical JSON of the action's parameters). */
const JSONL_COLUMNS = ['seq', 'ts', 'actor', 'action', 'target', 'subject', 'result', 'source_ip', 'details', 'legal_basis', 'hash'] as const;

/** How ClickHouse writes each format's rows: the bytes go from the engine to the file without being parsed. */
const ROW_FORMATS: Record<Exclude<ExportFormat, 'pdf'>, { columns: readonly string[]; format: string; settings: Record<string, string | number> }> = {
  jsonl: { columns: JSONL_COLUMNS, format: 'JSONEachRow', settings: { output_format_json_quote_64bit_integers: 0, output_format_json_escape_forward_slashes: 0 } },
  csv: { columns: COLUMNS, format: 'CSV', settings: {} },
  // XML escaping of text content (&, <) is what HTML needs inside a table cell.
  html: {
    columns: COLUMNS,
    format: 'CustomSeparated',
    settings: { format_custom_escaping_rule: 'XML', format_custom_row_before_delimiter: '<tr><td>', format_custom_field_delimiter: '</td><td>', format_custom_row_after_delimiter: '</td></tr>\n' },
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
export async function exportAudit(o: { client: ClickHouseClient; db: string; tenant: string; from: Date; to: Date; format: Exclude<ExportFormat, 'pdf'>; file: string; maxRows?: number; maxRowsReason?: string }): Promise<{ rows: number; sha256: string }> {
  const period = `tenant = {t:String} AND ts >= fromUnixTimestamp64Milli({from:Int64}) AND ts < fromUnixTimestamp64Milli({to:Int64})`;
  const params = { t: o.tenant, from: o.from.getTime(), to: o.to.getTime() };
  // The chain's seq bounds the snapshot, and cuts it into pages on the primary key (tenant, seq).
  const bounds = await o.client.query({ query: `SELECT count() AS rows, min(seq) AS first, max(seq) AS last FROM ${o.db}.audit_log WHERE ${period}`, query_params: params, format: 'JSONEachRow' });
  const [b] = await bounds.json<{ rows: number; first: number; last: number }>();
  const [rows, first, last] = [Number(b!.rows), Number(b!.first), Number(b!.last)];
  if (o.maxRows !== undefined && rows > o.maxRows) throw new VigieError('INVALID_REQUEST', `the period holds ${rows} audit entries; ${o.maxRowsReason ?? 'this export'} is limited to ${o.maxRows}: choose a shorter period`);

  const out = createWriteStream(o.file);
  const hash = createHash('sha256');
  const write = async (chunk: string | Buffer) => {
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  };
  try {
    if (o.format === 'csv') await write(`${COLUMNS.join(',')}\n`);
    if (o.format === 'html') {
      await write(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Audit export ${html(o.tenant)}</title><style>body{font:11px sans-serif}table{border-collapse:collapse;width:100%}td,th{border:1px solid #999;padding:2px 4px;text-align:left;vertical-align:top}th{background:#eee}@page{size:A4 landscape;margin:10mm}</style></head><body>`);
      await write(`<h1>Audit export — tenant ${html(o.tenant)}</h1><p>Period: ${o.from.toISOString()} to ${o.to.toISOString()}. Generated ${new Date().toISOString()} by Vigie. Verify with the detached signature and the published JWKS.</p><table><thead><tr>${COLUMNS.map((c) => `<th>${c}</th>`).join('')}</tr></thead><tbody>`);
    }
    const { columns, format, settings } = ROW_FORMATS[o.format];
    // ts as text, under its own name: prefer_column_name_to_alias keeps WHERE on the DateTime64 column.
    const select = columns.map((c) => (c === 'ts' ? 'toString(ts) AS ts' : c === 'legal_basis' ? `${LEGAL_BASIS_SQL} AS legal_basis` : c)).join(', ');
    // A SETTINGS clause, not clickhouse_settings: the embedded engine turns those into session-wide SETs that would outlive the query.
    const querySettings = Object.entries({ prefer_column_name_to_alias: 1, ...settings })
      .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : sqlString(v)}`)
      .join(', ');
    for (let lo = first; rows > 0 && lo <= last; lo += EXPORT_PAGE) {
      const page = await o.client.exec({
        query: `SELECT ${select} FROM ${o.db}.audit_log WHERE ${period} AND seq BETWEEN {lo:UInt64} AND {hi:UInt64} ORDER BY seq SETTINGS ${querySettings} FORMAT ${format}`,
        query_params: { ...params, lo, hi: Math.min(lo + EXPORT_PAGE - 1, last) },
      });
      for await (const chunk of page.stream) await write(chunk as Buffer);
    }
    if (o.format === 'html') await write(`</tbody></table><p>${rows} entries.</p></body></html>\n`);
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

/**
 * Above this, Chromium's print-to-PDF stops being a tool for people: 5,000
 * entries take 15 s and 17 MB here, and at 20,000 Chromium gives up without
 * writing the file. Larger periods are exported as JSON Lines or CSV.
 */
export const PDF_MAX_ROWS = 5_000;

/** Prints an HTML export to PDF with Debian's Chromium (headless). */
export async function htmlToPdf(htmlFile: string, pdfFile: string, chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'): Promise<string> {
  await promisify(execFile)(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--no-pdf-header-footer', `--print-to-pdf=${pdfFile}`, `file://${htmlFile}`], { timeout: 120_000 });
  // Chromium can exit 0 without writing anything (out of memory on a huge page).
  if (!existsSync(pdfFile) || statSync(pdfFile).size === 0) throw new Error(`Chromium did not print ${htmlFile} to PDF`);
  return sha256File(pdfFile);
}
