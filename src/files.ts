import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';

/** SHA-256 of a file, streamed: recordings and archives can be large. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Replaces a file whole or not at all: a reader, or a restart after a crash
 * mid-write, finds the old content or the new one, never half of it.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  await writeFile(`${file}.tmp`, data, options);
  await rename(`${file}.tmp`, file);
}

/** The same, for the few state files written synchronously (at start-up, or before an answer is sent). */
export function writeFileAtomicSync(file: string, data: string, options: { mode?: number } = {}): void {
  writeFileSync(`${file}.tmp`, data, options);
  renameSync(`${file}.tmp`, file);
}

/**
 * The entries of an append-only JSON Lines journal, in order; none if the file
 * does not exist yet. A line that does not parse (the torn tail of an append a
 * crash cut short) is passed to `onTorn` and skipped.
 */
export function readJsonLines<T>(file: string, onTorn: () => void = () => undefined): T[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const entries: T[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      entries.push(JSON.parse(line) as T);
    } catch {
      onTorn();
    }
  }
  return entries;
}
