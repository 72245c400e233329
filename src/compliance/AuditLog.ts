import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { compactVerify } from 'jose';
import { VigieError } from '../errors.js';
import type { Logger } from '../logging.js';
import { isConnectionError } from '../store/index.js';
import type { CheckpointAnchors, SignedCheckpoint } from './anchors.js';
import {
  type AdvisoryLease,
  type Database,
  importedAlready,
  importOnce,
  migrateStore,
  type Queryable,
} from '../store/index.js';
import { AuditShipper, type ShipperOptions } from './AuditShipper.js';
import { STORE_MIGRATIONS } from './schema.js';
import { canonicalJson, type Signer } from './signing.js';

/** The one-time import of the chain heads the version before kept in ClickHouse (`store_imports`). */
const HEADS_IMPORT = 'clickhouse:audit_heads';

export interface AuditInput {
  tenant: string;
  actor: string;
  action: string;
  target?: string;
  /** Pseudonym of the data subject concerned, if any. */
  subject?: string;
  result?: string;
  sourceIp?: string;
  details?: Record<string, unknown>;
}

export interface AuditEntry {
  tenant: string;
  seq: number;
  ts: number;
  actor: string;
  action: string;
  target: string;
  subject: string;
  result: string;
  source_ip: string;
  details: string;
  prev_hash: string;
  hash: string;
}

export type ChainProblem = { seq: number; kind: 'altered' | 'deleted' | 'inserted' | 'checkpoint'; detail: string };

export interface VerifyResult {
  ok: boolean;
  entries: number;
  /** Distinct signed checkpoints seen, in ClickHouse or in the anchors. */
  checkpoints: number;
  /** Of those, how many the anchors outside ClickHouse hold. */
  anchored: number;
  /** The first problem by position; `problems` lists every one found (at most MAX_PROBLEMS). */
  problem?: ChainProblem;
  problems: ChainProblem[];
}

/** The journal of the version before (a local spool shipped to ClickHouse): emptied once, then set aside. */
export interface LegacyJournal {
  /** Waits until everything journaled is in ClickHouse; false when it could not be shipped in time. */
  drain(timeoutMs?: number): Promise<boolean>;
  /** Closes it and renames it `<name>.imported` (never deleted). */
  retire(): Promise<void>;
}

export const GENESIS = '0'.repeat(64);
const MAX_PROBLEMS = 1000;
/** At most this many appends of a tenant share one transaction. */
const MAX_GROUP = 100;

/** An append waiting for its tenant's next transaction on this node. */
interface Waiting {
  input: AuditInput;
  /** The details, serialized before the entry joins a group: one that cannot be fails alone, not its group. */
  details: string;
  resolve: (entry: AuditEntry) => void;
  reject: (err: unknown) => void;
}
/** The session advisory lock of the node that signs the periodic checkpoints (one node at a time). */
export const ANCHORING_LOCK = 'vigie:audit-anchoring';

export function entryHash(e: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256').update(canonicalJson(e)).digest('hex');
}

interface Head {
  seq: number;
  hash: string;
  lastCheckpointSeq: number;
  lastCheckpointAt: number;
}

/**
 * Tamper-evident audit log: one hash chain per tenant, each entry carrying
 * the hash of the one before (SHA-256 over canonical JSON). Every N entries or
 * M minutes a checkpoint is signed (JWS, ES256) and anchored outside
 * ClickHouse, so a rewritten or truncated chain cannot be passed off as the
 * original.
 *
 * Nothing is dropped or forked, on any number of nodes: an entry is appended
 * in one PostgreSQL transaction that locks its chain's head row, inserts the
 * entry in the outbox and moves the head, committed before `append` resolves
 * (so before the audited action is answered). ClickHouse receives its copy
 * after, from the outbox (AuditShipper). Appends are refused (UNAVAILABLE)
 * until the heads the version before kept in ClickHouse have been imported.
 */
export class AuditLog {
  readonly shipper: AuditShipper;
  #legacy?: LegacyJournal;
  #lease?: AdvisoryLease;
  #ready = false;
  #markReady!: () => void;
  /** Per tenant, the appends waiting while one of its transactions runs on this node (see #append). */
  readonly #waiting = new Map<string, Waiting[]>();
  /** The group commits running, each until its tenant's queue is empty: closing waits for them. */
  readonly #commits = new Set<Promise<void>>();
  readonly #whenReady = new Promise<void>((resolve) => (this.#markReady = resolve));

  constructor(
    private readonly store: Database,
    private readonly client: ClickHouseClient,
    private readonly db: string,
    private readonly signer: Signer,
    private readonly anchors: CheckpointAnchors,
    private readonly options: {
      checkpointEvery: number;
      checkpointMinutes: number;
      shipping?: Partial<ShipperOptions>;
    },
    private readonly log: Logger,
    legacy?: LegacyJournal,
  ) {
    this.#legacy = legacy;
    this.shipper = new AuditShipper(store, client, db, log, options.shipping);
  }

  /** True once every chain's head is known: appends are accepted. */
  get ready(): boolean {
    return this.#ready;
  }

  /** True while this node holds the anchoring lock and signs the periodic checkpoints. */
  get anchoring(): boolean {
    return this.#lease !== undefined;
  }

  /**
   * Applies the audit tables' migrations; on the first start after an upgrade,
   * ships what the old local journal holds, then imports each chain's head
   * from ClickHouse (once for all nodes), so the chains continue where the
   * version before stopped. Resolves false (and stays not ready) while
   * ClickHouse cannot be read for that import (`clickhouseReady` false, or
   * failing); the caller retries. Once imported, ClickHouse is not needed.
   */
  async init(drainTimeoutMs = 10_000, clickhouseReady = () => true): Promise<boolean> {
    if (this.#ready) return true;
    await migrateStore(this.store, 'audit', STORE_MIGRATIONS, this.log);
    if ((this.#legacy || !(await importedAlready(this.store, HEADS_IMPORT, this.log))) && !clickhouseReady())
      return false;
    if (this.#legacy) {
      if (!(await this.#legacy.drain(drainTimeoutMs))) return false;
      await this.#legacy.retire();
      this.#legacy = undefined;
    }
    await this.#importHeads();
    this.shipper.start();
    this.#ready = true;
    this.#markReady();
    const { rows } = await this.store.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_heads');
    this.log.info({ chains: Number(rows[0]?.n) }, 'audit log ready: chain heads in the control plane');
    return true;
  }

  /**
   * The version before kept the heads in memory, read from audit_log at start: they are read the same way, once
   * for the cluster (nodes upgraded together: one imports, the others find it done).
   */
  async #importHeads(): Promise<void> {
    await importOnce(this.store, HEADS_IMPORT, this.log, async (tx) => {
      const rs = await this.client.query({
        // Aliases must not reuse column names: ClickHouse would resolve seq inside argMax to max(seq).
        query: `SELECT tenant, max(seq) AS head_seq, argMax(hash, seq) AS head_hash
                FROM ${this.db}.audit_log
                GROUP BY tenant`,
        format: 'JSONEachRow',
      });
      const cp = await this.client.query({
        query: `SELECT tenant, max(seq) AS last_seq FROM ${this.db}.audit_checkpoints GROUP BY tenant`,
        format: 'JSONEachRow',
      });
      const checkpoints = new Map(
        (await cp.json<{ tenant: string; last_seq: string }>()).map((r) => [r.tenant, Number(r.last_seq)]),
      );
      const heads = await rs.json<{ tenant: string; head_seq: string; head_hash: string }>();
      // A head already here (appended since) is newer than ClickHouse's copy: it is kept.
      for (const h of heads)
        await tx.query(
          `INSERT INTO audit_heads (tenant, seq, hash, last_checkpoint_seq, last_checkpoint_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant) DO NOTHING`,
          [h.tenant, Number(h.head_seq), h.head_hash, checkpoints.get(h.tenant) ?? 0, Date.now()],
        );
      return heads.length;
    });
  }

  /**
   * Appends an entry; resolves once it is committed. Refused with UNAVAILABLE
   * before the heads are known, so an audited action is not answered then.
   */
  append(input: AuditInput): Promise<AuditEntry> {
    if (!this.#ready) return Promise.reject(notReady());
    return this.#append(input.tenant || 'system', input).catch((err) => {
      if (!isConnectionError(err)) throw err;
      this.log.warn({ reason: (err as Error).message }, 'audit append refused: the control plane cannot be reached');
      throw new VigieError(
        'UNAVAILABLE',
        'the audit log cannot reach its store (PostgreSQL), so audited actions are refused; retry shortly',
      );
    });
  }

  /** For what the gateway does on its own (retention sweeps): waits for the heads instead of refusing. */
  async appendWhenReady(input: AuditInput): Promise<AuditEntry> {
    await this.#whenReady;
    return this.append(input);
  }

  /**
   * Locks the chain's head row until the transaction ends: appends and checkpoints on any node wait for it. One
   * statement creates the head if new and locks and reads it (a no-op update takes the row lock, as FOR UPDATE does).
   */
  async #lockHead(tx: Queryable, tenant: string): Promise<Head> {
    const { rows } = await tx.query<{ seq: string; hash: string; cp_seq: string; cp_at: string }>(
      `INSERT INTO audit_heads (tenant, seq, hash, last_checkpoint_seq, last_checkpoint_at)
       VALUES ($1, 0, $2, 0, $3) ON CONFLICT (tenant) DO UPDATE SET tenant = EXCLUDED.tenant
       RETURNING seq, hash, last_checkpoint_seq AS cp_seq, last_checkpoint_at AS cp_at`,
      [tenant, GENESIS, Date.now()],
    );
    const r = rows[0]!;
    return { seq: Number(r.seq), hash: r.hash, lastCheckpointSeq: Number(r.cp_seq), lastCheckpointAt: Number(r.cp_at) };
  }

  /**
   * Appends of a tenant that arrive while one of its transactions runs wait and share the next one (group
   * commit): each transaction costs the store several statements whatever it holds, and with the embedded engine
   * those run on the main thread. Each append still resolves only once its own entry is committed.
   */
  #append(tenant: string, input: AuditInput): Promise<AuditEntry> {
    return new Promise((resolve, reject) => {
      const details = canonicalJson(input.details ?? {}); // throws (rejects) for this append only
      const queue = this.#waiting.get(tenant);
      if (queue) return void queue.push({ input, details, resolve, reject });
      this.#waiting.set(tenant, [{ input, details, resolve, reject }]);
      const commit = this.#commitWaiting(tenant).finally(() => this.#commits.delete(commit));
      this.#commits.add(commit);
    });
  }

  async #commitWaiting(tenant: string): Promise<void> {
    const queue = this.#waiting.get(tenant)!;
    while (queue.length > 0) {
      // One turn of the event loop first: the embedded engine runs a whole transaction without yielding to I/O, so
      // the requests that arrive meanwhile reach this queue only now, and join this group rather than each start one.
      await new Promise(setImmediate);
      const group = queue.splice(0, MAX_GROUP);
      try {
        const { entries, checkpoint } = await this.store.transaction((tx) => this.#appendGroup(tx, tenant, group));
        // Those after a checkpoint's entry go in the next transaction, first.
        queue.unshift(...group.slice(entries.length));
        this.shipper.queued(entries.length);
        // The entries are committed: a checkpoint that cannot be anchored now is signed again at the next append or
        // tick.
        if (checkpoint)
          await this.#anchor(checkpoint).catch((err) =>
            this.log.error({ err, tenant, seq: checkpoint.cp.seq }, 'audit checkpoint failed; retried later'),
          );
        for (const [i, entry] of entries.entries()) group[i]!.resolve(entry);
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    this.#waiting.delete(tenant);
  }

  /** Chains the inputs after the locked head, up to the first entry a checkpoint is due at (signed here). */
  async #appendGroup(tx: Queryable, tenant: string, group: Waiting[]) {
    const head = await this.#lockHead(tx, tenant);
    const entries: AuditEntry[] = [];
    let prev = { seq: head.seq, hash: head.hash };
    let due = false;
    for (const { input, details } of group) {
      const body = {
        tenant,
        seq: prev.seq + 1,
        ts: Date.now(),
        actor: input.actor,
        action: input.action,
        target: input.target ?? '',
        subject: input.subject ?? '',
        result: input.result ?? 'ok',
        source_ip: input.sourceIp ?? '',
        details,
        prev_hash: prev.hash,
      };
      const entry: AuditEntry = { ...body, hash: entryHash(body) };
      entries.push(entry);
      prev = entry;
      due =
        entry.seq - head.lastCheckpointSeq >= this.options.checkpointEvery ||
        Date.now() - head.lastCheckpointAt >= this.options.checkpointMinutes * 60_000;
      if (due) break;
    }
    await AuditShipper.enqueueWith(
      tx,
      'audit_log',
      entries,
      'UPDATE audit_heads SET seq = $4, hash = $5 WHERE tenant = $3',
      [tenant, prev.seq, prev.hash],
    );
    const at = { ...head, seq: prev.seq, hash: prev.hash };
    return { entries, checkpoint: due ? await this.#signCheckpoint(tx, tenant, at) : undefined };
  }

  /**
   * Signs a checkpoint at the locked head, queues its row and records it in
   * the head, in the caller's transaction: two nodes never sign the same one.
   */
  async #signCheckpoint(tx: Queryable, tenant: string, head: Head): Promise<{ cp: SignedCheckpoint; previous: Head }> {
    const ts = Date.now();
    const at = { seq: head.seq, hash: head.hash };
    const jws = await this.signer.sign({ tenant, ...at, ts });
    const cp: SignedCheckpoint = { tenant, ...at, ts, jws };
    await AuditShipper.enqueue(tx, 'audit_checkpoints', cp);
    await tx.query('UPDATE audit_heads SET last_checkpoint_seq = $2, last_checkpoint_at = $3 WHERE tenant = $1', [
      tenant,
      at.seq,
      ts,
    ]);
    return { cp, previous: head };
  }

  /**
   * The row first (committed), then the anchor (maybe S3): an anchor never
   * lacks its row unless the row was deleted, which verify reports. The
   * checkpoint is done only once anchored; else the head forgets it, and it is
   * signed again.
   */
  async #anchor({ cp, previous }: { cp: SignedCheckpoint; previous: Head }): Promise<void> {
    try {
      await this.anchors.append(cp);
    } catch (err) {
      await this.store.query(
        `UPDATE audit_heads SET last_checkpoint_seq = $2, last_checkpoint_at = $3
         WHERE tenant = $1 AND last_checkpoint_seq = $4`,
        [cp.tenant, previous.lastCheckpointSeq, previous.lastCheckpointAt, cp.seq],
      );
      throw err;
    }
  }

  /**
   * Signs a checkpoint for every chain with entries after its last one
   * (shutdown, tests), or only for those whose last one is older than
   * `olderThanMs` (the periodic tick).
   */
  async checkpointAll(olderThanMs = 0): Promise<void> {
    if (!this.#ready) return;
    const { rows } = await this.store.query<{ tenant: string }>(
      'SELECT tenant FROM audit_heads WHERE seq > last_checkpoint_seq AND last_checkpoint_at <= $1 ORDER BY tenant',
      [Date.now() - olderThanMs],
    );
    for (const { tenant } of rows) {
      const signed = await this.store.transaction(async (tx) => {
        const head = await this.#lockHead(tx, tenant);
        return head.seq > head.lastCheckpointSeq ? this.#signCheckpoint(tx, tenant, head) : undefined;
      });
      if (!signed) continue;
      this.shipper.kick();
      await this.#anchor(signed);
    }
  }

  /**
   * The periodic checkpoints ("every M minutes", for chains that get no new
   * entry to trigger one) are signed by one node at a time: the holder of the
   * anchoring lock. When its node dies, its connection does, the lock is
   * free, and the next node to tick takes over. Returns whether this node
   * holds it.
   */
  async anchoringTick(): Promise<boolean> {
    if (!this.#ready) return false;
    if (!this.#lease) {
      const lease = await this.store.tryAdvisoryLock(ANCHORING_LOCK);
      if (!lease) return false;
      this.#lease = lease;
      this.log.info('audit anchoring: this node signs the periodic checkpoints');
      void lease.lost.then(() => {
        if (this.#lease !== lease) return;
        this.#lease = undefined;
        this.log.warn('audit anchoring lock lost (connection to the control plane gone); another node takes over');
      });
    }
    await this.checkpointAll(this.options.checkpointMinutes * 60_000);
    return true;
  }

  /**
   * Releases the anchoring lock and stops shipping, after a short wait for
   * ClickHouse to take what is left; the outbox keeps the rest for any node.
   */
  async close(drainTimeoutMs = 2000): Promise<void> {
    await this.settle();
    const lease = this.#lease;
    this.#lease = undefined;
    await lease?.release();
    if (this.#ready) await this.shipper.drain(drainTimeoutMs).catch(() => false);
    await this.shipper.close();
  }

  /**
   * Waits until the appends already made are committed (or refused by the store): an entry appended just before a
   * shutdown, without its caller waiting for it, is not lost when the store closes. Appends are still taken
   * meanwhile and after: the store closes last, and what other capabilities record while they stop (a retention
   * deletion) is committed too.
   */
  async settle(): Promise<void> {
    while (this.#commits.size > 0) await Promise.all(this.#commits);
  }

  /** Waits until every committed entry is in ClickHouse (before reading the chain back: verification, exports). */
  async flush(): Promise<void> {
    if (!(await this.shipper.drain()))
      throw new VigieError(
        'UNAVAILABLE',
        'audit entries are waiting in the control plane for ClickHouse; retry once it answers',
      );
  }

  /**
   * Walks a tenant's chain and names every entry that was altered, deleted or
   * inserted, every signed checkpoint (from ClickHouse or from the anchors
   * outside it) that does not match, and every checkpoint whose entry is gone.
   */
  async verify(tenant: string): Promise<VerifyResult> {
    if (!this.#ready) throw notReady();
    await this.flush();
    const problems: ChainProblem[] = [];
    // One problem per position and kind; what else is found about it is added to its detail.
    const report = (p: ChainProblem) => {
      const same = problems.find((q) => q.seq === p.seq && q.kind === p.kind);
      if (!same) problems.push(p);
      else if (!same.detail.includes(p.detail)) same.detail += `; ${p.detail}`;
    };

    // Checkpoints first: a signed hash tells which side of a broken link is intact.
    const stored = await (
      await this.client.query({
        query: `SELECT tenant, seq, hash, toUnixTimestamp64Milli(ts) AS ts, jws
                FROM ${this.db}.audit_checkpoints
                WHERE tenant = {t:String}
                ORDER BY seq`,
        query_params: { t: tenant },
        format: 'JSONEachRow',
      })
    ).json<SignedCheckpoint>();
    const anchored = await this.anchors.list(tenant);
    const signed = new Map<number, string>();
    const seen = new Set<string>();
    for (const [source, list] of [
      ['anchor', anchored],
      ['stored', stored],
    ] as const) {
      for (const raw of list) {
        const c = { ...raw, seq: Number(raw.seq) };
        if (seen.has(`${c.seq}:${c.jws}`)) continue;
        seen.add(`${c.seq}:${c.jws}`);
        try {
          const { payload } = await compactVerify(c.jws, this.signer.verificationKeys, { algorithms: ['ES256'] });
          const p = JSON.parse(new TextDecoder().decode(payload)) as { tenant: string; seq: number; hash: string };
          if (p.tenant !== tenant || p.seq !== c.seq || p.hash !== c.hash)
            throw new Error('the checkpoint differs from what was signed');
          if (signed.has(c.seq) && signed.get(c.seq) !== c.hash)
            throw new Error(`two signed checkpoints disagree on entry ${c.seq}`);
          signed.set(c.seq, c.hash);
        } catch (err) {
          report({
            seq: c.seq,
            kind: 'checkpoint',
            detail: `${source} checkpoint at ${c.seq} is invalid: ${(err as Error).message}`,
          });
        }
      }
    }
    const storedSeqs = new Set(stored.map((c) => Number(c.seq)));
    for (const c of anchored) {
      if (!storedSeqs.has(Number(c.seq)))
        report({
          seq: Number(c.seq),
          kind: 'checkpoint',
          detail: `the checkpoint at ${c.seq} was deleted from audit_checkpoints; ${this.anchors.where} still holds it`,
        });
    }

    let prev: { seq: number; hash: string } | undefined;
    let lastSeq = 0;
    let entries = 0;
    const PAGE = 50_000;
    const hashes = new Map<number, string>();
    for (let from = 0; ; from += PAGE) {
      const rs = await this.client.query({
        query: `SELECT tenant, seq, toUnixTimestamp64Milli(ts) AS ts, actor, action, target, subject, result, source_ip,
                       details, prev_hash, hash
                FROM ${this.db}.audit_log
                WHERE tenant = {t:String}
                ORDER BY seq, hash
                LIMIT {limit:UInt32} OFFSET {offset:UInt64}`,
        query_params: { t: tenant, limit: PAGE, offset: from },
        format: 'JSONEachRow',
      });
      const page = await rs.json<AuditEntry & { seq: string; ts: string }>();
      for (const raw of page) {
        const e = { ...raw, seq: Number(raw.seq), ts: Number(raw.ts) };
        entries++;
        const { hash, ...body } = e;
        if (e.seq === lastSeq) {
          report({ seq: e.seq, kind: 'inserted', detail: `a second entry claims seq ${e.seq}` });
          continue;
        }
        if (e.seq > lastSeq + 1) {
          report({ seq: lastSeq + 1, kind: 'deleted', detail: `entries ${lastSeq + 1}..${e.seq - 1} are missing` });
          prev = undefined;
        }
        if (entryHash(body) !== hash)
          report({ seq: e.seq, kind: 'altered', detail: 'its content does not match its hash' });
        const expectedPrev = prev ? prev.hash : e.seq === 1 ? GENESIS : undefined;
        if (expectedPrev !== undefined && e.prev_hash !== expectedPrev) {
          // The link between prev and e is broken. If a signature vouches for prev, e was changed (its
          // prev_hash); otherwise prev was changed and its hash recomputed, so e no longer points at it.
          if (!prev || signed.get(prev.seq) === prev.hash)
            report({
              seq: e.seq,
              kind: 'altered',
              detail: `its prev_hash was changed: it does not chain to entry ${e.seq - 1}`,
            });
          else
            report({
              seq: prev.seq,
              kind: 'altered',
              detail: `its hash was recomputed after a change: entry ${e.seq} recorded a different hash for it`,
            });
        }
        prev = { seq: e.seq, hash };
        hashes.set(e.seq, hash);
        lastSeq = e.seq;
      }
      if (page.length < PAGE) break;
    }

    const { rows: headRows } = await this.store.query<{ seq: string }>(
      'SELECT seq FROM audit_heads WHERE tenant = $1',
      [tenant],
    );
    const head = headRows[0] ? { seq: Number(headRows[0].seq) } : undefined;
    const lastSigned = Math.max(0, ...signed.keys());
    const knownEnd = Math.max(lastSigned, head?.seq ?? 0);
    if (knownEnd > lastSeq)
      report({
        seq: lastSeq + 1,
        kind: 'deleted',
        detail: `entries ${lastSeq + 1}..${knownEnd} are missing: the chain was truncated`,
      });
    for (const [seq, hash] of [...signed].sort((a, b) => a[0] - b[0])) {
      if (!hashes.has(seq))
        report({ seq, kind: 'checkpoint', detail: `entry ${seq}, covered by a signed checkpoint, is missing` });
      else if (hashes.get(seq) !== hash)
        report({ seq, kind: 'altered', detail: 'the chain was rewritten: it no longer matches the signed checkpoint' });
    }

    problems.sort((a, b) => a.seq - b.seq);
    const result: VerifyResult = {
      ok: problems.length === 0,
      entries,
      checkpoints: new Set([...stored, ...anchored].map((c) => Number(c.seq))).size,
      anchored: new Set(anchored.map((c) => Number(c.seq))).size,
      problems: problems.slice(0, MAX_PROBLEMS),
    };
    if (problems.length) result.problem = problems[0];
    this.log.debug(
      { tenant, entries, checkpoints: result.checkpoints, problems: problems.length },
      'audit chain verified',
    );
    return result;
  }
}

const notReady = () =>
  new VigieError(
    'UNAVAILABLE',
    'the audit log is not ready: the chain heads cannot be imported from ClickHouse yet, so audited actions ' +
      'are refused rather than forking the chain; retry shortly',
  );
