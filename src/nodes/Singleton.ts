import { EventEmitter } from 'node:events';
import type { Logger } from '../logging.js';
import type { AdvisoryLease, Database } from '../store/index.js';

export interface SingletonObserverEvents {
  /** This node now holds the lock: the job may run here. */
  acquired: [];
  /** The lock is gone: its connection died (`connection`), or the singleton was stopped (`stopped`). */
  lost: [reason: 'connection' | 'stopped'];
}

export interface SingletonOptions {
  /** How often a node that does not hold the lock tries to take it. */
  retrySeconds: number;
  log: Logger;
}

/**
 * A job that must run on one node at a time (the retention sweeper, TTL
 * application…): it runs while its node holds the session advisory lock
 * `vigie:<name>`. Nodes that do not hold it try again every few seconds, so
 * the job moves to another node when its holder dies and the server drops the
 * holder's connection (and with it the lock).
 */
export class Singleton {
  readonly observer = new EventEmitter<SingletonObserverEvents>();
  #lease?: AdvisoryLease;
  #timer?: NodeJS.Timeout;
  #attempt?: Promise<boolean>;
  #stopped = false;

  constructor(
    private readonly db: Database,
    readonly name: string,
    private readonly options: SingletonOptions,
  ) {}

  get held(): boolean {
    return this.#lease !== undefined;
  }

  /** Tries to take the lock at once (resolves to whether it was), then keeps trying while it is not held. */
  async start(): Promise<boolean> {
    this.#stopped = false;
    const held = await this.tryAcquire();
    clearInterval(this.#timer);
    this.#timer = setInterval(() => void this.tryAcquire(), this.options.retrySeconds * 1000);
    this.#timer.unref();
    return held;
  }

  /** One attempt (never two at once); resolves to whether this node holds the lock afterwards. */
  tryAcquire(): Promise<boolean> {
    this.#attempt ??= this.#tryAcquire().finally(() => (this.#attempt = undefined));
    return this.#attempt;
  }

  async #tryAcquire(): Promise<boolean> {
    if (this.#lease || this.#stopped) return this.held;
    let lease: AdvisoryLease | undefined;
    try {
      lease = await this.db.tryAdvisoryLock(`vigie:${this.name}`);
    } catch (err) {
      // The store is unreachable: nobody can be sure to hold the lock now; the next attempt tries again.
      this.options.log.warn({ singleton: this.name, reason: (err as Error).message }, 'singleton lock not taken');
      return false;
    }
    if (!lease) return false;
    if (this.#stopped) {
      await lease.release();
      return false;
    }
    this.#lease = lease;
    void lease.lost.then(() => {
      if (this.#lease !== lease) return;
      this.#lease = undefined;
      this.options.log.warn({ singleton: this.name }, 'singleton lock lost with its connection; will try again');
      this.observer.emit('lost', 'connection');
    });
    this.options.log.info({ singleton: this.name }, 'singleton lock acquired: this node runs the job');
    this.observer.emit('acquired');
    return true;
  }

  /**
   * Runs `job` every `seconds` while this node holds the lock, one run at a
   * time (a run still going when the next is due makes that one skip).
   * Returns the function that stops it.
   */
  every(seconds: number, job: () => Promise<unknown>, onError: (err: unknown) => void): () => void {
    let running = false;
    const timer = setInterval(() => {
      if (!this.held || running) return;
      running = true;
      job()
        .catch(onError)
        .finally(() => (running = false));
    }, seconds * 1000);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Stops trying and releases the lock, so another node takes the job over at its next attempt. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#attempt;
    const lease = this.#lease;
    this.#lease = undefined;
    if (!lease) return;
    await lease.release().catch(() => undefined);
    this.observer.emit('lost', 'stopped');
  }
}
