import { mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../files.js';
import path from 'node:path';
import { z } from 'zod';
import { METADATA_LIMITS, withinLimits } from '../boundedJson.js';
import { parseOrInvalid } from '../errors.js';
import { roomKey } from './Room.js';

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

/**
 * Rooms a business app declared in advance, with their options. Rooms that
 * were never declared still open on first join, with default options. Kept in
 * DATA_DIR/rooms.json.
 */
export class RoomDirectory {
  readonly #rooms = new Map<string, DeclaredRoom>();

  constructor(private readonly file: string) {
    try {
      for (const r of JSON.parse(readFileSync(file, 'utf8')).rooms as DeclaredRoom[])
        this.#rooms.set(roomKey(r.tenant, r.room), r);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`cannot read ${file}: ${(err as Error).message}`);
    }
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

  declare(tenant: string, room: string, input: unknown): DeclaredRoom {
    const options = parseOrInvalid(roomOptionsSchema, input);
    const entry: DeclaredRoom = {
      tenant,
      room,
      options,
      createdAt: this.get(tenant, room)?.createdAt ?? new Date().toISOString(),
    };
    this.#rooms.set(roomKey(tenant, room), entry);
    this.#save();
    return entry;
  }

  remove(tenant: string, room: string): boolean {
    const existed = this.#rooms.delete(roomKey(tenant, room));
    if (existed) this.#save();
    return existed;
  }

  #save(): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, JSON.stringify({ version: 1, rooms: [...this.#rooms.values()] }, null, 2));
  }
}
