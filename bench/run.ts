/**
 * Runs every benchmark in its own process (the embedded ClickHouse allows one
 * data directory per process) and prints their JSON results. Record them in
 * bench/README.md with the date and the machine.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const benches = [
  'writer-throughput',
  'telemetry-overhead',
  'getstats-cost',
  'api-throughput',
  'recording',
  'audit-export',
  'join-page',
  'control-plane',
  'capacity',
  'diagnosis-accuracy',
].filter((b) => only.length === 0 || only.includes(b));
for (const name of benches) {
  console.error(`[bench] ${name} …`);
  // --expose-gc: audit-export collects before each export, so that its peak RSS is the export's and not what the
  // baseline read before it left in the heap (202 MB without, 177 MB with, at 1,000,000 rows on 2026-11-30).
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(here, `${name}.ts`)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) {
    console.error(`[bench] ${name} failed (exit ${r.status})`);
    process.exitCode = 1;
    continue;
  }
  console.log(r.stdout.trim().split('\n').at(-1));
}
