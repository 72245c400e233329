import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { ClickHouseClient } from '@clickhouse/client';
import { sha256File } from '../files.js';
import type { CatalogRow, ObjectStore } from '../recording/index.js';
import { ObjectLockedError } from '../recording/index.js';

/**
 * Every table that holds an identity or a pseudonym, and the column that does.
 * `identityColumns()` reads the live schema; a test fails when a table with
 * such a column is missing here, so a new table cannot be forgotten.
 */
export const SUBJECT_TABLES: Record<
  string,
  {
    column: string;
    array?: boolean;
    erase: 'delete' | 'keep';
    why?: string;
    /** Readable source for access exports, when the table holds aggregate states. */
    readFrom?: string;
    /** A ReplacingMergeTree: read with FINAL, so an access export shows each row's latest version only. */
    final?: boolean;
  }
> = {
  participants: { column: 'participant', erase: 'delete', final: true },
  track_stats: { column: 'participant', erase: 'delete' },
  transport_stats: { column: 'participant', erase: 'delete' },
  client_stats: { column: 'participant', erase: 'delete' },
  call_events: { column: 'participant', erase: 'delete' },
  call_quality_agg: { column: 'participant', erase: 'delete', readFrom: 'call_summary' },
  recordings: { column: 'participants', array: true, erase: 'delete', final: true },
  audit_log: { column: 'subject', erase: 'keep', why: 'audit trail kept under GDPR art. 17(3)(b) (legal obligation, accountability); it holds only the pseudonym, which no longer maps to the person' },
  dsar_requests: { column: 'subject', erase: 'keep', why: 'record of the request itself, kept as proof it was answered (art. 5(2))' },
};

/** Column names that carry an identity or a pseudonym anywhere in the schema. */
export const IDENTITY_COLUMN_NAMES = ['participant', 'participants', 'identity', 'subject'];

export async function identityColumns(client: ClickHouseClient, db: string): Promise<Array<{ table: string; column: string }>> {
  const rs = await client.query({
    query: `SELECT table, name AS column FROM system.columns WHERE database = {db:String} AND name IN ({names:Array(String)}) AND table NOT IN (SELECT name FROM system.tables WHERE database = {db:String} AND engine IN ('View', 'MaterializedView'))`,
    query_params: { db, names: IDENTITY_COLUMN_NAMES },
    format: 'JSONEachRow',
  });
  return rs.json();
}

function where(table: string) {
  const t = SUBJECT_TABLES[table]!;
  return t.array ? `tenant = {tenant:String} AND has(${t.column}, {p:String})` : `tenant = {tenant:String} AND ${t.column} = {p:String}`;
}

export interface DsarContext {
  client: ClickHouseClient;
  db: string;
  store?: ObjectStore;
  flush: () => Promise<void>;
}

/**
 * Access request: every row about the person (each subject table, streamed to
 * JSON Lines), the recordings they appear in, and the audit entries about them,
 * packed in a tar archive with a manifest of SHA-256s. Returns the archive's digest.
 */
export async function dsarAccess(ctx: DsarContext, o: { tenant: string; identity: string; pseudonym: string; workDir: string }): Promise<{ archive: string; sha256: string; manifest: Array<{ file: string; rows?: number; sha256: string }> }> {
  await ctx.flush();
  const id = randomUUID();
  const dir = path.join(o.workDir, id);
  await mkdir(path.join(dir, 'recordings'), { recursive: true });
  const manifest: Array<{ file: string; rows?: number; sha256: string }> = [];
  for (const [table, t] of Object.entries(SUBJECT_TABLES)) {
    const file = path.join(dir, `${table}.jsonl`);
    const out = createWriteStream(file);
    const rs = await ctx.client.query({ query: `SELECT * FROM ${ctx.db}.${t.readFrom ?? table} ${t.final ? 'FINAL' : ''} WHERE ${where(table)}`, query_params: { tenant: o.tenant, p: o.pseudonym }, format: 'JSONEachRow' });
    let rows = 0;
    for await (const batch of rs.stream()) {
      for (const r of batch as Array<{ text: string }>) {
        rows++;
        if (!out.write(`${r.text}\n`)) await once(out, 'drain');
      }
    }
    out.end();
    await once(out, 'finish');
    manifest.push({ file: `${table}.jsonl`, rows, sha256: await sha256File(file) });
  }
  if (ctx.store) {
    const rs = await ctx.client.query({ query: `SELECT * FROM ${ctx.db}.recordings FINAL WHERE ${where('recordings')} AND status = 'ready'`, query_params: { tenant: o.tenant, p: o.pseudonym }, format: 'JSONEachRow' });
    for (const r of await rs.json<CatalogRow>()) {
      const name = `recordings/${r.id}${path.extname(r.object_key)}`;
      await pipeline(await ctx.store.read(r.object_key, r.version_id), createWriteStream(path.join(dir, name)));
      manifest.push({ file: name, sha256: await sha256File(path.join(dir, name)) });
    }
  }
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ tenant: o.tenant, subject: o.identity, pseudonym: o.pseudonym, generatedAt: new Date().toISOString(), files: manifest }, null, 2));
  const archive = path.join(o.workDir, `dsar-access-${id}.tar`);
  await promisify(execFile)('tar', ['-cf', archive, '-C', dir, '.']);
  await rm(dir, { recursive: true, force: true });
  return { archive, sha256: await sha256File(archive), manifest };
}

export interface ErasureResult {
  subject: string;
  erased: Array<{ table: string; rows: number }>;
  recordingsDeleted: string[];
  kept: Array<{ what: string; reason: string }>;
}

/**
 * Erasure request: deletes the person's rows (ClickHouse mutations, waited
 * for) and recordings, except what a legal hold or a COMPLIANCE lock forbids
 * deleting; GOVERNANCE locks are bypassed, the request being the legal ground.
 * The result lists what was erased, what was kept, and why.
 */
export async function dsarErase(ctx: DsarContext & { markRecording: (row: CatalogRow, status: 'deleted', reason: string) => void }, o: { tenant: string; pseudonym: string }): Promise<ErasureResult> {
  await ctx.flush();
  const result: ErasureResult = { subject: o.pseudonym, erased: [], recordingsDeleted: [], kept: [] };
  const params = { tenant: o.tenant, p: o.pseudonym };
  // Recordings first: a kept recording keeps its catalog row (and its pseudonym) with it.
  const keptIds: string[] = [];
  const rs = await ctx.client.query({ query: `SELECT * FROM ${ctx.db}.recordings FINAL WHERE ${where('recordings')} AND status != 'deleted'`, query_params: params, format: 'JSONEachRow' });
  for (const r of await rs.json<CatalogRow>()) {
    if (r.legal_hold) {
      keptIds.push(r.id);
      result.kept.push({ what: `recording ${r.id}`, reason: 'under legal hold (GDPR art. 17(3)(e), legal claims)' });
      continue;
    }
    if (r.status === 'ready' && ctx.store) {
      try {
        await ctx.store.remove(r.object_key, r.version_id, { bypassGovernance: true });
      } catch (err) {
        if (!(err instanceof ObjectLockedError)) throw err;
        keptIds.push(r.id);
        result.kept.push({ what: `recording ${r.id}`, reason: `locked in COMPLIANCE mode until ${r.retain_until} (legal retention obligation, art. 17(3)(b))` });
        continue;
      }
    }
    ctx.markRecording(r, 'deleted', 'erasure-request');
    result.recordingsDeleted.push(r.id);
  }
  await ctx.flush();
  for (const [table, t] of Object.entries(SUBJECT_TABLES)) {
    // A kept recording keeps its catalog row.
    const filter = `${where(table)}${table === 'recordings' ? ' AND id NOT IN {kept:Array(String)}' : ''}`;
    const query_params = { ...params, kept: keptIds };
    const n = Number((await (await ctx.client.query({ query: `SELECT count() AS c FROM ${ctx.db}.${table} WHERE ${filter}`, query_params, format: 'JSONEachRow' })).json<{ c: string }>())[0]!.c);
    if (t.erase === 'keep') {
      if (n) result.kept.push({ what: `${n} row(s) in ${table}`, reason: t.why! });
      continue;
    }
    await ctx.client.command({ query: `ALTER TABLE ${ctx.db}.${table} DELETE WHERE ${filter}`, query_params, clickhouse_settings: { mutations_sync: '2' } });
    result.erased.push({ table, rows: n });
  }
  return result;
}
