import type { types as ms } from 'mediasoup';
import type { WorkerSlot } from './WorkerPool.js';

/** What one router of a room carries, for placement and for the node registry. */
export interface RouterLoad {
  tenant: string;
  room: string;
  routerId: string;
  worker: number;
  peers: number;
  consumers: number;
}

/**
 * One of a room's routers, on one worker, and the load it carries. A room starts with one; when every router it
 * has reached the consumer budget, the next participant is served by a new one on another worker (see
 * Room.routerFor), and producers are piped between them.
 *
 * The router owns its share of the slot's counters: it adds them when created or given a peer, and takes them
 * back once, when the router closes (whoever closes it: the room, the worker's death).
 */
export class RoomRouter {
  /** The participants served here (by peer id). */
  readonly #peers = new Set<string>();
  /** Every consumer on the router: participants', pipes' to the room's other routers, recorders'. */
  #consumers = 0;

  constructor(
    readonly router: ms.Router,
    readonly slot: WorkerSlot,
    /** A consumer here started (+1) or stopped (-1) receiving its producer: see Room.isWanted. */
    private readonly onReceiving: (producerId: string, delta: 1 | -1) => void = () => undefined,
  ) {
    slot.routers++;
    router.observer.on('newtransport', (transport) => {
      transport.observer.on('newconsumer', (consumer) => {
        this.#consumers++;
        consumer.observer.once('close', () => this.#consumers--);
        this.#watchReceiving(consumer);
      });
    });
    router.observer.once('close', () => {
      slot.routers--;
      slot.peers -= this.#peers.size;
      this.#peers.clear();
    });
  }

  get closed(): boolean {
    return this.router.closed;
  }

  /** Reports each change of whether `consumer` receives media: not paused by whoever receives it, and open. */
  #watchReceiving(consumer: ms.Consumer): void {
    let receiving = false;
    const update = () => {
      // `paused` is the consumer's own state; a paused producer does not make its consumers unwanted.
      const now = !consumer.closed && !consumer.paused;
      if (now === receiving) return;
      receiving = now;
      this.onReceiving(consumer.producerId, now ? 1 : -1);
    };
    update();
    consumer.observer.on('pause', update);
    consumer.observer.on('resume', update);
    consumer.observer.once('close', update);
  }

  get consumers(): number {
    return this.#consumers;
  }

  get peers(): ReadonlySet<string> {
    return this.#peers;
  }

  add(peerId: string): void {
    if (this.router.closed || this.#peers.has(peerId)) return;
    this.#peers.add(peerId);
    this.slot.peers++;
  }

  delete(peerId: string): void {
    if (this.#peers.delete(peerId)) this.slot.peers--;
  }
}
