/**
 * Export of 1,000,000 audit entries: throughput and peak RSS of the exporting
 * process (target: at most 200 MB). Baseline, same run and engine: reading
 * the same rows out of ClickHouse as raw bytes, page by page, into nothing,
 * measured in every round with the three exports, rotating which goes first.
 *
 * By default ClickHouse runs in its own process (the embedded engine behind an
 * HTTP endpoint), as a clickhouse-server does in production, so the RSS
 * measured is the exporter's. BENCH_AUDIT_ENGINE=embedded runs the engine in
 * the exporting process instead, as `npm start` does; the RSS then includes
 * the engine, and what matters is the growth during the export.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createClickHouseClient, migrate } from '../src/clickhouse/index.js';
import { exportAudit } from '../src/compliance/index.js';
import { startChdbHttp } from '../test/helpers/chdbHttpServer.js';
import { benchTempDir, median, ratioInterval, rotated } from './common.js';

const N = Number(process.env.BENCH_AUDIT_ROWS ?? 1_000_000);
const engine = process.env.BENCH_AUDIT_ENGINE === 'embedded' ? 'embedded' : 'http';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// A gigabyte of ClickHouse data and exports: removed at exit, even a failed one (benchTempDir).
const dir = benchTempDir('audit');
const server = engine === 'http' ? await startChdbHttp(path.join(dir, 'clickhouse')) : undefined;
try {
  const client = await createClickHouseClient({
    dataDir: dir,
    clickhouse: { url: server?.url, user: 'default', database: 'vigie', requestTimeoutMs: 600_000 },
  });
  await migrate(client, { database: 'vigie', log: pino({ level: 'warn' }) });
  await client.command({
    query: `INSERT INTO vigie.audit_log SELECT 'bench', number + 1, fromUnixTimestamp64Milli(toInt64(1795000000000 + number)), concat('key:k', toString(number % 20)), ['recording.read', 'recording.download', 'recordings.list', 'dsar.access', 'retention.delete'][number % 5 + 1], concat('recording:', toString(generateUUIDv4())), lower(hex(sipHash128(number))), 'ok', '10.0.0.1', '{"k":1}', lower(hex(sipHash128(number - 1))), lower(hex(sipHash128(number))) FROM numbers(${N})`,
    clickhouse_settings: { insert_deduplication_token: `bench-${Date.now()}` },
  });
  const rssBefore = process.memoryUsage().rss;
  // The target concerns the export: the peak is sampled only while one runs.
  let exporting = false;
  let peakRss = 0;
  const sampler = setInterval(() => {
    if (exporting) peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 20);

  // Baseline: the same rows read out of ClickHouse as raw JSONEachRow bytes, in pages of the same size, discarded.
  let baselineBytes = 0;
  async function rawStream(): Promise<number> {
    baselineBytes = 0;
    for (let lo = 1; lo <= N; lo += 10_000) {
      const page = await client.exec({
        query: `SELECT * FROM vigie.audit_log WHERE tenant = 'bench' AND seq BETWEEN {lo:UInt64} AND {hi:UInt64} ORDER BY seq FORMAT JSONEachRow`,
        query_params: { lo, hi: lo + 9_999 },
      });
      for await (const chunk of page.stream) baselineBytes += (chunk as Buffer).length;
    }
    return N;
  }

  const exporter = (format: 'jsonl' | 'csv' | 'html') => async () => {
    global.gc?.(); // with --expose-gc (bench/run.ts): the baseline's pages are not counted in the export's peak
    exporting = true;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    try {
      const { rows } = await exportAudit({
        client,
        db: 'vigie',
        tenant: 'bench',
        from: new Date(0),
        to: new Date(Date.UTC(2100, 0)),
        format,
        file: path.join(dir, `export.${format}`),
      });
      return rows;
    } finally {
      exporting = false;
    }
  };
  const targets = { rawStream, jsonl: exporter('jsonl'), csv: exporter('csv'), html: exporter('html') };
  type Target = keyof typeof targets;
  const names = Object.keys(targets) as Target[];
  const seconds = Object.fromEntries(names.map((t) => [t, [] as number[]])) as Record<Target, number[]>;
  const rowCount: Partial<Record<Target, number>> = {};
  // A run of each first, not counted: the first query of the process and the first export pay their start-up (the
  // engine's caches, the JIT). Then every round reads the baseline and runs each export, rotating which goes first.
  for (const t of names) await targets[t]();
  for (let i = 0; i < ROUNDS; i++)
    for (const t of rotated(names, i)) {
      const t0 = performance.now();
      rowCount[t] = await targets[t]();
      seconds[t].push((performance.now() - t0) / 1000);
      console.error(`[audit-export] round ${i + 1} ${t.padEnd(9)} ${seconds[t].at(-1)!.toFixed(2)} s`);
    }
  clearInterval(sampler);
  await client.close();
  const maxRssMB = process.resourceUsage().maxRSS / 1024;
  // Medians over the rounds; a ratio is the raw read's median time over the export's (a ratio of throughputs), with
  // a paired bootstrap interval over the rounds.
  const results = Object.fromEntries(
    (['jsonl', 'csv', 'html'] as const).map((format) => {
      const sec = median(seconds[format]);
      return [
        format,
        {
          rows: rowCount[format],
          seconds: Number(sec.toFixed(1)),
          rowsPerSec: Math.round(rowCount[format]! / sec),
          fileMB: Number((statSync(path.join(dir, `export.${format}`)).size / 1e6).toFixed(1)),
          ratioToRawStream: Number((median(seconds.rawStream) / sec).toFixed(3)),
          ratioToRawStreamCi95: ratioInterval(seconds.rawStream, seconds[format]),
        },
      ];
    }),
  );
  const baselineSec = median(seconds.rawStream);
  console.log(
    JSON.stringify({
      bench: 'audit-export',
      engine,
      rows: N,
      rounds: ROUNDS,
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
} finally {
  // Before the folder holding its data is removed (at exit, by benchTempDir).
  await server?.stop();
}
