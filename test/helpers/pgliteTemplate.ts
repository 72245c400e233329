import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';

// The package's exports hide its package.json from require(); the file is read where npm put it.
const manifest = fileURLToPath(new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url));
const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
const TEMPLATE = path.join(os.tmpdir(), `vigie-pglite-template-${version}`);

/**
 * Fills `dir` with a fresh embedded PostgreSQL cluster. Creating one runs
 * initdb in WebAssembly (2 to 9 s on the 2-core CI machine); the suite starts
 * dozens of gateways, so the cluster is created once per machine and copied,
 * as `createdb` copies template1. Each gateway still opens a cluster of its own.
 */
export async function seedEmbeddedDatabase(dir: string): Promise<void> {
  if (!existsSync(TEMPLATE)) {
    const building = mkdtempSync(path.join(os.tmpdir(), 'vigie-pglite-building-'));
    const db = await PGlite.create(building);
    await db.close();
    try {
      renameSync(building, TEMPLATE);
    } catch {
      // Another test process made it first: use theirs.
      rmSync(building, { recursive: true, force: true });
    }
  }
  cpSync(TEMPLATE, dir, { recursive: true });
}
