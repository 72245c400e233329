import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Database, Queryable } from './Database.js';
import type { StoreMigration } from './migrations.js';

export const SECRETS_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'shared_secrets: secrets every node must agree on',
    sql: `CREATE TABLE IF NOT EXISTS shared_secrets (
      name text PRIMARY KEY,
      value text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );`,
  },
];

/**
 * A secret every node must share (the HS256 key that signs join tokens, the
 * pseudonym master secret): a token minted on one node must verify on the
 * next, and a participant must get one pseudonym whatever node they join.
 * The first node to start creates it; the others read the same row (the
 * insert is `ON CONFLICT DO NOTHING`, so two nodes starting together agree).
 * A data dir of the version that kept it in `DATA_DIR/secrets/<name>` has its
 * file imported, so tokens and pseudonyms made before the upgrade stay valid.
 * Whoever can read the database can read these, as they could the data dir's
 * files; operators who keep them elsewhere set them in the configuration.
 */
export async function sharedSecret(db: Database, name: string, dataDir: string, bytes = 32): Promise<string> {
  return readOrInsert(
    db,
    SHARED_SECRETS,
    name,
    () => readLegacy(path.join(dataDir, 'secrets', name)) ?? randomBytes(bytes).toString('base64url'),
  );
}

/** A table of one text value per text key, named by constants of the module that owns it (never by input). */
export interface KeyValueTable {
  table: string;
  key: string;
  value: string;
}

const SHARED_SECRETS: KeyValueTable = { table: 'shared_secrets', key: 'name', value: 'value' };

/**
 * A value every node must agree on, under `name` in `shared_secrets`: the one stored, or else `create()`'s, stored
 * by the first node. `create` may prepare what the value names: it runs before the value is visible to other nodes.
 */
export const sharedValue = (db: Queryable, name: string, create: () => Promise<string>): Promise<string> =>
  readOrInsert(db, SHARED_SECRETS, name, create);

/** The value stored under `key`, if any. */
export async function readValue(db: Queryable, t: KeyValueTable, key: string): Promise<string | undefined> {
  const { rows } = await db.query<{ v: string }>(`SELECT ${t.value} AS v FROM ${t.table} WHERE ${t.key} = $1`, [key]);
  return rows[0]?.v;
}

/**
 * The value stored under `key`, created by `create` if there is none yet, the
 * same on every node: the insert is `ON CONFLICT DO NOTHING`, and a node that
 * loses the race between its read and its insert takes the winner's value, so
 * no caller ever uses a value that is not the stored one.
 */
export async function readOrInsert(
  db: Queryable,
  t: KeyValueTable,
  key: string,
  create: () => string | Promise<string>,
): Promise<string> {
  const existing = await readValue(db, t, key);
  if (existing !== undefined) return existing;
  const { rows } = await db.query<{ v: string }>(
    `INSERT INTO ${t.table} (${t.key}, ${t.value}) VALUES ($1, $2) ON CONFLICT (${t.key}) DO NOTHING
     RETURNING ${t.value} AS v`,
    [key, await create()],
  );
  if (rows[0]) return rows[0].v;
  // Another node inserted it between our read and our insert: theirs is the value.
  const winner = await readValue(db, t, key);
  if (winner === undefined) throw new Error(`${t.table}: a row inserted by another node, yet not found`);
  return winner;
}

/**
 * The value stored under `key`, or else `candidate`, stored: in one statement, so one round trip, for values that
 * cost nothing to make (a participant's salt, on the path of their first join). A node that loses the race to
 * another's insert committed meanwhile reads the winner's value, as `readOrInsert` does.
 */
export async function insertOrRead(db: Queryable, t: KeyValueTable, key: string, candidate: string): Promise<string> {
  const { rows } = await db.query<{ v: string }>(
    `WITH inserted AS (
       INSERT INTO ${t.table} (${t.key}, ${t.value}) VALUES ($1, $2) ON CONFLICT (${t.key}) DO NOTHING
       RETURNING ${t.value} AS v
     )
     SELECT v FROM inserted UNION ALL SELECT ${t.value} AS v FROM ${t.table} WHERE ${t.key} = $1 LIMIT 1`,
    [key, candidate],
  );
  if (rows[0]) return rows[0].v;
  // Inserted by another node after this statement's snapshot: not visible to it, but committed now.
  const winner = await readValue(db, t, key);
  if (winner === undefined) throw new Error(`${t.table}: a row inserted by another node, yet not found`);
  return winner;
}

function readLegacy(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
