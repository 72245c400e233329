import { EventEmitter } from 'node:events';
import type { Logger } from '../logging.js';
import { ObjectLockedError, type ObjectStore } from '../recording/ObjectStore.js';
import type { RecordingCatalog } from '../recording/catalog.js';
import type { CatalogRow } from '../recording/RecordingService.js';
import type { WebhookEvent } from '../webhooks/index.js';

export interface SweeperDeps {
  /** The catalog on PostgreSQL: a legal hold set through any node is read here before each deletion. */
  catalog: RecordingCatalog;
  store: ObjectStore;
  rows: { write(table: string, row: unknown): void; flush(): Promise<void> };
  webhook: (tenant: string, event: WebhookEvent, data: Record<string, unknown>) => void;
  log: Logger;
}

/**
 * Deletes recordings whose retention has expired, except those under legal
 * hold, and writes a deletion record for each: what, when, under which policy,
 * and which object version.
 */
export class Sweeper {
  /** Each deletion, for the audit log. */
  readonly observer = new EventEmitter<{ deleted: [row: CatalogRow]; swept: [deleted: number] }>();
  #timer?: NodeJS.Timeout;
  #running?: Promise<number>;

  constructor(private readonly d: SweeperDeps) {}

  /** Sweeps every `intervalSeconds`; given a singleton, only while this node holds it (one node sweeps). */
  start(intervalSeconds: number, singleton?: { readonly held: boolean }): void {
    this.#timer = setInterval(() => {
      if (singleton?.held !== false) void this.sweep();
    }, intervalSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One pass; returns how many recordings were deleted. Passes never overlap. */
  sweep(): Promise<number> {
    this.#running ??= this.#sweep().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #sweep(): Promise<number> {
    const due = await this.d.catalog.due(1000);
    let deleted = 0;
    for (const candidate of due) {
      // The claim re-reads the row in a transaction: a hold set since the listing, on any node, wins.
      const { row: r, refusal } = await this.d.catalog.claimDeletion(candidate.tenant, candidate.id, ['ready'], {
        expired: true,
      });
      if (!r || refusal) continue;
      try {
        await this.d.store.remove(r.object_key, r.version_id);
      } catch (err) {
        await this.d.catalog.releaseClaim(r);
        if (err instanceof ObjectLockedError) {
          this.d.log.warn(
            { tenant: r.tenant, recording: r.id, reason: err.message },
            'expired recording still locked in the store (legal hold set there?); kept',
          );
          continue;
        }
        this.d.log.error(
          { tenant: r.tenant, recording: r.id, err },
          'retention deletion failed; will retry next sweep',
        );
        continue;
      }
      const now = Date.now();
      const reason = `retention:${r.retention_policy}`;
      // The row outlives the recording as a deletion record only: without pseudonyms.
      await this.d.catalog.finishDeletion(r, reason, { forget: true });
      this.d.rows.write('retention_deletions', {
        ts: now,
        tenant: r.tenant,
        category: 'recordings',
        object_id: r.id,
        object_key: r.object_key,
        version_id: r.version_id,
        policy: r.retention_policy,
        reason: `expired at ${r.retain_until}`,
      });
      this.observer.emit('deleted', r);
      this.d.webhook(r.tenant, 'retention.deleted', {
        category: 'recordings',
        recordingId: r.id,
        objectKey: r.object_key,
        versionId: r.version_id,
        policy: r.retention_policy,
        retainUntil: r.retain_until,
      });
      deleted++;
    }
    if (deleted) this.d.log.info({ deleted, due: due.length }, 'retention sweep deleted expired recordings');
    await this.d.rows.flush();
    this.observer.emit('swept', deleted);
    return deleted;
  }
}
