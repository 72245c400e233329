/**
 * Export of 1,000,000 audit entries: throughput and peak RSS of the exporting
 * process (target: at most 200 MB). Baseline, same run and engine: reading
 * the same rows out of ClickHouse as raw bytes, page by page, into nothing.
 *
 * By default ClickHouse runs in its own process (the embedded engine behind an
 * HTTP endpoint), as a clickhouse-server does in production, so the RSS
 * measured is the exporter's. BENCH_AUDIT_ENGINE=embedded runs the engine in
 * the exporting process instead, as `npm start` does; the RSS then includes
 * the engine, and what matters is the growth during the export.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createClickHouseClient, migrate } from '../src/clickhouse/index.js';
import { exportAudit } from '../src/compliance/index.js';
import { startChdbHttp } from '../test/helpers/chdbHttpServer.js';

const N = Number(process.env.BENCH_AUDIT_ROWS ?? 1_000_000);
const engine = process.env.BENCH_AUDIT_ENGINE === 'embedded' ? 'embedded' : 'http';
const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-bench-audit-'));
const server = engine === 'http' ? await startChdbHttp(path.join(dir, 'clickhouse')) : undefined;
// A failed run must not leave the ClickHouse process, nor a gigabyte of data, behind.
const cleanUp = async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
};
process.once(
  'uncaughtException',
  (err) =>
    void cleanUp().finally(() => {
      console.error(err);
      process.exit(1);
    }),
);
const client = await createClickHouseClient({
  dataDir: dir,
  clickhouse: { url: server?.url, user: 'default', database: 'vigie', requestTimeoutMs: 600_000 },
});
await migrate(client, { database: 'vigie', log: pino({ level: 'warn' }) });
await client.command({
  query: `INSERT INTO vigie.audit_log SELECT 'bench', number + 1, fromUnixTimestamp64Milli(toInt64(1795000000000 + number)), concat('key:k', toString(number % 20)), ['recording.read', 'recording.download', 'recordings.list', 'dsar.access', 'retention.delete'][number % 5 + 1], concat('recording:', toString(generateUUIDv4())), lower(hex(sipHash128(number))), 'ok', '10.0.0.1', '{"k":1}', lower(hex(sipHash128(number - 1))), lower(hex(sipHash128(number))) FROM numbers(${N})`,
  clickhouse_settings: { insert_deduplication_token: `bench-${Date.now()}` },
});
let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
const rssBefore = process.memoryUsage().rss;

// Baseline: the same rows read out of ClickHouse as raw JSONEachRow bytes, in pages of the same size, discarded.
let t = performance.now();
let baselineBytes = 0;
for (let lo = 1; lo <= N; lo += 10_000) {
  const page = await client.exec({
    query: `SELECT * FROM vigie.audit_log WHERE tenant = 'bench' AND seq BETWEEN {lo:UInt64} AND {hi:UInt64} ORDER BY seq FORMAT JSONEachRow`,
    query_params: { lo, hi: lo + 9_999 },
  });
  for await (const chunk of page.stream) baselineBytes += (chunk as Buffer).length;
}
const baselineSec = (performance.now() - t) / 1000;

const results: Record<string, unknown> = {};
// The target concerns the export: its peak is tracked from here.
global.gc?.();
peakRss = process.memoryUsage().rss;
for (const format of ['jsonl', 'csv', 'html'] as const) {
  const file = path.join(dir, `export.${format}`);
  t = performance.now();
  const { rows } = await exportAudit({
    client,
    db: 'vigie',
    tenant: 'bench',
    from: new Date(0),
    to: new Date(Date.UTC(2100, 0)),
    format,
    file,
  });
  const sec = (performance.now() - t) / 1000;
  results[format] = {
    rows,
    seconds: Number(sec.toFixed(1)),
    rowsPerSec: Math.round(rows / sec),
    fileMB: Number((statSync(file).size / 1e6).toFixed(1)),
    ratioToRawStream: Number((baselineSec / sec).toFixed(3)),
  };
}
clearInterval(sampler);
await client.close();
await cleanUp();
const maxRssMB = process.resourceUsage().maxRSS / 1024;
console.log(
  JSON.stringify({
    bench: 'audit-export',
    engine,
    rows: N,
    rawStream: {
      seconds: Number(baselineSec.toFixed(1)),
      rowsPerSec: Math.round(N / baselineSec),
      MB: Number((baselineBytes / 1e6).toFixed(1)),
    },
    ...results,
    rssAtStartMB: Math.round(rssBefore / 1e6),
    exportPeakRssMB: Math.round(peakRss / 1e6),
    processLifetimeMaxRssMB: Math.round(maxRssMB * 1.048576),
    target: 'export peak RSS <= 200 MB',
  }),
);
