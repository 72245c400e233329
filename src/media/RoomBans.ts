import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../files.js';
import { roomKey } from './Room.js';

interface BanEntry {
  /** SHA-256 of tenant, room and identity: the file names no one in clear. */
  key: string;
  /** Unix seconds; the ban lifts by itself then. */
  until: number;
}

/**
 * Identities removed from a room, refused at join until the token they held
 * expires (or an API call lifts the ban). Kept in DATA_DIR/room-bans.json so a
 * restart does not let a removed participant back in; each entry holds only a
 * hash and an expiry, and expired entries are dropped whenever the file is
 * written or read.
 */
export class RoomBans {
  readonly #bans = new Map<string, number>();

  constructor(private readonly file: string) {
    try {
      for (const b of JSON.parse(readFileSync(file, 'utf8')).bans as BanEntry[]) this.#bans.set(b.key, b.until);
    } catch (err) {
      // A missing file is an empty list; a corrupt one must not silently lift every ban.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`cannot read ${file}: ${(err as Error).message}`);
    }
    this.#prune();
  }

  /** Bans `identity` from the room until `until` (unix seconds); a longer ban already in place is kept. */
  ban(tenant: string, room: string, identity: string, until: number): void {
    const key = banKey(tenant, room, identity);
    this.#bans.set(key, Math.max(until, this.#bans.get(key) ?? 0));
    this.#save();
  }

  /** Lifts a ban; false when there was none. */
  lift(tenant: string, room: string, identity: string): boolean {
    const had = this.isBanned(tenant, room, identity);
    if (this.#bans.delete(banKey(tenant, room, identity))) this.#save();
    return had;
  }

  isBanned(tenant: string, room: string, identity: string): boolean {
    const until = this.#bans.get(banKey(tenant, room, identity));
    return until !== undefined && until > Date.now() / 1000;
  }

  #prune(): void {
    const now = Date.now() / 1000;
    for (const [key, until] of this.#bans) if (until <= now) this.#bans.delete(key);
  }

  #save(): void {
    this.#prune();
    const bans: BanEntry[] = [...this.#bans].map(([key, until]) => ({ key, until }));
    mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, JSON.stringify({ bans }), { mode: 0o600 });
  }
}

function banKey(tenant: string, room: string, identity: string): string {
  return createHash('sha256')
    .update(`${roomKey(tenant, room)}\0${identity}`)
    .digest('hex');
}
