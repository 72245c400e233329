import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { ConfigError } from '../config/index.js';
import type { Logger } from '../logging.js';
import type { Database, Queryable } from '../store/index.js';
import type { NodeLoad } from './load.js';
import { Singleton } from './Singleton.js';

export interface NodeRegistryOptions {
  id: string;
  region: string;
  /** Read at each heartbeat: a node listening on port 0 learns its URL after it registered. */
  publicUrl: () => string;
  heartbeatSeconds: number;
  deadAfterSeconds: number;
  /** How often the node retries its identity lock after losing it. */
  retrySeconds: number;
  load: () => Promise<NodeLoad>;
  /** Whether the node drains by itself (signaling refuses joins after SIGTERM); read at each heartbeat. */
  draining?: () => boolean;
}

/** A node as the registry shows it. */
export interface NodeInfo {
  id: string;
  publicUrl: string;
  region: string;
  startedAt: string;
  heartbeatAt: string;
  stoppedAt: string | null;
  /** Heartbeat younger than `deadAfterSeconds` and not stopped. */
  alive: boolean;
  /**
   * Heartbeat younger than `beatingSeconds`. A node silent that long may have died: it gets no new room, but it keeps
   * its rooms until it is dead (a slow control plane must not split a call between two nodes).
   */
  beating: boolean;
  draining: boolean;
  load: NodeLoad;
}

interface NodeRow {
  id: string;
  public_url: string;
  region: string;
  started_at: Date | string;
  heartbeat_at: Date | string;
  stopped_at: Date | string | null;
  draining: boolean;
  alive: boolean;
  beating: boolean;
  workers: number;
  rooms: number;
  peers: number;
  consumers: number;
  cpu: number;
}

export interface NodeRegistryObserverEvents {
  heartbeat: [load: NodeLoad];
  /** Another process took this node's id over (its identity lock and row): the configuration is wrong. */
  replaced: [];
}

/** How long the registry keeps the row of a node that stopped or died. */
export const FORGET_AFTER_DAYS = 7;

/** A node is alive while it has not stopped and its last heartbeat is younger than `$1` seconds (database clock). */
const ALIVE = '(stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1))';
/** ... and beating while its last heartbeat is younger than `$2` seconds (beatingSeconds). */
const BEATING = '(stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $2))';

/**
 * How long a node may be silent and still get new rooms: half the time after which it is dead, and at least two
 * heartbeat periods, so that one late beat on a busy machine does not take it out of placement (5 s by default).
 */
export const beatingSeconds = (o: { heartbeatSeconds: number; deadAfterSeconds: number }) =>
  Math.max(2 * o.heartbeatSeconds, o.deadAfterSeconds / 2);

/**
 * Whether `nodeId` is alive, read in the caller's transaction: the room directory asks before it takes over a
 * room placed on another node. A node the registry does not know is not alive.
 */
export async function isNodeLive(q: Queryable, nodeId: string, deadAfterSeconds: number): Promise<boolean> {
  const { rows } = await q.query<{ alive: boolean }>(`SELECT ${ALIVE} AS alive FROM nodes WHERE id = $2`, [
    deadAfterSeconds,
    nodeId,
  ]);
  return rows[0]?.alive === true;
}

const iso = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());

/**
 * This node's row in the shared `nodes` table: registered at start, kept
 * alive by a heartbeat that carries its load, marked draining on SIGTERM and
 * stopped on close. The database's clock decides liveness, so nodes with
 * skewed clocks still agree on who is dead.
 *
 * A node holds the advisory lock `vigie:node:<id>` while it runs: a second
 * live process with the same id cannot take it and refuses to start, while a
 * node that crashed frees it with its connection and restarts at once.
 */
export class NodeRegistry {
  readonly observer = new EventEmitter<NodeRegistryObserverEvents>();
  /** This process, among the successive processes that carry the same node id. */
  readonly instance = randomUUID();
  readonly #identity: Singleton;
  #timer?: NodeJS.Timeout;
  /** The beat running, and the one asked for while it runs. */
  #beat?: Promise<void>;
  #nextBeat?: Promise<void>;
  #draining = false;
  #replaced = false;
  /** The live nodes as last read (liveNodes, and each heartbeat). */
  #lastLive: NodeInfo[] = [];

  constructor(
    private readonly db: Database,
    private readonly options: NodeRegistryOptions,
    private readonly log: Logger,
  ) {
    this.#identity = new Singleton(db, `node:${options.id}`, { retrySeconds: options.retrySeconds, log });
  }

  get id(): string {
    return this.options.id;
  }

  /** Registers this node and starts its heartbeat; throws ConfigError if a live node has the same id. */
  async start(): Promise<void> {
    if (!(await this.#identity.start())) {
      await this.#identity.stop();
      const other = (await this.list()).find((n) => n.id === this.options.id);
      throw new ConfigError([
        `VIGIE_NODE_ID: another live node already runs as "${this.options.id}"` +
          `${other ? ` (${other.publicUrl}, last heartbeat ${other.heartbeatAt})` : ''}; ` +
          'give each node its own id',
      ]);
    }
    // Nodes named after short-lived hosts (containers) come and go: rows silent for a week are forgotten.
    await this.db.query(`DELETE FROM nodes WHERE heartbeat_at < now() - interval '${FORGET_AFTER_DAYS} days'`);
    const load = await this.options.load();
    await this.db.query(
      `INSERT INTO nodes (id, instance, public_url, region, started_at, heartbeat_at, stopped_at, draining,
                          workers, rooms, peers, consumers, cpu)
       VALUES ($1, $2, $3, $4, now(), now(), NULL, false, $5, $6, $7, $8, $9)
       ON CONFLICT (id) DO UPDATE SET instance = EXCLUDED.instance, public_url = EXCLUDED.public_url,
         region = EXCLUDED.region, started_at = now(), heartbeat_at = now(), stopped_at = NULL, draining = false,
         workers = EXCLUDED.workers, rooms = EXCLUDED.rooms, peers = EXCLUDED.peers,
         consumers = EXCLUDED.consumers, cpu = EXCLUDED.cpu`,
      [this.options.id, this.instance, this.options.publicUrl(), this.options.region, ...loadValues(load)],
    );
    this.log.info({ node: this.options.id, region: this.options.region }, 'node registered');
    this.#timer = setInterval(() => void this.heartbeat(), this.options.heartbeatSeconds * 1000);
    this.#timer.unref();
  }

  /**
   * Publishes liveness and load (one beat at a time); the timer calls it every `heartbeatSeconds`. A call made while a
   * beat runs waits for the next one, not the running one: that may have read the state before the caller changed it
   * (the public URL learned once the server listens, draining just set). Calls made meanwhile share that next beat.
   */
  heartbeat(): Promise<void> {
    if (!this.#beat) {
      this.#beat = this.#heartbeat()
        .catch((err) => this.log.warn({ reason: (err as Error).message }, 'node heartbeat failed; retrying'))
        .finally(() => (this.#beat = undefined));
      return this.#beat;
    }
    this.#nextBeat ??= this.#beat.then(() => {
      this.#nextBeat = undefined;
      return this.heartbeat();
    });
    return this.#nextBeat;
  }

  async #heartbeat(): Promise<void> {
    if (this.#replaced) return;
    const load = await this.options.load();
    const { rows } = await this.db.query(
      `UPDATE nodes SET heartbeat_at = now(), public_url = $3, draining = $4,
              workers = $5, rooms = $6, peers = $7, consumers = $8, cpu = $9
        WHERE id = $1 AND instance = $2 RETURNING id`,
      [
        this.options.id,
        this.instance,
        this.options.publicUrl(),
        this.#draining || (this.options.draining?.() ?? false),
        ...loadValues(load),
      ],
    );
    if (!rows.length) {
      this.#replaced = true;
      this.log.error(
        { node: this.options.id },
        'another process registered with this node id: this node no longer heartbeats; give each node its own id',
      );
      this.observer.emit('replaced');
      return;
    }
    // Kept for what needs the cluster's nodes without a round trip (the join answer lists them).
    await this.liveNodes();
    this.observer.emit('heartbeat', load);
  }

  /** Draining (SIGTERM): placement stops choosing this node. Published at once. */
  async markDraining(): Promise<void> {
    this.#draining = true;
    await this.heartbeat();
  }

  /** Every node registered in the last FORGET_AFTER_DAYS, with its liveness by the database's clock. */
  async list(): Promise<NodeInfo[]> {
    const { rows } = await this.db.query<NodeRow>(
      `SELECT *, ${ALIVE} AS alive, ${BEATING} AS beating FROM nodes ORDER BY id`,
      [this.options.deadAfterSeconds, beatingSeconds(this.options)],
    );
    return rows.map(toInfo);
  }

  async liveNodes(): Promise<NodeInfo[]> {
    this.#lastLive = (await this.list()).filter((n) => n.alive);
    return this.#lastLive;
  }

  /** The live nodes as the last heartbeat (or liveNodes call) read them; at most `heartbeatSeconds` old. */
  lastLive(): NodeInfo[] {
    return this.#lastLive;
  }

  /** Stops the heartbeat and marks the node stopped (it is shown, not alive); releases its id. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await (this.#nextBeat ?? this.#beat);
    if (!this.#replaced)
      await this.db
        .query('UPDATE nodes SET stopped_at = now(), draining = false WHERE id = $1 AND instance = $2', [
          this.options.id,
          this.instance,
        ])
        .catch((err) => this.log.warn({ reason: (err as Error).message }, 'node not marked stopped'));
    await this.#identity.stop();
  }
}

const loadValues = (l: NodeLoad) => [l.workers, l.rooms, l.peers, l.consumers, l.cpu];

function toInfo(r: NodeRow): NodeInfo {
  return {
    id: r.id,
    publicUrl: r.public_url,
    region: r.region,
    startedAt: iso(r.started_at)!,
    heartbeatAt: iso(r.heartbeat_at)!,
    stoppedAt: iso(r.stopped_at),
    alive: r.alive,
    beating: r.beating,
    draining: r.draining,
    load: { workers: r.workers, rooms: r.rooms, peers: r.peers, consumers: r.consumers, cpu: Number(r.cpu) },
  };
}
