import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { readJsonLines } from '../files.js';
import type { Logger } from '../logging.js';
import {
  type Database,
  type KeyValueTable,
  migrateStore,
  insertOrRead,
  readValue,
  type StoreMigration,
} from '../store/index.js';

export const PSEUDONYM_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'subject_salts: one random salt per data subject, shared by every node',
    sql: `CREATE TABLE IF NOT EXISTS subject_salts (
      lookup text PRIMARY KEY,
      salt text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );`,
  },
  {
    version: 2,
    name: 'subject_salts_erased: erasures whose salts may still be in the pages of subject_salts',
    sql: `CREATE TABLE IF NOT EXISTS subject_salts_erased (
      id bigserial PRIMARY KEY,
      erased_at timestamptz NOT NULL DEFAULT now()
    );`,
  },
];

/**
 * How long the rewrite of subject_salts may wait for its lock. Joins read and
 * insert salts, and queue behind a rewrite that waits: this bounds how long.
 */
const REWRITE_LOCK_TIMEOUT_MS = 200;
/** Between two tries when the lock was not granted (a long transaction reads the table): doubling up to this. */
const REWRITE_RETRY_MAX_MS = 30_000;

const SALTS: KeyValueTable = { table: 'subject_salts', key: 'lookup', value: 'salt' };

/** Erasures on one node reach the others' caches through this channel (the payload is the lookup key). */
const ERASED = 'vigie_subject_salt_erased';

/**
 * One random salt per data subject, in PostgreSQL (table `subject_salts`),
 * found by a lookup key (an HMAC of the identity): every node gives one person
 * one pseudonym. The first node to see a subject creates the salt; a node that
 * loses that race takes the winner's (`ON CONFLICT DO NOTHING`), so a pseudonym
 * is never written with a salt that is not the stored one. Erasure deletes the
 * row and tells every node to drop its cached copy: from then on the identity
 * no longer leads to the pseudonym.
 */
class SubjectSalts {
  readonly #cache = new Map<string, string>();
  #log?: Logger;
  #rewriting?: Promise<void>;
  #queued?: Promise<void>;
  #retry?: NodeJS.Timeout;
  #failures = 0;
  #stopped = false;

  constructor(private readonly db: Database) {}

  /** Tables, the previous version's salt file (imported once), and the erasure channel. */
  async start(legacyFile: string, log: Logger): Promise<void> {
    this.#log = log;
    await migrateStore(this.db, 'pseudonyms', PSEUDONYM_MIGRATIONS, log);
    // The previous version kept salts in an fsynced JSON Lines file; a torn last line was never used.
    const legacy = new Map<string, string>();
    for (const e of readJsonLines<{ k: string; s?: string }>(legacyFile)) {
      if (e.s) legacy.set(e.k, e.s);
      else legacy.delete(e.k);
    }
    if (legacy.size > 0) {
      await this.db.transaction(async (tx) => {
        for (const [k, s] of legacy)
          await tx.query('INSERT INTO subject_salts (lookup, salt) VALUES ($1, $2) ON CONFLICT DO NOTHING', [k, s]);
      });
      log.info({ salts: legacy.size, file: legacyFile }, 'subject salts imported into PostgreSQL');
    }
    // Deleted, not kept aside: a copy would outlive the erasure of the salts it holds.
    if (existsSync(legacyFile)) rmSync(legacyFile);
    // After a lost connection, erasures made meanwhile were not announced: forget every cached salt.
    await this.db.listen(
      ERASED,
      (key) => this.#cache.delete(key),
      () => this.#cache.clear(),
    );
    // An erasure whose rewrite had not happened yet when its node stopped (or died) is finished here.
    void this.rewrite();
  }

  cached(key: string): string | undefined {
    return this.#cache.get(key);
  }

  async find(key: string): Promise<string | undefined> {
    const hit = this.#cache.get(key);
    if (hit !== undefined) return hit;
    const salt = await readValue(this.db, SALTS, key);
    if (salt !== undefined) this.#cache.set(key, salt);
    return salt;
  }

  /** Durable before it is returned: a pseudonym is never written with a salt a crash could lose. */
  async ensure(key: string): Promise<string> {
    const hit = this.#cache.get(key);
    if (hit !== undefined) return hit;
    // One round trip: a first-time participant's join waits for it.
    const salt = await insertOrRead(this.db, SALTS, key, randomBytes(16).toString('base64url'));
    this.#cache.set(key, salt);
    return salt;
  }

  /**
   * Deletes the salt, and notes the erasure in the same transaction: a deleted
   * row stays in the table's pages until they are rewritten (VACUUM FULL), and
   * the note is what tells any node, even after a restart, that they must be.
   */
  async erase(key: string): Promise<boolean> {
    this.#cache.delete(key);
    const erased = await this.db.transaction(async (tx) => {
      const { rows } = await tx.query('DELETE FROM subject_salts WHERE lookup = $1 RETURNING lookup', [key]);
      if (rows.length > 0) await tx.query('INSERT INTO subject_salts_erased DEFAULT VALUES');
      return rows.length > 0;
    });
    await this.db.notify(ERASED, key);
    // Usually the lock is free and the salt is off the disk before the answer; else the rewrite goes on in the
    // background, so that joins (which read and insert salts) never queue behind a rewrite that waits.
    if (erased) await this.rewrite();
    return erased;
  }

  /** Rewrites subject_salts if an erasure asks for it; tries again later if its lock was not granted in time. */
  rewrite(): Promise<void> {
    // A rewrite already running may have read the erasures before the latest: one more follows it.
    if (this.#rewriting) {
      this.#queued ??= this.#rewriting.then(() => {
        this.#queued = undefined;
        return this.rewrite();
      });
      return this.#queued;
    }
    this.#rewriting = this.#rewrite().finally(() => (this.#rewriting = undefined));
    return this.#rewriting;
  }

  async #rewrite(): Promise<void> {
    clearTimeout(this.#retry);
    try {
      const { rows } = await this.db.query<{ upto: string | null }>(
        'SELECT max(id)::text AS upto FROM subject_salts_erased',
      );
      const upto = rows[0]?.upto;
      if (upto == null) return;
      if (await this.db.rewriteTable('subject_salts', REWRITE_LOCK_TIMEOUT_MS)) {
        await this.db.query('DELETE FROM subject_salts_erased WHERE id <= $1', [upto]);
        this.#failures = 0;
        return;
      }
      this.#log?.info({ attempt: this.#failures + 1 }, 'subject salts: rewrite postponed, the table is in use');
    } catch (err) {
      if (this.#stopped) return;
      this.#log?.error({ err }, 'subject salts: the rewrite after an erasure failed; will try again');
    }
    if (this.#stopped) return;
    const delay = Math.min(REWRITE_RETRY_MAX_MS, 500 * 2 ** this.#failures++);
    this.#retry = setTimeout(() => void this.rewrite(), delay);
    this.#retry.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
  }
}

/**
 * Pseudonymous identities for stats, events, recordings and the audit trail:
 * HMAC-SHA256, with a key of the participant's tenant, of a random salt of
 * that person and the identity. Tenant keys are derived with HKDF from one
 * master secret, so two tenants never share a pseudonym space; the clear
 * identity lives only in the `participants` mapping table. Because of the
 * salt, knowing the identity and the secret is not enough to find a person's
 * rows: once erasure destroys the salt (`forget`), what is kept (the audit
 * trail, records of requests) can no longer be linked back to the person.
 */
export class Pseudonymizer {
  readonly #keys = new Map<string, Buffer>();
  readonly #salts: SubjectSalts;

  constructor(
    private readonly masterSecret: string,
    db: Database,
  ) {
    this.#salts = new SubjectSalts(db);
  }

  /** `legacySaltsFile`: where the previous version kept the salts (imported once, then deleted). */
  start(legacySaltsFile: string, log: Logger): Promise<void> {
    return this.#salts.start(legacySaltsFile, log);
  }

  /** Stops retrying a postponed rewrite (the node is closing; the next node to start finishes it). */
  stop(): void {
    this.#salts.stop();
  }

  /** Rewrites the salts' table now if an erasure still asks for it (see `forget`). */
  rewriteErased(): Promise<void> {
    return this.#salts.rewrite();
  }

  #keyFor(tenant: string): Buffer {
    let key = this.#keys.get(tenant);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.masterSecret, 'vigie-pseudonym-v1', `tenant:${tenant}`, 32));
      this.#keys.set(tenant, key);
    }
    return key;
  }

  #lookup(tenant: string, identity: string): string {
    return createHmac('sha256', this.#keyFor(tenant)).update(`salt-lookup\0${identity}`).digest('hex');
  }

  #hash(tenant: string, salt: string, identity: string): string {
    return createHmac('sha256', this.#keyFor(tenant)).update(`${salt}\0${identity}`).digest('hex').slice(0, 32);
  }

  /**
   * The subject's pseudonym, creating their salt on first use. 128 bits, hex: enough to never collide within a tenant,
   * short enough to index.
   */
  async pseudonym(tenant: string, identity: string): Promise<string> {
    return this.#hash(tenant, await this.#salts.ensure(this.#lookup(tenant, identity)), identity);
  }

  /**
   * The pseudonym from this node's cache, for code that cannot wait (telemetry rows): a participant's salt is
   * fetched or created before they enter a room (see the telemetry plugin's join hook), so it is there.
   */
  cached(tenant: string, identity: string): string | undefined {
    const salt = this.#salts.cached(this.#lookup(tenant, identity));
    return salt === undefined ? undefined : this.#hash(tenant, salt, identity);
  }

  /** The subject's pseudonym if they have one (data-subject requests must not create one). */
  async existing(tenant: string, identity: string): Promise<string | undefined> {
    const salt = await this.#salts.find(this.#lookup(tenant, identity));
    return salt === undefined ? undefined : this.#hash(tenant, salt, identity);
  }

  /**
   * Destroys the subject's salt (erasure), on every node. A later `pseudonym` is new and unrelated. The salt is
   * unreadable at once; its bytes leave the disk when subject_salts is rewritten, before this resolves unless a
   * long transaction holds the table, and then as soon as it ends (retried in the background, by any node).
   */
  forget(tenant: string, identity: string): Promise<boolean> {
    return this.#salts.erase(this.#lookup(tenant, identity));
  }
}
