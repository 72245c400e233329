import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Database } from './Database.js';
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
  return (
    await sharedValue(
      db,
      name,
      async () => readLegacy(path.join(dataDir, 'secrets', name)) ?? randomBytes(bytes).toString('base64url'),
    )
  ).value;
}

/**
 * A value every node must agree on, under `name` in `shared_secrets`: the one stored, or else `create()`'s, stored
 * by the first node (`ON CONFLICT DO NOTHING`, so two nodes starting together agree). `created` tells the node whose
 * value won; `create` may prepare what the value names (it runs before the value is visible to other nodes).
 */
export async function sharedValue(
  db: Database,
  name: string,
  create: () => Promise<string>,
): Promise<{ value: string; created: boolean }> {
  const read = async () =>
    (await db.query<{ value: string }>('SELECT value FROM shared_secrets WHERE name = $1', [name])).rows[0]?.value;
  const existing = await read();
  if (existing !== undefined) return { value: existing, created: false };
  const { rows } = await db.query<{ value: string }>(
    'INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value',
    [name, await create()],
  );
  if (rows[0]) return { value: rows[0].value, created: true };
  // Another node inserted it between our read and our insert: theirs is the value.
  const winner = await read();
  if (winner === undefined) throw new Error(`shared value ${name}: inserted by another node, yet not found`);
  return { value: winner, created: false };
}

function readLegacy(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
