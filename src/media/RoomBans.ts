import { createHash } from 'node:crypto';
import type { Logger } from '../logging.js';
import type { Database } from '../store/index.js';
import { roomKey } from './Room.js';
import { notifyChange, startRoomsTable } from './roomStore.js';

interface BanEntry {
  /** SHA-256 of tenant, room and identity: the table names no one in clear. */
  key: string;
  /** Unix seconds; the ban lifts by itself then. */
  until: number;
}

export interface RoomBansOptions {
  db: Database;
  log: Logger;
  /** DATA_DIR/room-bans.json of the version before the store: imported on first start, then renamed `.imported`. */
  legacyFile?: string;
}

/**
 * Identities removed from a room, refused at join until the token they held
 * expires (or an API call lifts the ban). Kept in PostgreSQL (table
 * `room_bans`) so that neither a restart nor another node lets a removed
 * participant back in, and in memory on every node so that a join checks it
 * without a round trip: each ban or lift commits with a NOTIFY on
 * `vigie_rooms`, and every node reads the row back. Each entry holds only a
 * hash and an expiry; expired entries are dropped whenever a ban is written.
 */
export class RoomBans {
  readonly #bans = new Map<string, number>();
  readonly #db: Database;
  #unlisten?: () => Promise<void>;

  private constructor(db: Database) {
    this.#db = db;
  }

  /** Applies the `room-bans` migrations, imports room-bans.json once, listens for other nodes' bans, loads all. */
  static async open(opts: RoomBansOptions): Promise<RoomBans> {
    const bans = new RoomBans(opts.db);
    bans.#unlisten = await startRoomsTable(opts, 'room-bans', {
      importLegacy: (content) => bans.#import(content),
      onChange: async (change) => {
        if (change.t === 'ban') await bans.#reload(change.key);
      },
      reloadAll: () => bans.#reloadAll(),
    });
    await bans.#reloadAll();
    return bans;
  }

  async #reloadAll(): Promise<void> {
    const { rows } = await this.#db.query<BanEntry>(
      'SELECT key, until FROM room_bans WHERE until > extract(epoch FROM now())',
    );
    this.#bans.clear();
    for (const b of rows) this.#bans.set(b.key, b.until);
  }

  /**
   * Bans `identity` from the room until `until` (unix seconds); a longer ban
   * already in place is kept. Resolves once it is committed: from then on every
   * node refuses the identity (the others within the NOTIFY's delivery).
   */
  async ban(tenant: string, room: string, identity: string, until: number): Promise<void> {
    const key = banKey(tenant, room, identity);
    const kept = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<{ until: number }>(
        `INSERT INTO room_bans (key, until) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET until = GREATEST(room_bans.until, EXCLUDED.until) RETURNING until`,
        [key, until],
      );
      await tx.query('DELETE FROM room_bans WHERE until <= extract(epoch FROM now())');
      await notifyChange(tx, { t: 'ban', key });
      return rows[0]!.until;
    });
    this.#bans.set(key, kept);
    this.#prune();
  }

  /** Lifts a ban; false when there was none. */
  async lift(tenant: string, room: string, identity: string): Promise<boolean> {
    const key = banKey(tenant, room, identity);
    const lifted = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<{ until: number }>('DELETE FROM room_bans WHERE key = $1 RETURNING until', [key]);
      if (rows.length) await notifyChange(tx, { t: 'ban', key });
      return rows[0];
    });
    this.#bans.delete(key);
    return lifted !== undefined && lifted.until > Date.now() / 1000;
  }

  isBanned(tenant: string, room: string, identity: string): boolean {
    const until = this.#bans.get(banKey(tenant, room, identity));
    return until !== undefined && until > Date.now() / 1000;
  }

  async close(): Promise<void> {
    await this.#unlisten?.();
    this.#unlisten = undefined;
  }

  #prune(): void {
    const now = Date.now() / 1000;
    for (const [key, until] of this.#bans) if (until <= now) this.#bans.delete(key);
  }

  async #reload(key: string): Promise<void> {
    const { rows } = await this.#db.query<BanEntry>('SELECT key, until FROM room_bans WHERE key = $1', [key]);
    if (rows[0]) this.#bans.set(key, rows[0].until);
    else this.#bans.delete(key);
  }

  /** room-bans.json: `{ bans: BanEntry[] }`; expired entries are not imported. */
  async #import(content: unknown): Promise<number> {
    const now = Date.now() / 1000;
    const bans = ((content as { bans?: BanEntry[] }).bans ?? []).filter((b) => b.until > now);
    await this.#db.transaction(async (tx) => {
      for (const b of bans)
        await tx.query(
          `INSERT INTO room_bans (key, until) VALUES ($1, $2)
           ON CONFLICT (key) DO UPDATE SET until = GREATEST(room_bans.until, EXCLUDED.until)`,
          [b.key, b.until],
        );
    });
    return bans.length;
  }
}

function banKey(tenant: string, room: string, identity: string): string {
  return createHash('sha256')
    .update(`${roomKey(tenant, room)}\0${identity}`)
    .digest('hex');
}
