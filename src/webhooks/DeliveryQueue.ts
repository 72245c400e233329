import { appendFileSync, mkdirSync, openSync, closeSync, fsyncSync } from 'node:fs';
import { readJsonLines, writeFileAtomicSync } from '../files.js';
import path from 'node:path';
import type { Logger } from '../logging.js';

export interface Delivery {
  id: string;
  tenant: string;
  endpointId: string;
  event: string;
  /** The exact body sent, and signed, on every attempt. */
  body: string;
  createdAt: number;
  attempts: number;
  nextAt: number;
}

type JournalEntry =
  | { op: 'enqueue'; d: Delivery }
  | { op: 'attempt'; id: string; attempts: number; nextAt: number }
  | { op: 'done'; id: string }
  | { op: 'dead'; id: string; reason: string };

/**
 * Pending webhook deliveries, kept in an append-only journal (one JSON line
 * per change, fsynced) so a restart resumes every delivery where it was. The
 * journal is rewritten with only what is pending once it is mostly history.
 */
export class DeliveryQueue {
  readonly #pending = new Map<string, Delivery>();
  #lines = 0;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {
    mkdirSync(path.dirname(file), { recursive: true });
    for (const e of readJsonLines<JournalEntry>(file, () =>
      this.log.error({ file }, 'webhook journal has a torn last line; ignored'),
    )) {
      this.#lines++;
      if (e.op === 'enqueue') this.#pending.set(e.d.id, e.d);
      else if (e.op === 'attempt') {
        const d = this.#pending.get(e.id);
        if (d) Object.assign(d, { attempts: e.attempts, nextAt: e.nextAt });
      } else this.#pending.delete(e.id);
    }
    if (this.#pending.size)
      this.log.info({ pending: this.#pending.size }, 'webhook deliveries resumed from the journal');
  }

  get size(): number {
    return this.#pending.size;
  }

  /** Pending deliveries, oldest first. */
  pending(): Delivery[] {
    return [...this.#pending.values()];
  }

  enqueue(d: Delivery): void {
    this.#append({ op: 'enqueue', d });
    this.#pending.set(d.id, d);
  }

  retryLater(d: Delivery, nextAt: number): void {
    d.attempts++;
    d.nextAt = nextAt;
    this.#append({ op: 'attempt', id: d.id, attempts: d.attempts, nextAt });
  }

  done(d: Delivery): void {
    this.#append({ op: 'done', id: d.id });
    this.#pending.delete(d.id);
    this.#maybeCompact();
  }

  dead(d: Delivery, reason: string): void {
    this.#append({ op: 'dead', id: d.id, reason });
    this.#pending.delete(d.id);
    this.#maybeCompact();
  }

  #append(e: JournalEntry): void {
    const fd = openSync(this.file, 'a');
    try {
      appendFileSync(fd, `${JSON.stringify(e)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.#lines++;
  }

  /**
   * Replaces the body of each pending delivery for which `redact` returns a
   * new one (erasure), then compacts, so that no older copy of a body stays in
   * the journal. Returns how many deliveries were changed.
   */
  redact(redact: (d: Delivery) => string | undefined): number {
    let changed = 0;
    for (const d of this.#pending.values()) {
      const body = redact(d);
      if (body === undefined || body === d.body) continue;
      d.body = body;
      changed++;
    }
    if (changed) this.compact(true);
    return changed;
  }

  /**
   * Rewrites the journal with only the pending deliveries, dropping the bodies
   * of those delivered or given up (the retention sweep calls it). Returns the
   * number of lines removed. `force` rewrites even without history (bodies changed).
   */
  compact(force = false): number {
    const removed = this.#lines - this.#pending.size;
    if (removed === 0 && !force) return 0;
    const text = this.pending()
      .map((d) => JSON.stringify({ op: 'enqueue', d }))
      .join('\n');
    writeFileAtomicSync(this.file, text ? `${text}\n` : '');
    this.#lines = this.#pending.size;
    return removed;
  }

  #maybeCompact(): void {
    if (this.#lines < 1000 || this.#lines < this.#pending.size * 4) return;
    this.compact();
  }
}
