import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logging.js';
import { expireRow } from './inventory.js';
import type { RetentionPolicy } from './policy.js';

export interface DataDirSweeperDeps {
  dataDir: string;
  /** The policy of a tenant; "default" for a tenant no longer configured. */
  policyOf: (tenant: string) => RetentionPolicy;
  /** The telemetry writer: its spool, and the sink of deletion records. */
  writer?: {
    rewriteHeld(fn: (table: string, row: unknown) => unknown): Promise<number>;
    write(table: string, row: unknown): void;
  };
  /** The webhook outbox: vacuumed, so that finished bodies leave its pages. */
  journal?: { compact(): Promise<number> };
  log: Logger;
}

/**
 * Applies the retention rules of the files under DATA_DIR (see FILE_RULES):
 * audit exports and DSAR archives older than their tenant's `dsar_exports`
 * duration are deleted, spooled telemetry rows past their table's rule are
 * dropped or anonymised, and the webhook outbox is vacuumed so that the
 * bodies of finished deliveries (their rows deleted) leave its pages.
 */
export class DataDirSweeper {
  #timer?: NodeJS.Timeout;
  #running?: Promise<unknown>;

  constructor(private readonly d: DataDirSweeperDeps) {}

  start(intervalSeconds: number): void {
    this.#timer = setInterval(
      () => void this.sweep().catch((err) => this.d.log.error({ err }, 'data directory retention sweep failed')),
      intervalSeconds * 1000,
    );
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One pass (passes never overlap). */
  sweep(
    now = Date.now(),
  ): Promise<{ exportsDeleted: string[]; spoolRowsRemoved: number; journalLinesRemoved: number }> {
    this.#running ??= this.#sweep(now).finally(() => (this.#running = undefined));
    return this.#running as ReturnType<DataDirSweeper['sweep']>;
  }

  async #sweep(now: number) {
    const exportsDeleted = await this.#exports(now);
    const spoolRowsRemoved =
      (await this.d.writer?.rewriteHeld((table, row) => {
        const r = expireRow(table, row as Record<string, unknown>, now, this.d.policyOf);
        return r === 'keep' ? row : r === 'drop' ? undefined : r;
      })) ?? 0;
    const journalLinesRemoved = (await this.d.journal?.compact()) ?? 0;
    if (exportsDeleted.length || spoolRowsRemoved || journalLinesRemoved)
      this.d.log.info(
        { exportsDeleted: exportsDeleted.length, spoolRowsRemoved, journalLinesRemoved },
        'data directory retention applied',
      );
    return { exportsDeleted, spoolRowsRemoved, journalLinesRemoved };
  }

  /**
   * Exports by id: `<id>.meta.json` names the tenant; files without one (a request that died) follow the default
   * policy.
   */
  async #exports(now: number): Promise<string[]> {
    const dir = path.join(this.d.dataDir, 'exports');
    const names = await readdir(dir).catch(() => [] as string[]);
    const groups = new Map<string, string[]>();
    for (const n of names) {
      const id = /^(?:dsar-access-)?([0-9a-f-]{36})/.exec(n)?.[1] ?? n;
      groups.set(id, [...(groups.get(id) ?? []), n]);
    }
    const deleted: string[] = [];
    for (const [id, files] of groups) {
      const meta = files.find((f) => f === `${id}.meta.json`);
      const tenant = meta
        ? ((JSON.parse(await readFile(path.join(dir, meta), 'utf8').catch(() => '{}')) as { tenant?: string }).tenant ??
          '')
        : '';
      const born = Math.min(
        ...(await Promise.all(
          files.map(async (f) => (await stat(path.join(dir, f)).catch(() => undefined))?.mtimeMs ?? now),
        )),
      );
      const policy = this.d.policyOf(tenant);
      if (born + policy.categories.dsar_exports.duration * 1000 > now) continue;
      for (const f of files) await rm(path.join(dir, f), { recursive: true, force: true });
      deleted.push(id);
      this.d.writer?.write('retention_deletions', {
        ts: now,
        tenant,
        category: 'dsar_exports',
        object_id: id,
        object_key: `exports/${id}`,
        version_id: '',
        policy: policy.name,
        reason: `older than ${policy.categories.dsar_exports.duration}s`,
      });
    }
    return deleted;
  }
}
