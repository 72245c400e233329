import { z } from 'zod';
import { METADATA_LIMITS, withinLimits } from '../boundedJson.js';
import { parseOrInvalid } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Database, Queryable } from '../store/index.js';
import { type Room, roomKey } from './Room.js';
import { notifyChange, startRoomsTable } from './roomStore.js';
import type { Sfu } from './Sfu.js';

export const roomOptionsSchema = z.object({
  maxParticipants: z.number().int().min(1).max(1000).optional(),
  /** off: never recorded; manual: started on request; always: started when the call starts. */
  recordingPolicy: z.enum(['off', 'manual', 'always']).default('manual'),
  /** Each participant must consent before their tracks are recorded. */
  consentRequired: z.boolean().default(false),
  /**
   * Refused: retention is per tenant (the tenant's `retentionPolicy`). A room
   * option was accepted once and never applied; refusing it says so instead of
   * silently keeping a room's data under another policy than the one asked for.
   */
  retentionPolicy: z.never({ error: 'retentionPolicy is set per tenant (admin API), not per room' }).optional(),
  metadata: z.record(z.string(), z.string().max(256)).superRefine(withinLimits(METADATA_LIMITS)).optional(),
});
export type RoomOptions = z.infer<typeof roomOptionsSchema>;

export interface DeclaredRoom {
  tenant: string;
  room: string;
  options: RoomOptions;
  createdAt: string;
}

/** Which node serves a room's call (scale-out: the call lives on one node, and joins are sent there). */
export interface RoomPlacement {
  tenant: string;
  room: string;
  nodeId: string;
  callId: string;
  placedAt: string;
}

export interface RoomDirectoryOptions {
  db: Database;
  /** This node (config.node.id): placements made here name it. */
  nodeId: string;
  log: Logger;
  /** DATA_DIR/rooms.json of the version before the store: imported on first start, then renamed `.imported`. */
  legacyFile?: string;
  /**
   * Whether a node that holds a placement is still alive, asked inside the
   * placing transaction (`tx`, with the placement row locked). Until the node
   * registry exists every other node counts as alive; this node's own stale
   * placements are always taken over, and a node releases its own at start.
   */
  isNodeLive?: (nodeId: string, tx: Queryable) => Promise<boolean>;
}

interface RoomRow {
  tenant: string;
  room: string;
  options: RoomOptions;
  created_at: Date | string;
}

interface PlacementRow {
  tenant: string;
  room: string;
  node_id: string;
  call_id: string;
  placed_at: Date | string;
}

const ROOM_COLUMNS = 'tenant, room, options, created_at';
const PLACEMENT_COLUMNS = 'tenant, room, node_id, call_id, placed_at';

const toDeclared = (r: RoomRow): DeclaredRoom => ({
  tenant: r.tenant,
  room: r.room,
  options: r.options,
  createdAt: new Date(r.created_at).toISOString(),
});

const toPlacement = (r: PlacementRow): RoomPlacement => ({
  tenant: r.tenant,
  room: r.room,
  nodeId: r.node_id,
  callId: r.call_id,
  placedAt: new Date(r.placed_at).toISOString(),
});

/**
 * Rooms a business app declared in advance, with their options, and where each
 * open room is placed. Rooms that were never declared still open on first
 * join, with default options. Declarations live in PostgreSQL (table `rooms`)
 * and in memory on every node, so a join reads them without a round trip:
 * each write commits with a NOTIFY on `vigie_rooms`, and every node reads the
 * changed row back.
 */
export class RoomDirectory {
  readonly #rooms = new Map<string, DeclaredRoom>();
  readonly #db: Database;
  readonly #log: Logger;
  readonly #isNodeLive: NonNullable<RoomDirectoryOptions['isNodeLive']>;
  /** Placements being written or released for rooms of this node, awaited by close(). */
  readonly #pending = new Set<Promise<unknown>>();
  #unlisten?: () => Promise<void>;
  /** Where each room opened here was placed, as its opening recorded it (see placedWhere). */
  readonly #placed = new WeakMap<Room, Promise<RoomPlacement | undefined>>();
  /** Set by releaseAll (drain): rooms that still open here are not placed. */
  #leaving = false;
  readonly nodeId: string;

  private constructor(opts: RoomDirectoryOptions) {
    this.#db = opts.db;
    this.#log = opts.log;
    this.nodeId = opts.nodeId;
    this.#isNodeLive = opts.isNodeLive ?? (async () => true);
  }

  /**
   * Applies the `rooms` migrations, imports rooms.json once, listens for other
   * nodes' changes and loads every declaration; releases the placements this
   * node held before it (re)started, since it has no call open yet.
   */
  static async open(opts: RoomDirectoryOptions): Promise<RoomDirectory> {
    const dir = new RoomDirectory(opts);
    dir.#unlisten = await startRoomsTable(opts, 'rooms', {
      importLegacy: (content) => dir.#importRooms(content),
      onChange: async (change) => {
        if (change.t === 'room') await dir.#reload(change.tenant, change.room);
      },
      reloadAll: () => dir.#reloadAll(),
    });
    await dir.#reloadAll();
    await opts.db.query('DELETE FROM room_placements WHERE node_id = $1', [opts.nodeId]);
    return dir;
  }

  async #reloadAll(): Promise<void> {
    const { rows } = await this.#db.query<RoomRow>(`SELECT ${ROOM_COLUMNS} FROM rooms`);
    this.#rooms.clear();
    for (const r of rows) this.#rooms.set(roomKey(r.tenant, r.room), toDeclared(r));
  }

  get(tenant: string, room: string): DeclaredRoom | undefined {
    return this.#rooms.get(roomKey(tenant, room));
  }

  /** The options a room opens with: declared, or the defaults. */
  optionsFor(tenant: string, room: string): RoomOptions {
    return this.get(tenant, room)?.options ?? roomOptionsSchema.parse({});
  }

  list(tenant: string): DeclaredRoom[] {
    return [...this.#rooms.values()].filter((r) => r.tenant === tenant);
  }

  async declare(tenant: string, room: string, input: unknown): Promise<DeclaredRoom> {
    const options = parseOrInvalid(roomOptionsSchema, input);
    const row = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<RoomRow>(
        `INSERT INTO rooms (tenant, room, options) VALUES ($1, $2, $3)
         ON CONFLICT (tenant, room) DO UPDATE SET options = EXCLUDED.options, updated_at = now()
         RETURNING ${ROOM_COLUMNS}`,
        [tenant, room, JSON.stringify(options)],
      );
      await notifyChange(tx, { t: 'room', tenant, room });
      return rows[0]!;
    });
    const entry = toDeclared(row);
    this.#rooms.set(roomKey(tenant, room), entry);
    return entry;
  }

  async remove(tenant: string, room: string): Promise<boolean> {
    const existed = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query('DELETE FROM rooms WHERE tenant = $1 AND room = $2 RETURNING room', [
        tenant,
        room,
      ]);
      if (rows.length) await notifyChange(tx, { t: 'room', tenant, room });
      return rows.length > 0;
    });
    this.#rooms.delete(roomKey(tenant, room));
    return existed;
  }

  /**
   * Places the room's call on `nodeId` (this node unless given) unless another
   * live node holds it already, atomically across nodes: the first placement
   * inserts the row; a later one locks it and takes it over only from this
   * node, `nodeId` itself or a dead node. `placed` is false when another node
   * won, and `placement` then names it. A node placing a room on another one
   * (a join it redirects there) leaves a row that node already holds as it is.
   */
  async place(
    tenant: string,
    room: string,
    callId: string,
    nodeId = this.nodeId,
  ): Promise<{ placed: boolean; placement: RoomPlacement }> {
    return this.#db.transaction(async (tx) => {
      // A row released between the insert and the lock is gone: the insert is tried again.
      for (;;) {
        const inserted = await tx.query<PlacementRow>(
          `INSERT INTO room_placements (tenant, room, node_id, call_id) VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant, room) DO NOTHING RETURNING ${PLACEMENT_COLUMNS}`,
          [tenant, room, nodeId, callId],
        );
        if (inserted.rows[0]) return { placed: true, placement: toPlacement(inserted.rows[0]) };
        const { rows } = await tx.query<PlacementRow>(
          `SELECT ${PLACEMENT_COLUMNS} FROM room_placements WHERE tenant = $1 AND room = $2 FOR UPDATE`,
          [tenant, room],
        );
        const current = rows[0];
        if (!current) continue;
        if (current.node_id === nodeId && nodeId !== this.nodeId)
          return { placed: true, placement: toPlacement(current) };
        if (
          current.node_id !== this.nodeId &&
          current.node_id !== nodeId &&
          (await this.#isNodeLive(current.node_id, tx))
        )
          return { placed: false, placement: toPlacement(current) };
        const taken = await tx.query<PlacementRow>(
          `UPDATE room_placements SET node_id = $3, call_id = $4, placed_at = now()
           WHERE tenant = $1 AND room = $2 RETURNING ${PLACEMENT_COLUMNS}`,
          [tenant, room, nodeId, callId],
        );
        return { placed: true, placement: toPlacement(taken.rows[0]!) };
      }
    });
  }

  /**
   * Releases every placement of this node (drain): the calls open here go on,
   * but the next join of each room, on any node, places it anew elsewhere.
   */
  async releaseAll(): Promise<number> {
    // Rooms opened just before are placed first (follow), so that their placement is released too.
    this.#leaving = true;
    while (this.#pending.size) await Promise.all([...this.#pending]);
    const { rows } = await this.#db.query('DELETE FROM room_placements WHERE node_id = $1 RETURNING room', [
      this.nodeId,
    ]);
    return rows.length;
  }

  /** Releases the placement of this call on this node; false when it did not hold it (another call or node does). */
  async release(tenant: string, room: string, callId: string): Promise<boolean> {
    const { rows } = await this.#db.query(
      'DELETE FROM room_placements WHERE tenant = $1 AND room = $2 AND node_id = $3 AND call_id = $4 RETURNING room',
      [tenant, room, this.nodeId, callId],
    );
    return rows.length > 0;
  }

  async placement(tenant: string, room: string): Promise<RoomPlacement | undefined> {
    const { rows } = await this.#db.query<PlacementRow>(
      `SELECT ${PLACEMENT_COLUMNS} FROM room_placements WHERE tenant = $1 AND room = $2`,
      [tenant, room],
    );
    return rows[0] && toPlacement(rows[0]);
  }

  /**
   * The placement when it names another node: that node has the call. One naming this node, for a room not open
   * here, is a call that just closed, its release still on its way to the database: this node knows its own calls.
   */
  elsewhere(placement: RoomPlacement | null | undefined): RoomPlacement | undefined {
    return placement && placement.nodeId !== this.nodeId ? placement : undefined;
  }

  /** The tenant's placed rooms, by room id. */
  async placements(tenant: string): Promise<Map<string, RoomPlacement>> {
    const { rows } = await this.#db.query<PlacementRow>(
      `SELECT ${PLACEMENT_COLUMNS} FROM room_placements WHERE tenant = $1`,
      [tenant],
    );
    return new Map(rows.map((r) => [r.room, toPlacement(r)]));
  }

  /**
   * Records where the SFU's rooms are: each room that opens here is placed on
   * this node with its call id, and released when it closes. Joins are sent to
   * the owning node before a room opens (src/signaling/routing.ts), which claims
   * the placement first; a room another node won in a race still opens here,
   * and is logged.
   */
  follow(sfu: Sfu): void {
    sfu.observer.on('newroom', (room) => this.#track(room));
  }

  #track(room: Room): void {
    if (this.#leaving) return;
    const { tenant, id, callId } = room;
    // The room's own call id: a join claims a new room by opening it here, and sends its participant to the
    // other node if that node won (src/signaling/routing.ts).
    const placing = this.place(tenant, id, callId).then(
      ({ placed, placement }) => {
        if (!placed)
          this.#log.warn({ tenant, room: id, callId, owner: placement.nodeId }, 'room opened here is placed elsewhere');
        return placement;
      },
      (err) => {
        this.#log.error({ err, tenant, room: id, callId }, 'room placement could not be recorded');
        return undefined;
      },
    );
    this.#placed.set(room, placing);
    this.#hold(placing);
    room.observer.once('close', () => {
      this.#hold(
        placing
          .then(() => this.release(tenant, id, callId))
          .catch((err) => this.#log.error({ err, tenant, room: id, callId }, 'room placement could not be released')),
      );
    });
  }

  /**
   * Where the room's call was placed when it opened here (no round trip once known): this node, or the node that
   * won when two opened it at once; undefined when the placement could not be written or the node drains.
   */
  placedWhere(room: Room): Promise<RoomPlacement | undefined> {
    return this.#placed.get(room) ?? Promise.resolve(undefined);
  }

  #hold(p: Promise<unknown>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** Stops listening, once the placements of rooms just closed are written (before the database closes). */
  async close(): Promise<void> {
    while (this.#pending.size) await Promise.all([...this.#pending]);
    await this.#unlisten?.();
    this.#unlisten = undefined;
  }

  async #reload(tenant: string, room: string): Promise<void> {
    const { rows } = await this.#db.query<RoomRow>(
      `SELECT ${ROOM_COLUMNS} FROM rooms WHERE tenant = $1 AND room = $2`,
      [tenant, room],
    );
    if (rows[0]) this.#rooms.set(roomKey(tenant, room), toDeclared(rows[0]));
    else this.#rooms.delete(roomKey(tenant, room));
  }

  /** rooms.json: `{ version: 1, rooms: DeclaredRoom[] }`. A room declared in the store since is kept as it is. */
  async #importRooms(content: unknown): Promise<number> {
    const rooms = (content as { rooms?: DeclaredRoom[] }).rooms ?? [];
    await this.#db.transaction(async (tx) => {
      for (const r of rooms)
        await tx.query(
          `INSERT INTO rooms (tenant, room, options, created_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant, room) DO NOTHING`,
          [r.tenant, r.room, JSON.stringify(r.options), r.createdAt],
        );
    });
    return rooms.length;
  }
}
