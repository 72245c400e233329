import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { compactVerify, createLocalJWKSet } from 'jose';
import type { Logger } from '../logging.js';
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

export const GENESIS = '0'.repeat(64);

export function entryHash(e: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256').update(canonicalJson(e)).digest('hex');
}

/**
 * Tamper-evident audit log: one hash chain per tenant, each entry carrying
 * the hash of the one before (SHA-256 over canonical JSON). Appends to a chain
 * go through one queue, so order holds under concurrency. Every N entries or
 * M minutes a checkpoint is signed (JWS, ES256) so a rewritten chain cannot be
 * passed off as the original.
 */
export class AuditLog {
  readonly #heads = new Map<string, { seq: number; hash: string; lastCheckpointSeq: number; lastCheckpointAt: number }>();
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly client: ClickHouseClient,
    private readonly db: string,
    private readonly rows: { write(table: string, row: unknown): void; flush(): Promise<void> },
    private readonly signer: Signer,
    private readonly options: { checkpointEvery: number; checkpointMinutes: number },
    private readonly log: Logger,
  ) {}

  /** Loads each chain's head, so appends continue where the last run stopped. */
  async init(): Promise<void> {
    const rs = await this.client.query({
      // Aliases must not reuse column names: ClickHouse would resolve seq inside argMax to max(seq).
      query: `SELECT tenant, max(seq) AS head_seq, argMax(hash, seq) AS head_hash FROM ${this.db}.audit_log GROUP BY tenant`,
      format: 'JSONEachRow',
    });
    const cp = await this.client.query({ query: `SELECT tenant, max(seq) AS last_seq FROM ${this.db}.audit_checkpoints GROUP BY tenant`, format: 'JSONEachRow' });
    const checkpoints = new Map((await cp.json<{ tenant: string; last_seq: string }>()).map((r) => [r.tenant, Number(r.last_seq)]));
    for (const r of await rs.json<{ tenant: string; head_seq: string; head_hash: string }>()) {
      this.#heads.set(r.tenant, { seq: Number(r.head_seq), hash: r.head_hash, lastCheckpointSeq: checkpoints.get(r.tenant) ?? 0, lastCheckpointAt: Date.now() });
    }
  }

  append(input: AuditInput): Promise<AuditEntry> {
    const tenant = input.tenant || 'system';
    const run = (this.#queues.get(tenant) ?? Promise.resolve()).then(() => this.#append(tenant, input));
    this.#queues.set(tenant, run.catch(() => undefined));
    return run;
  }

  async #append(tenant: string, input: AuditInput): Promise<AuditEntry> {
    const head = this.#heads.get(tenant) ?? { seq: 0, hash: GENESIS, lastCheckpointSeq: 0, lastCheckpointAt: Date.now() };
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
    this.rows.write('audit_log', entry);
    head.seq = entry.seq;
    head.hash = entry.hash;
    this.#heads.set(tenant, head);
    if (head.seq - head.lastCheckpointSeq >= this.options.checkpointEvery || Date.now() - head.lastCheckpointAt >= this.options.checkpointMinutes * 60_000) {
      await this.#checkpoint(tenant, head);
    }
    return entry;
  }

  async #checkpoint(tenant: string, head: { seq: number; hash: string; lastCheckpointSeq: number; lastCheckpointAt: number }): Promise<void> {
    const ts = Date.now();
    const jws = await this.signer.sign({ tenant, seq: head.seq, hash: head.hash, ts });
    this.rows.write('audit_checkpoints', { tenant, seq: head.seq, hash: head.hash, ts, jws });
    head.lastCheckpointSeq = head.seq;
    head.lastCheckpointAt = ts;
  }

  /** Signs a checkpoint now for every chain with entries after its last one (shutdown, tests). */
  async checkpointAll(): Promise<void> {
    for (const [tenant, head] of this.#heads) if (head.seq > head.lastCheckpointSeq) await this.#checkpoint(tenant, head);
  }

  /**
   * Walks a tenant's chain and names the first entry that was altered,
   * deleted or inserted, and any checkpoint that no longer matches.
   */
  async verify(tenant: string): Promise<{ ok: boolean; entries: number; checkpoints: number; problem?: ChainProblem }> {
    await this.rows.flush();
    let prev = GENESIS;
    let expected = 1;
    let entries = 0;
    const PAGE = 50_000;
    const hashes = new Map<number, string>();
    for (let from = 0; ; from += PAGE) {
      const rs = await this.client.query({
        query: `SELECT tenant, seq, toUnixTimestamp64Milli(ts) AS ts, actor, action, target, subject, result, source_ip, details, prev_hash, hash
                FROM ${this.db}.audit_log WHERE tenant = {t:String} ORDER BY seq, hash LIMIT {limit:UInt32} OFFSET {offset:UInt64}`,
        query_params: { t: tenant, limit: PAGE, offset: from },
        format: 'JSONEachRow',
      });
      const page = await rs.json<AuditEntry & { seq: string; ts: string }>();
      for (const raw of page) {
        const e = { ...raw, seq: Number(raw.seq), ts: Number(raw.ts) };
        entries++;
        const { hash, ...body } = e;
        if (e.seq < expected) return { ok: false, entries, checkpoints: 0, problem: { seq: e.seq, kind: 'inserted', detail: `a second entry claims seq ${e.seq}` } };
        if (e.seq > expected) return { ok: false, entries, checkpoints: 0, problem: { seq: expected, kind: 'deleted', detail: `entries ${expected}..${e.seq - 1} are missing` } };
        if (entryHash(body) !== hash) return { ok: false, entries, checkpoints: 0, problem: { seq: e.seq, kind: 'altered', detail: 'its content does not match its hash' } };
        if (e.prev_hash !== prev) return { ok: false, entries, checkpoints: 0, problem: { seq: e.seq, kind: 'inserted', detail: 'it does not chain to the entry before it' } };
        prev = hash;
        hashes.set(e.seq, hash);
        expected++;
      }
      if (page.length < PAGE) break;
    }
    const keys = createLocalJWKSet({ keys: [this.signer.publicJwk] });
    const cps = await (await this.client.query({ query: `SELECT seq, hash, jws FROM ${this.db}.audit_checkpoints WHERE tenant = {t:String} ORDER BY seq`, query_params: { t: tenant }, format: 'JSONEachRow' })).json<{ seq: string; hash: string; jws: string }>();
    for (const c of cps) {
      const seq = Number(c.seq);
      try {
        const { payload } = await compactVerify(c.jws, keys);
        const signed = JSON.parse(new TextDecoder().decode(payload)) as { tenant: string; seq: number; hash: string };
        if (signed.tenant !== tenant || signed.seq !== seq || signed.hash !== c.hash) throw new Error('checkpoint row differs from what was signed');
      } catch (err) {
        return { ok: false, entries, checkpoints: cps.length, problem: { seq, kind: 'checkpoint', detail: `checkpoint signature invalid: ${(err as Error).message}` } };
      }
      if (hashes.has(seq) && hashes.get(seq) !== c.hash) return { ok: false, entries, checkpoints: cps.length, problem: { seq, kind: 'altered', detail: 'the chain was rewritten: it no longer matches the signed checkpoint' } };
    }
    this.log.debug({ tenant, entries, checkpoints: cps.length }, 'audit chain verified');
    return { ok: true, entries, checkpoints: cps.length };
  }
}
