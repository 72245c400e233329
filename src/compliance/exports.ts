import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { promisify } from 'node:util';
import type { ClickHouseClient } from '@clickhouse/client';
import { sha256File } from '../files.js';
import { escapeHtml as html } from '../html.js';

export type ExportFormat = 'jsonl' | 'csv' | 'html' | 'pdf';

/** The legal basis recorded beside each kind of audited action, for the DPO's reading. */
export function legalBasis(action: string): string {
  if (action.startsWith('dsar.')) return 'GDPR art. 15-17 (data subject request)';
  if (action.startsWith('retention.')) return 'GDPR art. 5(1)(e) (storage limitation, retention policy)';
  if (action.startsWith('recording.legal_hold')) return 'GDPR art. 17(3)(e) (legal claims)';
  if (action.startsWith('recording.delete')) return 'GDPR art. 17 / controller instruction';
  return 'GDPR art. 6(1)(b)/(f) (service operation, accountability art. 5(2))';
}

const EXPORT_PAGE = 2000;
const COLUMNS = ['seq', 'ts', 'actor', 'action', 'target', 'subject', 'result', 'source_ip', 'legal_basis', 'hash'] as const;

function csvField(v: unknown): string {
  const s = String(v ?? '');
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Streams a tenant's audit entries for a period (who accessed which personal
 * data, every deletion and erasure, with its legal basis) into a file, in
 * constant memory: rows flow from ClickHouse to disk through a hash, never
 * held together. Returns the row count and the file's SHA-256.
 */
export async function exportAudit(o: { client: ClickHouseClient; db: string; tenant: string; from: Date; to: Date; format: Exclude<ExportFormat, 'pdf'>; file: string }): Promise<{ rows: number; sha256: string }> {
  const out = createWriteStream(o.file);
  const hash = createHash('sha256');
  const write = async (s: string) => {
    hash.update(s);
    if (!out.write(s)) await once(out, 'drain');
  };
  if (o.format === 'csv') await write(`${COLUMNS.join(',')}\n`);
  if (o.format === 'html') {
    await write(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Audit export ${html(o.tenant)}</title><style>body{font:11px sans-serif}table{border-collapse:collapse;width:100%}td,th{border:1px solid #999;padding:2px 4px;text-align:left;vertical-align:top}th{background:#eee}@page{size:A4 landscape;margin:10mm}</style></head><body>`);
    await write(`<h1>Audit export — tenant ${html(o.tenant)}</h1><p>Period: ${o.from.toISOString()} to ${o.to.toISOString()}. Generated ${new Date().toISOString()} by Vigie. Verify with the detached signature and the published JWKS.</p><table><thead><tr>${COLUMNS.map((c) => `<th>${c}</th>`).join('')}</tr></thead><tbody>`);
  }
  // Keyset pagination by seq, page by page: memory stays constant whatever the
  // engine does with a result (the embedded one materializes whole results).
  let rows = 0;
  let after = 0;
  for (;;) {
    const rs = await o.client.query({
      // ts_utc, not ts: ClickHouse resolves aliases before columns, also in WHERE.
      query: `SELECT seq, toString(ts) AS ts_utc, actor, action, target, subject, result, source_ip, details, hash FROM ${o.db}.audit_log
              WHERE tenant = {t:String} AND seq > {after:UInt64} AND ts >= fromUnixTimestamp64Milli({from:Int64}) AND ts < fromUnixTimestamp64Milli({to:Int64})
              ORDER BY seq LIMIT {page:UInt32}`,
      query_params: { t: o.tenant, after, page: EXPORT_PAGE, from: o.from.getTime(), to: o.to.getTime() },
      format: 'JSONEachRow',
    });
    const page = await rs.json<Record<string, unknown>>();
    for (const e of page) {
      const { ts_utc, ...rest } = e;
      const row: Record<string, unknown> = { ...rest, ts: ts_utc, seq: Number(e.seq), legal_basis: legalBasis(String(e.action)) };
      rows++;
      if (o.format === 'jsonl') await write(`${JSON.stringify(row)}\n`);
      else if (o.format === 'csv') await write(`${COLUMNS.map((c) => csvField(row[c])).join(',')}\n`);
      else await write(`<tr>${COLUMNS.map((c) => `<td>${html(row[c])}</td>`).join('')}</tr>\n`);
    }
    if (page.length < EXPORT_PAGE) break;
    after = Number(page.at(-1)!.seq);
  }
  if (o.format === 'html') await write(`</tbody></table><p>${rows} entries.</p></body></html>\n`);
  out.end();
  await once(out, 'finish');
  return { rows, sha256: hash.digest('hex') };
}

/** Prints an HTML export to PDF with Debian's Chromium (headless). */
export async function htmlToPdf(htmlFile: string, pdfFile: string, chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'): Promise<string> {
  await promisify(execFile)(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--no-pdf-header-footer', `--print-to-pdf=${pdfFile}`, `file://${htmlFile}`], { timeout: 120_000 });
  return sha256File(pdfFile);
}
