import { EventEmitter } from 'node:events';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
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
   * How long this gateway's own event loop was busy while the probe waited (ms). The answer waits for the loop too:
   * a gateway busy with its own work makes every worker look late, and that part is not the worker's.
   */
  loopBusyMs: number;
}

/**
 * Asks every live worker once per interval for its resource usage and measures how long the answer takes. A probe
 * still unanswered at the next tick is reported as it stands (its wait so far), so that a stalled worker is seen
 * while it stalls, not after.
 */
export class WorkerHealth {
  readonly observer = new EventEmitter<{ sample: [sample: WorkerHealthSample] }>();
  readonly #prev = new Map<number, { cpuMs: number; at: number }>();
  /** The probe in flight to each worker: when it was sent, and the event loop's utilization then. */
  readonly #pending = new Map<number, { sentAt: number; loop: EventLoopUtilization }>();
  #timer?: NodeJS.Timeout;

  constructor(
    private readonly sfu: Sfu,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /**
   * The time the event loop spent running code (not waiting for I/O) since `since`: an answer that arrived meanwhile
   * waited at most that long for it. All of it is counted, so a loop busy but not stuck takes a little more off the
   * wait than it added; a worker that is really late stays late.
   */
  static #busyMs(since: EventLoopUtilization): number {
    return performance.eventLoopUtilization(since).active;
  }

  #tick(): void {
    const now = Date.now();
    for (const slot of this.sfu.pool.slots) {
      const { worker } = slot;
      if (worker.died || worker.closed) continue;
      const pending = this.#pending.get(worker.pid);
      if (pending) {
        const loopBusyMs = WorkerHealth.#busyMs(pending.loop);
        this.observer.emit('sample', { slot, ts: now, latencyMs: now - pending.sentAt, loopBusyMs });
        continue;
      }
      const loop = performance.eventLoopUtilization();
      this.#pending.set(worker.pid, { sentAt: now, loop });
      worker
        .getResourceUsage()
        .then((u) => {
          const at = Date.now();
          const cpuMs = u.ru_utime + u.ru_stime;
          const prev = this.#prev.get(worker.pid);
          this.#prev.set(worker.pid, { cpuMs, at });
          const cpu =
            prev && at > prev.at ? Math.min(1, Math.max(0, (cpuMs - prev.cpuMs) / (at - prev.at))) : undefined;
          const loopBusyMs = WorkerHealth.#busyMs(loop);
          this.observer.emit('sample', { slot, ts: at, cpu, latencyMs: at - now, loopBusyMs });
        })
        .catch(() => undefined) // closed meanwhile: the pool replaces it, and its rooms close
        .finally(() => this.#pending.delete(worker.pid));
    }
  }
}
