/**
 * What the benchmarks share: their temporary folders, and the statistics that compare a target with its baseline
 * measured in the same rounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onProcessEnd } from '../test/helpers/processEnd.js';

const tempDirs = new Set<string>();
const removeTempDirs = () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
};
let hooked = false;

/**
 * A new folder under the system's temporary directory (`vigie-bench-<name>-XXXXXX`), removed when the process ends:
 * at the end of the script, on `process.exit`, on an uncaught error or rejection, and on SIGINT or SIGTERM
 * (`onProcessEnd`). A bench's clip, ClickHouse data and exports run to gigabytes; a failed or interrupted run must not
 * leave them behind. Children writing into the folder (a ClickHouse endpoint) are the bench's to stop first, in a
 * `finally`.
 */
export function benchTempDir(name: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `vigie-bench-${name}-`));
  if (!hooked) onProcessEnd(removeTempDirs);
  hooked = true;
  tempDirs.add(dir);
  // Said on stderr, which the bench's JSON line does not use: test/bench-cleanup.test.ts checks it is gone.
  console.error(`[bench] temporary folder ${dir}`);
  return dir;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);

/**
 * A 95% interval for `statistic(a) / statistic(b)` (the ratio of medians by default), by a paired bootstrap over the
 * rounds: `a[i]` and `b[i]` were measured in the same round and are drawn together, so that a drift of the machine's
 * load between rounds moves both. One round's time to a first frame varies by a factor of two (the remote's next key
 * frame, the decoder's start), so the median ratio of a run of 30 rounds moves by about ±0.1 from run to run: the
 * interval says how far this run's ratio can be trusted.
 */
export function ratioInterval(
  a: number[],
  b: number[],
  statistic: (xs: number[]) => number = median,
  draws = 4000,
): [number, number] {
  if (a.length !== b.length) throw new Error(`paired samples differ in length: ${a.length} and ${b.length}`);
  let seed = 0x9e3779b9; // deterministic, so that the same samples give the same interval
  const random = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const ratios: number[] = [];
  for (let d = 0; d < draws; d++) {
    const pick = a.map(() => Math.floor(random() * a.length));
    ratios.push(statistic(pick.map((i) => a[i]!)) / statistic(pick.map((i) => b[i]!)));
  }
  ratios.sort((x, y) => x - y);
  return [ratios[Math.floor(draws * 0.025)]!, ratios[Math.floor(draws * 0.975)]!].map((r) => Number(r.toFixed(3))) as [
    number,
    number,
  ];
}

/** The order of `targets` in round `i`: rotated each round, so that none is always first (or always last). */
export const rotated = <T>(targets: readonly T[], i: number): T[] => [
  ...targets.slice(i % targets.length),
  ...targets.slice(0, i % targets.length),
];
