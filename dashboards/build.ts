/**
 * Writes every dashboard to dashboards/json/ (`npm run dashboards`).
 * With --check, writes nothing and exits 1 when a committed file is out of date.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDashboards, serialize } from './src/index.js';

const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'json');
const check = process.argv.includes('--check');
const built = buildDashboards();
const stale: string[] = [];
for (const { file, dashboard } of built) {
  const target = path.join(outDir, file);
  const text = serialize(dashboard);
  if (existsSync(target) && readFileSync(target, 'utf8') === text) continue;
  stale.push(file);
  if (!check) writeFileSync(target, text);
}
const known = new Set(built.map((b) => b.file));
for (const file of readdirSync(outDir).filter((f) => f.endsWith('.json') && !known.has(f))) {
  stale.push(`${file} (no longer generated)`);
  if (!check) rmSync(path.join(outDir, file));
}
if (check && stale.length) {
  console.error(`dashboards out of date: ${stale.join(', ')}. Run: npm run dashboards`);
  process.exit(1);
}
console.log(
  check ? 'dashboards up to date' : stale.length ? `wrote ${stale.join(', ')}` : 'dashboards already up to date',
);
