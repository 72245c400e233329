import { readdir } from 'node:fs/promises';
import { waitFor } from './browser.js';
import path from 'node:path';

/**
 * How many of the recorders now writing under `dataDir` have begun segment `n` (0: ffmpeg has found its streams
 * and written the first file). A test that records for a fixed time instead fails when ffmpeg, a browser or a bot
 * starts late on a busy machine: stopped before it has found its streams, ffmpeg leaves no file at all.
 */
export async function recordersWithSegment(dataDir: string, n: number): Promise<number> {
  const active = path.join(dataDir, 'recordings', 'active');
  const prefix = `segment-${String(n).padStart(3, '0')}`;
  const dirs = await readdir(active).catch(() => [] as string[]);
  const found = await Promise.all(
    dirs.map(async (d) =>
      (await readdir(path.join(active, d)).catch(() => [] as string[])).some((f) => f.startsWith(prefix)),
    ),
  );
  return found.filter(Boolean).length;
}

/**
 * Waits until `n` recorders under `dataDir` have found their streams and written their first file, then records
 * `thenMs` more. Stopped before that, ffmpeg leaves no file (on a busy machine, ffmpeg and the first keyframes come
 * late), so a recording test that must produce files records from this point, not for a fixed time.
 */
export async function recordFromFirstFiles(dataDir: string, n: number, thenMs: number): Promise<void> {
  await waitFor(
    `${n} recorder(s) to write a file`,
    () => recordersWithSegment(dataDir, 0),
    (found) => found >= n,
    120_000,
  );
  await new Promise((r) => setTimeout(r, thenMs));
}
