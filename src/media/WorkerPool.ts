import { EventEmitter } from 'node:events';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import type { Logger } from '../logging.js';

export interface WorkerPoolOptions {
  size: number;
  workerBin: string;
  logLevel: ms.WorkerLogLevel;
  /** When set, each worker gets a WebRtcServer on `basePort + index`. */
  webRtcServer?: { ip: string; announcedAddress?: string; basePort: number; udp: boolean; tcp: boolean };
}

/** One pool slot: a worker, its optional WebRtcServer, and the load placed on it. */
export interface WorkerSlot {
  readonly index: number;
  worker: ms.Worker;
  webRtcServer?: ms.WebRtcServer;
  /** Rooms (routers) currently on this worker. */
  routers: number;
  /** Peers in those rooms; the placement weight. */
  peers: number;
}

export interface WorkerPoolObserverEvents {
  /** A worker process died. Rooms on it must be closed; the pool replaces it. */
  workerdied: [slot: WorkerSlot, error: Error];
  workerreplaced: [slot: WorkerSlot];
  workerreplacefailed: [slot: WorkerSlot, error: Error];
}

/**
 * A fixed-size pool of mediasoup workers (one per core by default). Rooms are
 * placed on the least-loaded worker; a worker that dies is replaced in place.
 */
export class WorkerPool {
  readonly observer = new EventEmitter<WorkerPoolObserverEvents>();
  readonly #slots: WorkerSlot[] = [];
  #closed = false;

  constructor(
    private readonly options: WorkerPoolOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    for (let index = 0; index < this.options.size; index++) {
      const slot: WorkerSlot = { index, routers: 0, peers: 0, ...(await this.#spawn(index)) };
      this.#slots.push(slot);
      this.#watch(slot);
    }
    this.log.info({ workers: this.#slots.map((s) => s.worker.pid) }, 'mediasoup worker pool started');
  }

  get slots(): readonly WorkerSlot[] {
    return this.#slots;
  }

  /** Ready when every slot has a live worker. */
  get ready(): boolean {
    return (
      !this.#closed &&
      this.#slots.length === this.options.size &&
      this.#slots.every((s) => !s.worker.died && !s.worker.closed)
    );
  }

  /** The live slot with the fewest peers (then routers), leaving out `avoid`; undefined when none is left. */
  leastLoaded(avoid: ReadonlySet<WorkerSlot> = new Set()): WorkerSlot | undefined {
    const live = this.#slots.filter((s) => !s.worker.died && !s.worker.closed && !avoid.has(s));
    if (live.length === 0) return undefined;
    return live.reduce((best, s) =>
      s.peers < best.peers || (s.peers === best.peers && s.routers < best.routers) ? s : best,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const s of this.#slots) s.worker.close();
  }

  async #spawn(index: number): Promise<{ worker: ms.Worker; webRtcServer?: ms.WebRtcServer }> {
    const worker = await mediasoup.createWorker({
      workerBin: this.options.workerBin,
      logLevel: this.options.logLevel,
      appData: { index },
    });
    // mediasoup closes every worker on SIGTERM by itself, which would end all
    // calls at once: the gateway drains first (src/main.ts) and closes the
    // pool after. Its listener is public but untyped; SIGINT keeps it.
    process.removeListener('SIGTERM', (worker as unknown as { onSignal: NodeJS.SignalsListener }).onSignal);
    const wrs = this.options.webRtcServer;
    if (!wrs) return { worker };
    const port = wrs.basePort + index;
    const listenInfos: ms.TransportListenInfo[] = [];
    if (wrs.udp) listenInfos.push({ protocol: 'udp', ip: wrs.ip, announcedAddress: wrs.announcedAddress, port });
    if (wrs.tcp) listenInfos.push({ protocol: 'tcp', ip: wrs.ip, announcedAddress: wrs.announcedAddress, port });
    const webRtcServer = await worker.createWebRtcServer({ listenInfos });
    return { worker, webRtcServer };
  }

  #watch(slot: WorkerSlot): void {
    const worker = slot.worker;
    worker.on('died', (error) => {
      if (this.#closed) return;
      this.log.error(
        { worker: slot.index, pid: worker.pid, err: error },
        'mediasoup worker died; closing its rooms and replacing it',
      );
      this.observer.emit('workerdied', slot, error);
      void this.#replace(slot);
    });
  }

  async #replace(slot: WorkerSlot, attempt = 1): Promise<void> {
    try {
      const fresh = await this.#spawn(slot.index);
      if (this.#closed) {
        fresh.worker.close();
        return;
      }
      slot.worker = fresh.worker;
      slot.webRtcServer = fresh.webRtcServer;
      this.#watch(slot);
      this.log.info({ worker: slot.index, pid: slot.worker.pid }, 'mediasoup worker replaced');
      this.observer.emit('workerreplaced', slot);
    } catch (err) {
      this.log.error({ worker: slot.index, err, attempt }, 'could not replace mediasoup worker; retrying');
      this.observer.emit('workerreplacefailed', slot, err as Error);
      if (!this.#closed && attempt < 10)
        setTimeout(() => void this.#replace(slot, attempt + 1), Math.min(30_000, 500 * 2 ** attempt)).unref();
    }
  }
}
