/**
 * What the room directory and the room bans share on the control plane's
 * PostgreSQL: their migrations (one owner each), the channel on which every
 * node hears of a change, and the one-time import of the JSON files of the
 * version before the store.
 */
import type { Logger } from '../logging.js';
import { type Database, importLegacyFile, migrateStore, type StoreMigration } from '../store/index.js';

/** One NOTIFY per change of a declared room or a ban; the payload names the row, each node reads it back. */
export const ROOMS_CHANNEL = 'vigie_rooms';

export type RoomsChange = { t: 'room'; tenant: string; room: string } | { t: 'ban'; key: string };

/** Owner `rooms` (RoomDirectory): declared rooms, and which node each open room is placed on. */
export const ROOMS_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'rooms and room_placements',
    sql: `CREATE TABLE rooms (
  tenant text NOT NULL,
  room text NOT NULL,
  options jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room));
CREATE TABLE room_placements (
  tenant text NOT NULL,
  room text NOT NULL,
  node_id text NOT NULL,
  call_id text NOT NULL,
  placed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room));
CREATE INDEX room_placements_node ON room_placements (node_id);
`,
  },
];

/** Owner `room-bans` (RoomBans): a hash of tenant, room and identity, and when the ban lifts by itself. */
export const ROOM_BANS_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'room_bans',
    sql: `CREATE TABLE room_bans (
  key text PRIMARY KEY,
  until double precision NOT NULL);
CREATE INDEX room_bans_until ON room_bans (until);
`,
  },
];

/** Sends `change` to every node (this one included) when the transaction `tx` commits. */
export async function notifyChange(tx: Pick<Database, 'query'>, change: RoomsChange): Promise<void> {
  await tx.query('SELECT pg_notify($1, $2)', [ROOMS_CHANNEL, JSON.stringify(change)]);
}

/**
 * Listens for changes, and runs `apply` on each in the order they came, one at
 * a time: each reads its row back, so a later read never lands before an
 * earlier one. Errors go to `onError`; a change missed is read again with the
 * next change of the same row.
 */
function listenChanges(
  db: Database,
  apply: (change: RoomsChange) => Promise<void>,
  resync: () => Promise<void>,
  onError: (err: unknown) => void,
): Promise<() => Promise<void>> {
  let chain = Promise.resolve();
  return db.listen(
    ROOMS_CHANNEL,
    (payload) => {
      let change: RoomsChange;
      try {
        change = JSON.parse(payload) as RoomsChange;
      } catch (err) {
        onError(err);
        return;
      }
      chain = chain.then(() => apply(change)).catch(onError);
    },
    // The listening connection was lost and opened again: changes made meanwhile were not announced.
    () => {
      chain = chain.then(resync).catch(onError);
    },
  );
}

const MIGRATIONS = { rooms: ROOMS_MIGRATIONS, 'room-bans': ROOM_BANS_MIGRATIONS };

/**
 * What the directory and the bans do at start before loading their rows:
 * migrate the owner's tables, import its JSON file once, and listen for
 * changes. Listening comes before the load, so a change committed in between
 * is read again rather than missed. Resolves to the function that stops listening.
 */
export async function startRoomsTable(
  o: { db: Database; log: Logger; legacyFile?: string },
  owner: keyof typeof MIGRATIONS,
  rows: {
    importLegacy: (content: unknown) => Promise<number>;
    onChange: (change: RoomsChange) => Promise<void>;
    /** Reads the whole table again (after the listening connection was lost). */
    reloadAll: () => Promise<void>;
  },
): Promise<() => Promise<void>> {
  await migrateStore(o.db, owner, MIGRATIONS[owner], o.log);
  if (o.legacyFile) {
    const n = (await importLegacyFile(o.legacyFile, rows.importLegacy))?.rows;
    if (n) o.log.info({ owner, rows: n, file: o.legacyFile }, 'imported into PostgreSQL');
  }
  return listenChanges(o.db, rows.onChange, rows.reloadAll, (err) =>
    o.log.error({ err, owner }, 'a change from another node could not be read'),
  );
}
