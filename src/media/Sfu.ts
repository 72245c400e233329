import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import type { AccessClaims } from '../auth/index.js';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../logging.js';
import { MEDIA_CODECS } from './codecs.js';
import { roomOptionsSchema, type RoomOptions } from './RoomDirectory.js';
import { Room, roomKey, type TransportSettings } from './Room.js';
import type { RouterLoad } from './RoomRouter.js';
import { WorkerPool, type WorkerPoolOptions, type WorkerSlot } from './WorkerPool.js';

export interface SfuOptions {
  pool: WorkerPoolOptions;
  transport: TransportSettings;
  maxPeersPerRoom: number;
  /** Consumers one router of a room carries before new participants go to a router on another worker. */
  routerConsumerBudget: number;
}

/** The media load of this node, for the node registry: totals, and each router's share. */
export interface SfuLoad {
  peers: number;
  consumers: number;
  routers: RouterLoad[];
}

/**
 * A join that did not enter its room although its token was valid: the tenant, room and identity are the token's
 * (trusted). A join refused before its token was verified is never reported: it has no tenant anyone vouched for.
 */
export interface RefusedJoin {
  claims: AccessClaims;
  /** When the join request arrived, and when its connection opened (ms since the epoch). */
  startedAt: number;
  connectionOpenedAt: number;
  /** The stable error code the client was answered with (src/errors.ts). */
  code: ErrorCode;
  reason: string;
  /** The connection closed while the join was under way: the participant went away, nothing refused them. */
  abandoned: boolean;
}

export interface SfuObserverEvents {
  newroom: [room: Room];
  joinrefused: [join: RefusedJoin];
}

/**
 * The SFU: the worker pool and the rooms on it, keyed by tenant and room id.
 * Telemetry and recording watch it through `observer`; they never own rooms.
 */
export class Sfu {
  readonly observer = new EventEmitter<SfuObserverEvents>();
  readonly pool: WorkerPool;
  readonly #rooms = new Map<string, Room>();
  /** Rooms being created, so two first joins share one router. */
  readonly #pending = new Map<string, Promise<Room>>();
  readonly #joinHooks: Array<(claims: AccessClaims) => Promise<void>> = [];

  constructor(
    private readonly options: SfuOptions,
    private readonly log: Logger,
  ) {
    this.pool = new WorkerPool(options.pool, log.child({ component: 'worker-pool' }));
    this.pool.observer.on('workerdied', (slot) => {
      for (const room of [...this.#rooms.values()]) if (room.slot === slot) room.close('worker-died');
    });
  }

  async start(): Promise<void> {
    await this.pool.start();
  }

  get rooms(): ReadonlyMap<string, Room> {
    return this.#rooms;
  }

  getRoom(tenant: string, room: string): Room | undefined {
    const r = this.#rooms.get(roomKey(tenant, room));
    return r && !r.closed ? r : undefined;
  }

  /**
   * Work a capability must finish before a participant enters a room: the
   * telemetry prepares their pseudonym (a read, or an insert, in PostgreSQL)
   * so that every row of the call can be keyed without waiting. The media plane
   * does not know what the hooks do; signaling runs them with the room's creation.
   */
  addJoinHook(hook: (claims: AccessClaims) => Promise<void>): void {
    this.#joinHooks.push(hook);
  }

  async prepareJoin(claims: AccessClaims): Promise<void> {
    await Promise.all(this.#joinHooks.map((hook) => hook(claims)));
  }

  /**
   * Signaling tells the media plane of a join that did not make it in, so that what watches the SFU (the join funnel
   * of the telemetry) sees failed joins as well as the peers that entered.
   */
  joinRefused(join: RefusedJoin): void {
    this.observer.emit('joinrefused', join);
  }

  /**
   * The room, opened on first use with `options` (defaults when not given) and `callId` (a new one when not given:
   * a node extending another node's call passes that call's id).
   */
  async getOrCreateRoom(
    tenant: string,
    roomId: string,
    options: RoomOptions = roomOptionsSchema.parse({}),
    callId?: string,
  ): Promise<Room> {
    const key = roomKey(tenant, roomId);
    const existing = this.getRoom(tenant, roomId);
    if (existing) return existing;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#createRoom(tenant, roomId, options, callId).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  load(): SfuLoad {
    const rooms = [...this.#rooms.values()].filter((r) => !r.closed);
    const routers = rooms.flatMap((r) => r.load());
    return {
      peers: rooms.reduce((n, r) => n + r.peers.size, 0),
      consumers: routers.reduce((n, r) => n + r.consumers, 0),
      routers,
    };
  }

  async close(): Promise<void> {
    for (const room of [...this.#rooms.values()]) room.close('shutdown');
    await this.pool.close();
  }

  async #createRoom(tenant: string, roomId: string, options: RoomOptions, callId?: string): Promise<Room> {
    const slot = this.pool.leastLoaded();
    if (!slot) throw new Error('no live mediasoup worker');
    const router = await this.#createRouter(slot, tenant, roomId);
    const speakers = await router.createActiveSpeakerObserver({ interval: 300 });
    const maxPeers = Math.min(this.options.maxPeersPerRoom, options.maxParticipants ?? Infinity);
    const room = new Room(
      tenant,
      roomId,
      router,
      slot,
      speakers,
      this.options.transport,
      maxPeers,
      this.log.child({ component: 'room' }),
      options,
      {
        consumerBudget: this.options.routerConsumerBudget,
        addRouter: async (avoid) => {
          const other = this.pool.leastLoaded(avoid);
          return other && { router: await this.#createRouter(other, tenant, roomId), slot: other };
        },
      },
      callId,
    );
    this.#rooms.set(room.key, room);
    room.observer.once('close', () => {
      if (this.#rooms.get(room.key) === room) this.#rooms.delete(room.key);
    });
    this.log.info({ tenant, room: roomId, callId: room.callId, worker: slot.index }, 'room created');
    this.observer.emit('newroom', room);
    return room;
  }

  /** Every router of every room offers the same codecs, so one set of RTP capabilities serves the whole room. */
  #createRouter(slot: WorkerSlot, tenant: string, room: string): Promise<ms.Router> {
    return slot.worker.createRouter({ mediaCodecs: MEDIA_CODECS, appData: { tenant, room } });
  }
}
