import { EventEmitter } from 'node:events';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import type { Sfu, WorkerSlot } from '../media/index.js';

/** One worker's health over one interval. */
export interface WorkerHealthSample {
  slot: WorkerSlot;
  ts: number;
  /** Share of one core the worker used since the previous sample (0…1); undefined when it did not answer. */
  cpu?: number;
  /**
   * How long the worker took to answer a request over its channel (ms). A worker starved of CPU, or too busy to read
   * its channel, answers late: what a request costs it, RTP costs it too. When it has not answered by the end of the
   * interval, this is the time waited so far.
   */
  latencyMs: number;
  /**
   * The longest this gateway's own event loop was held up since the previous tick (ms). The probe's answer waits for
   * the loop too: a gateway busy with its own work makes every worker look late, and that part is not the worker's.
   */
  loopDelayMs: number;
}

/**
 * Asks every live worker once per interval for its resource usage and measures how long the answer takes. A probe
 * still unanswered at the next tick is reported as it stands (its wait so far), so that a stalled worker is seen
 * while it stalls, not after.
 */
export class WorkerHealth {
  readonly observer = new EventEmitter<{ sample: [sample: WorkerHealthSample] }>();
  readonly #prev = new Map<number, { cpuMs: number; at: number }>();
  readonly #pending = new Map<number, number>();
  #timer?: NodeJS.Timeout;
  #loop?: IntervalHistogram;

  constructor(
    private readonly sfu: Sfu,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.#loop = monitorEventLoopDelay({ resolution: 10 });
    this.#loop.enable();
    this.#timer = setInterval(() => this.#tick(), this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#loop?.disable();
  }

  /** The event loop's longest delay since the last tick, in ms (the histogram counts in nanoseconds). */
  #loopDelayMs(): number {
    const max = this.#loop?.max ?? 0;
    // Before any delay is recorded, max is a huge sentinel.
    return max > 0 && max < 3.6e12 ? max / 1e6 : 0;
  }

  #tick(): void {
    const now = Date.now();
    const loopDelayMs = this.#loopDelayMs();
    this.#loop?.reset();
    for (const slot of this.sfu.pool.slots) {
      const { worker } = slot;
      if (worker.died || worker.closed) continue;
      const sentAt = this.#pending.get(worker.pid);
      if (sentAt !== undefined) {
        this.observer.emit('sample', { slot, ts: now, latencyMs: now - sentAt, loopDelayMs });
        continue;
      }
      this.#pending.set(worker.pid, now);
      worker
        .getResourceUsage()
        .then((u) => {
          const at = Date.now();
          const cpuMs = u.ru_utime + u.ru_stime;
          const prev = this.#prev.get(worker.pid);
          this.#prev.set(worker.pid, { cpuMs, at });
          const cpu =
            prev && at > prev.at ? Math.min(1, Math.max(0, (cpuMs - prev.cpuMs) / (at - prev.at))) : undefined;
          // The loop's delay since this tick, which held up this answer too, and the tick's own before it.
          const delay = Math.max(loopDelayMs, this.#loopDelayMs());
          this.observer.emit('sample', { slot, ts: at, cpu, latencyMs: at - now, loopDelayMs: delay });
        })
        .catch(() => undefined) // closed meanwhile: the pool replaces it, and its rooms close
        .finally(() => this.#pending.delete(worker.pid));
    }
  }
}
