import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomicSync } from './files.js';
import path from 'node:path';

/**
 * Reads a secret from the data directory, creating it (random, mode 0600) on
 * first use. The embedded defaults need secrets, and a secret baked into the
 * code would be the same on every install.
 */
export function loadOrCreateSecret(dataDir: string, name: string, bytes = 32): { value: string; created: boolean } {
  const file = path.join(dataDir, 'secrets', name);
  try {
    return { value: readFileSync(file, 'utf8').trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = randomBytes(bytes).toString('base64url');
  writeFileAtomicSync(file, value, { mode: 0o600 });
  return { value, created: true };
}
