/**
 * The control plane's PostgreSQL: one interface over the embedded engine
 * (PGlite, real PostgreSQL compiled to WebAssembly, in-process, data under
 * DATA_DIR) and a PostgreSQL server (`pg`, through VIGIE_DATABASE_URL). The
 * same SQL runs on both; what differs is how connections are held: PGlite is
 * one session, a server is a pool, and LISTEN and session advisory locks each
 * keep a connection of their own there.
 */
import { mkdirSync } from 'node:fs';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { isComponentOutage, VigieError } from '../errors.js';

export interface Queryable {
  /** One statement with `$1`-style parameters. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }>;
}

/** A session advisory lock: held until released, or until the connection holding it dies. */
export interface AdvisoryLease {
  /** Resolves when the lock is lost without release() (the server dropped the connection). */
  readonly lost: Promise<void>;
  release(): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /**
   * `VACUUM FULL table`: rewrites its pages, so deleted rows are no longer on
   * disk. It needs the table's ACCESS EXCLUSIVE lock, and every reader and
   * writer queues behind it while it waits: it waits `lockTimeoutMs` at most,
   * then gives up (resolves false) rather than stall them behind a long transaction.
   */
  rewriteTable(table: string, lockTimeoutMs: number): Promise<boolean>;
  /**
   * LISTEN on `channel`; resolves to the function that stops listening. If the
   * connection that listens is lost (a server restart, a failover), it is opened
   * again and `onResync` is called: notifications sent meanwhile are lost, so
   * the listener reads again whatever it keeps a copy of.
   */
  listen(channel: string, onNotify: (payload: string) => void, onResync?: () => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  /**
   * Takes the session advisory lock `key` if no one holds it, on any node.
   * Singletons (the retention sweeper, TTL application, anchoring) run while
   * they hold one; if their node dies, its connection does, and so does the lock.
   */
  tryAdvisoryLock(key: string): Promise<AdvisoryLease | undefined>;
  close(): Promise<void>;
}

/**
 * SQLSTATE classes of a server that cannot be used: 08 (connection exception), 57P (operator intervention: shutting
 * down, cannot connect now), and 53300 (too many connections).
 */
const SERVER_GONE = /^(08|57P|53300$)/;
/** What `pg` throws when the connection is lost or cannot be made, for want of a code. */
const CONNECTION_LOST = new RegExp(
  [
    'Connection terminated',
    'connection error and is not queryable',
    'timeout exceeded when trying to connect',
    'connection .*closed',
  ].join('|'),
  'i',
);

/**
 * Whether `err` says the server is unreachable (refused, reset, timed out, shutting down) rather than that a
 * statement is wrong: the one place where a control-plane outage is told apart from a bug.
 */
export function isConnectionError(err: unknown): boolean {
  if (isComponentOutage(err)) return true; // refused, reset, timed out: the same network failures as any component
  const e = err as { code?: unknown; message?: unknown; errors?: unknown[] } | undefined;
  if (!e || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  if (SERVER_GONE.test(code)) return true;
  return typeof e.message === 'string' && CONNECTION_LOST.test(e.message);
}

/**
 * The control plane cannot be reached: every action that reads or writes it answers 503 UNAVAILABLE (retry), never
 * 500. Calls already open go on (media does not need PostgreSQL); the pool reconnects by itself when it is back.
 */
/**
 * TCP keepalive on every connection to the server, probing after 30 s of silence: a connection whose server (or the
 * path to it) vanished without a word is found dead by this node's kernel, rather than held until the next write.
 */
const KEEPALIVE = { keepAlive: true, keepAliveInitialDelayMillis: 30_000 } as const;

export class StoreUnavailableError extends VigieError {
  constructor(cause: unknown) {
    super('UNAVAILABLE', 'the control plane (PostgreSQL) is unreachable; retry shortly');
    this.cause = cause;
  }
}

/** Rethrows a lost or refused connection as StoreUnavailableError; any other error as it is. */
async function mapOutage<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw isConnectionError(err) && !(err instanceof VigieError) ? new StoreUnavailableError(err) : err;
  }
}

/** Advisory lock keys are bigints; names are hashed by PostgreSQL itself so every node agrees. */
const LOCK_KEY_SQL = 'hashtextextended($1, 0)';

class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;
  readonly #db: PGlite;
  /** PGlite is one session, where advisory locks are reentrant: this node's holders are tracked here. */
  readonly #held = new Set<string>();

  constructor(db: PGlite) {
    this.#db = db;
  }

  async query<T>(sql: string, params: readonly unknown[] = []): Promise<{ rows: T[] }> {
    const r = await this.#db.query<T>(sql, params as unknown[]);
    return { rows: r.rows };
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#db.transaction((tx) =>
      fn({
        query: async <R>(sql: string, params: readonly unknown[] = []) => ({
          rows: (await tx.query<R>(sql, params as unknown[])).rows,
        }),
      }),
    );
  }

  async exec(sql: string): Promise<void> {
    await this.#db.exec(sql);
  }

  // One session: nothing else can hold a lock while this runs, so there is nothing to wait for.
  async rewriteTable(table: string): Promise<boolean> {
    await this.#db.exec(`VACUUM FULL ${table}`);
    return true;
  }

  // In-process: the session cannot be lost, so there is never anything to resync.
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>> {
    return this.#db.listen(channel, onNotify).then((unlisten) => () => unlisten());
  }

  async notify(channel: string, payload: string): Promise<void> {
    await this.#db.query('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  async tryAdvisoryLock(key: string): Promise<AdvisoryLease | undefined> {
    if (this.#held.has(key)) return undefined;
    const { rows } = await this.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY_SQL}) AS ok`, [key]);
    if (!rows[0]?.ok) return undefined;
    this.#held.add(key);
    return {
      lost: new Promise(() => {}),
      release: async () => {
        if (!this.#held.delete(key)) return;
        await this.query(`SELECT pg_advisory_unlock(${LOCK_KEY_SQL})`, [key]);
      },
    };
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}

interface Subscriber {
  onNotify: (payload: string) => void;
  onResync?: () => void;
}

interface LockConnection {
  client: pg.Client;
  ended: boolean;
  /** Locks held on it, each with the function that tells its lease it was lost. */
  held: Map<string, () => void>;
}

class PostgresDatabase implements Database {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #url: string;
  /** One connection for every LISTEN of this node, opened on the first, and again when lost. */
  #listener?: Promise<pg.Client>;
  readonly #channels = new Map<string, Set<Subscriber>>();
  #closed = false;
  /** This node's session advisory locks live on one kept connection (see #lockConnection). */
  #locker?: Promise<LockConnection>;
  readonly #trying = new Set<string>();
  /** Clients opened outside the pool (the listener, the lock holder), closed with the database. */
  readonly #clients = new Set<pg.Client>();

  constructor(url: string, poolSize: number) {
    this.#url = url;
    this.#pool = new pg.Pool({
      connectionString: url,
      max: poolSize,
      // Two connections stay open however idle the node: a join's statements never wait for a TCP and
      // authentication handshake (the pool would close every idle connection after 10 s).
      min: Math.min(2, poolSize),
      // A server that does not answer at all (a partition) fails a request after 10 s rather than holding it forever.
      connectionTimeoutMillis: 10_000,
      ...KEEPALIVE,
    });
    // An idle pooled connection the server closed is an event, not a crash; the pool opens another.
    this.#pool.on('error', () => undefined);
  }

  async query<T>(sql: string, params: readonly unknown[] = []): Promise<{ rows: T[] }> {
    const r = await mapOutage(this.#pool.query(sql, params as unknown[]));
    return { rows: r.rows as T[] };
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return mapOutage(this.#transaction(fn));
  }

  async #transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    // A connection the server drops while checked out (failover, restart) fails the statement in flight; its
    // 'error' event must not also become an uncaught exception that ends the process.
    let broken: Error | undefined;
    const onError = (err: Error) => (broken = err);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await fn({
        query: async <R>(sql: string, params: readonly unknown[] = []) => ({
          rows: (await client.query(sql, params as unknown[])).rows as R[],
        }),
      });
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.off('error', onError);
      // A broken connection is discarded rather than handed to the next caller.
      client.release(broken);
    }
  }

  async exec(sql: string): Promise<void> {
    await mapOutage(this.#pool.query(sql));
  }

  async rewriteTable(table: string, lockTimeoutMs: number): Promise<boolean> {
    // VACUUM cannot run in a transaction, so SET LOCAL is not available: the setting is set and reset on the
    // pooled connection that runs it.
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query(`SET lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
      await client.query(`VACUUM FULL ${pg.escapeIdentifier(table)}`);
      return true;
    } catch (err) {
      // 55P03 lock_not_available: the lock was not granted within the timeout.
      if ((err as { code?: string }).code === '55P03') return false;
      broken = err as Error;
      throw err;
    } finally {
      if (!broken) await client.query('RESET lock_timeout').catch((err: Error) => (broken = err));
      client.release(broken);
    }
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.#url, ...KEEPALIVE });
    client.on('error', () => undefined);
    this.#clients.add(client);
    client.on('end', () => this.#clients.delete(client));
    await client.connect();
    return client;
  }

  /** Opens the listening connection; when it is lost, opens it again (backing off) and has every listener resync. */
  #openListener(): Promise<pg.Client> {
    const opening = (async () => {
      const client = await this.#connect();
      // Which connection this is, for the operator's pg_stat_activity (and the test that cuts it).
      await client.query("SET application_name = 'vigie-listen'");
      client.on('notification', (n) => {
        for (const s of this.#channels.get(n.channel) ?? []) s.onNotify(n.payload ?? '');
      });
      for (const channel of this.#channels.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      client.once('end', () => {
        if (this.#closed || this.#listener !== opening) return;
        this.#listener = undefined;
        void this.#relisten(0);
      });
      return client;
    })();
    this.#listener = opening;
    opening.catch(() => {
      if (this.#listener === opening) this.#listener = undefined;
    });
    return opening;
  }

  async #relisten(attempt: number): Promise<void> {
    if (this.#closed || this.#channels.size === 0) return;
    try {
      await this.#openListener();
    } catch {
      const delay = Math.min(10_000, 250 * 2 ** attempt);
      setTimeout(() => void this.#relisten(attempt + 1), delay).unref();
      return;
    }
    for (const subs of this.#channels.values()) for (const s of subs) s.onResync?.();
  }

  async listen(
    channel: string,
    onNotify: (payload: string) => void,
    onResync?: () => void,
  ): Promise<() => Promise<void>> {
    const subscriber: Subscriber = { onNotify, onResync };
    let subs = this.#channels.get(channel);
    const first = !subs;
    if (!subs) {
      subs = new Set();
      this.#channels.set(channel, subs);
    }
    subs.add(subscriber);
    const client = await (this.#listener ?? this.#openListener());
    // A listener opened before this channel existed does not LISTEN on it yet.
    if (first) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    return async () => {
      subs.delete(subscriber);
      if (subs.size === 0 && this.#channels.get(channel) === subs) {
        this.#channels.delete(channel);
        const current = await this.#listener?.catch(() => undefined);
        await current?.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
      }
    };
  }

  async notify(channel: string, payload: string): Promise<void> {
    await mapOutage(this.#pool.query('SELECT pg_notify($1, $2)', [channel, payload]));
  }

  /**
   * The connection that holds this node's session advisory locks, opened at the
   * first try and kept: singletons retry every few seconds on every node, and a
   * connection per try would cost the server a backend each time.
   */
  #lockConnection(): Promise<LockConnection> {
    if (this.#locker) return this.#locker;
    const opening = (async () => {
      const client = await this.#connect();
      const conn: LockConnection = { client, ended: false, held: new Map() };
      client.once('end', () => {
        conn.ended = true;
        if (this.#locker === opening) this.#locker = undefined;
        // The server dropped every lock of this session with it: each holder is told.
        for (const lost of conn.held.values()) lost();
        conn.held.clear();
      });
      // Which connection this is, for the operator's pg_stat_activity.
      await client.query("SET application_name = 'vigie-locks'");
      return conn;
    })();
    this.#locker = opening;
    opening.catch(() => {
      if (this.#locker === opening) this.#locker = undefined;
    });
    return opening;
  }

  async tryAdvisoryLock(key: string): Promise<AdvisoryLease | undefined> {
    // Session locks are reentrant within their session: a second holder on this node is refused here.
    if (this.#trying.has(key)) return undefined;
    this.#trying.add(key);
    try {
      const conn = await this.#lockConnection();
      if (conn.held.has(key)) return undefined;
      const { rows } = await conn.client.query(`SELECT pg_try_advisory_lock(${LOCK_KEY_SQL}) AS ok`, [key]);
      if (!rows[0]?.ok) return undefined;
      let onLost: () => void = () => undefined;
      const lost = new Promise<void>((resolve) => (onLost = resolve));
      // Lost between the answer and now: the lease is born lost, and its holder learns it at once.
      if (conn.ended) onLost();
      else conn.held.set(key, onLost);
      return {
        lost,
        release: async () => {
          if (conn.held.get(key) !== onLost) return;
          conn.held.delete(key);
          await conn.client.query(`SELECT pg_advisory_unlock(${LOCK_KEY_SQL})`, [key]).catch(() => undefined);
        },
      };
    } finally {
      this.#trying.delete(key);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#clients].map((c) => c.end().catch(() => undefined)));
    await this.#pool.end();
  }
}

export interface DatabaseOptions {
  /** A PostgreSQL server (`postgres://…`); unset: the embedded engine in `dataDir`. */
  url?: string;
  /** Where the embedded engine keeps its files (`memory://`: nowhere). */
  dataDir: string;
  /** Connections to the server per node. */
  poolSize?: number;
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  if (opts.url) {
    const db = new PostgresDatabase(opts.url, opts.poolSize ?? 10);
    await db.query('SELECT 1');
    return db;
  }
  // `memory://`: a store that lives as long as the process (tools and tests that need no files).
  if (!opts.dataDir.startsWith('memory://')) mkdirSync(opts.dataDir, { recursive: true });
  // Loaded only here: the engine's module costs about 50 MB of memory, which a node on a server never needs.
  const { PGlite } = await import('@electric-sql/pglite');
  return new PgliteDatabase(await PGlite.create(opts.dataDir));
}
