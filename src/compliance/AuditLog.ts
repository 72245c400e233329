import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { compactVerify } from 'jose';
import { VigieError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { CheckpointAnchors, SignedCheckpoint } from './anchors.js';
import { canonicalJson, type Signer } from './signing.js';

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

/** The durable path of audit rows: fsynced in a local journal when it resolves, shipped to ClickHouse after. */
export interface AuditJournal {
  persist(id: string, table: string, rows: unknown[]): Promise<void>;
  /** Waits until everything journaled is in ClickHouse; false when it could not be shipped in time. */
  drain(timeoutMs?: number): Promise<boolean>;
}

export const GENESIS = '0'.repeat(64);
const MAX_PROBLEMS = 1000;

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
 * the hash of the one before (SHA-256 over canonical JSON). Appends to a chain
 * go through one queue, so order holds under concurrency. Every N entries or
 * M minutes a checkpoint is signed (JWS, ES256) and anchored outside
 * ClickHouse, so a rewritten or truncated chain cannot be passed off as the
 * original.
 *
 * Nothing is dropped or forked: an entry is fsynced in the journal before
 * `append` resolves (so before the audited action is answered), never under a
 * drop policy, and appends are refused (UNAVAILABLE) until the chains' heads
 * have been read back from ClickHouse after the journal was shipped there.
 */
export class AuditLog {
  readonly #heads = new Map<string, Head>();
  readonly #queues = new Map<string, Promise<unknown>>();
  #ready = false;
  #markReady!: () => void;
  readonly #whenReady = new Promise<void>((resolve) => (this.#markReady = resolve));

  constructor(
    private readonly client: ClickHouseClient,
    private readonly db: string,
    private readonly journal: AuditJournal,
    private readonly signer: Signer,
    private readonly anchors: CheckpointAnchors,
    private readonly options: { checkpointEvery: number; checkpointMinutes: number },
    private readonly log: Logger,
  ) {}

  /** True once every chain's head is known: appends are accepted. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * Ships what the journal holds from an earlier run, then loads each chain's
   * head from ClickHouse, which then holds everything: appends continue where
   * the last run stopped. Resolves false (and stays not ready) while either
   * cannot be done; the caller retries.
   */
  async init(drainTimeoutMs = 10_000): Promise<boolean> {
    if (this.#ready) return true;
    if (!(await this.journal.drain(drainTimeoutMs))) return false;
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
    for (const r of await rs.json<{ tenant: string; head_seq: string; head_hash: string }>()) {
      this.#heads.set(r.tenant, {
        seq: Number(r.head_seq),
        hash: r.head_hash,
        lastCheckpointSeq: checkpoints.get(r.tenant) ?? 0,
        lastCheckpointAt: Date.now(),
      });
    }
    this.#ready = true;
    this.#markReady();
    this.log.info({ chains: this.#heads.size }, 'audit log ready: chain heads loaded');
    return true;
  }

  /**
   * Appends an entry; resolves once it is durable. Refused with UNAVAILABLE
   * before the heads are known, so an audited action is not answered then.
   */
  append(input: AuditInput): Promise<AuditEntry> {
    if (!this.#ready) return Promise.reject(notReady());
    const tenant = input.tenant || 'system';
    const run = (this.#queues.get(tenant) ?? Promise.resolve()).then(() => this.#append(tenant, input));
    this.#queues.set(
      tenant,
      run.catch(() => undefined),
    );
    return run;
  }

  /** For what the gateway does on its own (retention sweeps): waits for the heads instead of refusing. */
  async appendWhenReady(input: AuditInput): Promise<AuditEntry> {
    await this.#whenReady;
    return this.append(input);
  }

  async #append(tenant: string, input: AuditInput): Promise<AuditEntry> {
    const head = this.#heads.get(tenant) ?? {
      seq: 0,
      hash: GENESIS,
      lastCheckpointSeq: 0,
      lastCheckpointAt: Date.now(),
    };
    const body = {
      tenant,
      seq: head.seq + 1,
      ts: Date.now(),
      actor: input.actor,
      action: input.action,
      target: input.target ?? '',
      subject: input.subject ?? '',
      result: input.result ?? 'ok',
      source_ip: input.sourceIp ?? '',
      details: canonicalJson(input.details ?? {}),
      prev_hash: head.hash,
    };
    const entry: AuditEntry = { ...body, hash: entryHash(body) };
    // The id is the insert's deduplication token: a batch shipped twice (crash before the ack) is stored once.
    await this.journal.persist(`audit:${tenant}:${entry.seq}:${entry.hash}`, 'audit_log', [entry]);
    head.seq = entry.seq;
    head.hash = entry.hash;
    this.#heads.set(tenant, head);
    if (
      head.seq - head.lastCheckpointSeq >= this.options.checkpointEvery ||
      Date.now() - head.lastCheckpointAt >= this.options.checkpointMinutes * 60_000
    ) {
      // The entry is durable: a checkpoint that fails now is retried at the next append or tick.
      await this.#checkpoint(tenant, head).catch((err) =>
        this.log.error({ err, tenant, seq: head.seq }, 'audit checkpoint failed; retried later'),
      );
    }
    return entry;
  }

  async #checkpoint(tenant: string, head: Head): Promise<void> {
    const ts = Date.now();
    const at = { seq: head.seq, hash: head.hash };
    const jws = await this.signer.sign({ tenant, ...at, ts });
    const cp: SignedCheckpoint = { tenant, ...at, ts, jws };
    // The row first (a local fsync), then the anchor (maybe S3): an anchor never lacks its row unless the
    // row was deleted, which verify reports. The checkpoint is done only once anchored; else it is signed again.
    await this.journal.persist(`checkpoint:${tenant}:${at.seq}:${ts}`, 'audit_checkpoints', [cp]);
    await this.anchors.append(cp);
    head.lastCheckpointSeq = Math.max(head.lastCheckpointSeq, at.seq);
    head.lastCheckpointAt = ts;
  }

  /** Signs a checkpoint now for every chain with entries after its last one (shutdown, tests). */
  async checkpointAll(): Promise<void> {
    if (!this.#ready) return;
    for (const [tenant, head] of this.#heads) {
      if (head.seq <= head.lastCheckpointSeq) continue;
      // Through the chain's queue, so the head does not move while it is signed.
      const run = (this.#queues.get(tenant) ?? Promise.resolve()).then(() =>
        head.seq > head.lastCheckpointSeq ? this.#checkpoint(tenant, head) : undefined,
      );
      this.#queues.set(
        tenant,
        run.catch(() => undefined),
      );
      await run;
    }
  }

  /** Waits until every journaled entry is in ClickHouse (before reading the chain back: verification, exports). */
  async flush(): Promise<void> {
    if (!(await this.journal.drain()))
      throw new VigieError(
        'UNAVAILABLE',
        'audit entries are waiting in the journal for ClickHouse; retry once it answers',
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

    const head = this.#heads.get(tenant);
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
    'the audit log is not ready: the chain heads cannot be read from ClickHouse yet, so audited actions are ' +
      'refused rather than forking the chain; retry shortly',
  );
