import { existsSync, readFileSync, renameSync } from 'node:fs';

export interface LegacyImportOptions {
  /**
   * When `<name>.imported` is already there (a copy set aside by an earlier
   * import), rename to `<name>.imported.<ms>` instead of replacing it, so no
   * earlier copy is lost (tenants.json: an operator may restore the file).
   */
  keepEarlier?: boolean;
}

export interface LegacyImport {
  /** What `load` counted as imported. */
  rows: number;
  /** Where the file was set aside. */
  renamedTo: string;
}

/**
 * Imports a JSON state file of the version before the store, once: `load`
 * writes its content into PostgreSQL (idempotently: a crash before the rename
 * imports it again), then the file is renamed `<name>.imported`, never deleted.
 * A missing file is nothing to import (undefined); a corrupt one stops the
 * start rather than silently dropping what it held.
 */
export async function importLegacyFile(
  file: string,
  load: (content: unknown) => Promise<number>,
  options: LegacyImportOptions = {},
): Promise<LegacyImport | undefined> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch (err) {
    throw new Error(`cannot import ${file}: ${(err as Error).message}`);
  }
  const rows = await load(content);
  const renamedTo =
    options.keepEarlier && existsSync(`${file}.imported`) ? `${file}.imported.${Date.now()}` : `${file}.imported`;
  renameSync(file, renamedTo);
  return { rows, renamedTo };
}
