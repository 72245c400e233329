import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { ClickHouseClient } from '@clickhouse/client';
import { sha256File } from '../files.js';
import type { CatalogRow, ObjectStore, RecordingCatalog } from '../recording/index.js';
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
  join_funnel: { column: 'participant', erase: 'delete' },
  call_quality_agg: { column: 'participant', erase: 'delete', readFrom: 'call_summary' },
  access_log: { column: 'subject', erase: 'delete' },
  recordings: { column: 'participants', array: true, erase: 'delete', final: true },
  audit_log: {
    column: 'subject',
    erase: 'keep',
    why:
      'audit trail kept under GDPR art. 17(3)(b) (legal obligation, accountability), unaltered so its hash chain ' +
      "still verifies; it holds only the pseudonym, and the person's salt is destroyed, so it can no longer be " +
      'linked to them',
  },
  dsar_requests: {
    column: 'subject',
    erase: 'keep',
    why:
      'record of the request itself, kept as proof it was answered (art. 5(2)); it holds only the pseudonym, which ' +
      'the destroyed salt no longer links to the person',
  },
};

/** Column names that carry an identity or a pseudonym anywhere in the schema. */
export const IDENTITY_COLUMN_NAMES = ['participant', 'participants', 'identity', 'subject'];

export async function identityColumns(
  client: ClickHouseClient,
  db: string,
): Promise<Array<{ table: string; column: string }>> {
  const rs = await client.query({
    query: `SELECT table, name AS column
            FROM system.columns
            WHERE database = {db:String}
              AND name IN ({names:Array(String)})
              AND table NOT IN (
                SELECT name FROM system.tables
                WHERE database = {db:String} AND engine IN ('View', 'MaterializedView')
              )`,
    query_params: { db, names: IDENTITY_COLUMN_NAMES },
    format: 'JSONEachRow',
  });
  return rs.json();
}

function where(table: string) {
  const t = SUBJECT_TABLES[table]!;
  return t.array
    ? `tenant = {tenant:String} AND has(${t.column}, {p:String})`
    : `tenant = {tenant:String} AND ${t.column} = {p:String}`;
}

export interface DsarContext {
  client: ClickHouseClient;
  db: string;
  store?: ObjectStore;
  /** The recordings catalog (PostgreSQL): what the person appears in; its ClickHouse copy is only a copy. */
  catalog?: RecordingCatalog;
  /** Subject tables whose truth is on PostgreSQL, by name: their rows about the person, read there. */
  controlPlane?: Record<string, (tenant: string, pseudonym: string) => Promise<unknown[]>>;
  flush: () => Promise<void>;
}

const LIVE_STATUSES: CatalogRow['status'][] = ['uploading', 'ready', 'failed', 'deleting'];

/**
 * Rows about one person can name others: a quality issue of theirs lists who was affected (`affected`), a freeze they
 * saw names the publisher (`publisher`). An access export must not disclose those others (GDPR art. 15(4)), so their
 * pseudonyms are replaced by this; and an erasure removes the person's pseudonym from other people's rows.
 */
const ANOTHER_PARTICIPANT = '[another participant]';
/** A pseudonym as the Pseudonymizer writes it: 32 lowercase hex digits, standing alone. */
const PSEUDONYM_TOKEN = /(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])/g;
/** The one table whose rows carry free-form attributes (`attrs`) that may name other participants. */
const MENTIONS_TABLE = 'call_events';

/** The pseudonyms of the people who shared a call with the subject: their call events carry the same call id. */
async function coParticipants(ctx: DsarContext, params: { tenant: string; p: string }): Promise<Set<string>> {
  const rs = await ctx.client.query({
    query: `SELECT DISTINCT participant FROM ${ctx.db}.${MENTIONS_TABLE}
            WHERE tenant = {tenant:String} AND participant NOT IN ('', {p:String})
              AND call_id IN (SELECT call_id FROM ${ctx.db}.${MENTIONS_TABLE} WHERE ${where(MENTIONS_TABLE)})`,
    query_params: params,
    format: 'JSONEachRow',
  });
  return new Set((await rs.json<{ participant: string }>()).map((r) => r.participant));
}

/**
 * Access request: every row about the person (each subject table, streamed to
 * JSON Lines), the recordings they appear in, and the audit entries about them,
 * packed in a tar archive with a manifest of SHA-256s. Returns the archive's digest.
 */
export async function dsarAccess(
  ctx: DsarContext,
  o: { tenant: string; identity: string; pseudonym: string; workDir: string },
): Promise<{ archive: string; sha256: string; manifest: Array<{ file: string; rows?: number; sha256: string }> }> {
  await ctx.flush();
  const id = randomUUID();
  const dir = path.join(o.workDir, id);
  await mkdir(path.join(dir, 'recordings'), { recursive: true });
  const manifest: Array<{ file: string; rows?: number; sha256: string }> = [];
  const others = await coParticipants(ctx, { tenant: o.tenant, p: o.pseudonym });
  const withoutOthers = (line: string) =>
    others.size ? line.replace(PSEUDONYM_TOKEN, (m) => (others.has(m) ? ANOTHER_PARTICIPANT : m)) : line;
  for (const [table, t] of Object.entries(SUBJECT_TABLES)) {
    const file = path.join(dir, `${table}.jsonl`);
    const out = createWriteStream(file);
    let rows = 0;
    const write = async (line: string) => {
      rows++;
      if (!out.write(`${withoutOthers(line)}\n`)) await once(out, 'drain');
    };
    // A table whose truth is on PostgreSQL is read there, not from its ClickHouse copy.
    const fromStore = ctx.controlPlane?.[table];
    if (fromStore) for (const r of await fromStore(o.tenant, o.pseudonym)) await write(JSON.stringify(r));
    else {
      const rs = await ctx.client.query({
        query: `SELECT * FROM ${ctx.db}.${t.readFrom ?? table} ${t.final ? 'FINAL' : ''} WHERE ${where(table)}`,
        query_params: { tenant: o.tenant, p: o.pseudonym },
        format: 'JSONEachRow',
      });
      for await (const batch of rs.stream()) for (const r of batch as Array<{ text: string }>) await write(r.text);
    }
    out.end();
    await once(out, 'finish');
    manifest.push({ file: `${table}.jsonl`, rows, sha256: await sha256File(file) });
  }
  if (ctx.store && ctx.catalog) {
    for (const r of await ctx.catalog.ofSubject(o.tenant, o.pseudonym, ['ready'])) {
      const name = `recordings/${r.id}${path.extname(r.object_key)}`;
      await pipeline(await ctx.store.read(r.object_key, r.version_id), createWriteStream(path.join(dir, name)));
      manifest.push({ file: name, sha256: await sha256File(path.join(dir, name)) });
    }
  }
  await writeFile(
    path.join(dir, 'manifest.json'),
    JSON.stringify(
      {
        tenant: o.tenant,
        subject: o.identity,
        pseudonym: o.pseudonym,
        generatedAt: new Date().toISOString(),
        others: `other participants named in these rows appear as "${ANOTHER_PARTICIPANT}" (GDPR art. 15(4))`,
        files: manifest,
      },
      null,
      2,
    ),
  );
  const archive = path.join(o.workDir, `dsar-access-${id}.tar`);
  await promisify(execFile)('tar', ['-cf', archive, '-C', dir, '.']);
  await rm(dir, { recursive: true, force: true });
  return { archive, sha256: await sha256File(archive), manifest };
}

export interface ErasureResult {
  subject: string;
  erased: Array<{ table: string; rows: number }>;
  recordingsDeleted: string[];
  /** Object versions removed from the store, catalogued or not (a retried upload can leave several). */
  objectVersionsDeleted: number;
  /** What was removed outside ClickHouse. */
  files: {
    spoolRows: number;
    webhookBodiesRedacted: number;
    exportsDeleted: string[];
    pendingRecordingsDeleted: string[];
  };
  /** The per-subject salt was destroyed: the identity no longer leads to the pseudonym. */
  saltDestroyed: boolean;
  kept: Array<{ what: string; reason: string }>;
  /** Other people's rows that named the subject (a quality issue that affected them): the name replaced, per table. */
  mentionsRedacted: Array<{ table: string; rows: number }>;
}

export interface ErasureContext extends DsarContext {
  /** Every row the telemetry writer still holds (memory, spool): `fn` returns undefined to remove one. */
  rewriteHeld?: (fn: (table: string, row: unknown) => unknown) => Promise<number>;
  /** The webhook outbox: `fn` returns the redacted body of a pending delivery, or undefined to keep it. */
  redactDeliveries?: (fn: (d: { body: string }) => string | undefined) => Promise<number>;
  /** DATA_DIR/exports: archives whose meta names the subject are deleted. */
  exportsDir?: string;
  /** Recordings of the subject still waiting for upload: deleted before they reach the store. Returns their ids. */
  discardPendingRecordings?: () => Promise<string[]>;
  /** Destroys the subject's salt; called last, once everything else is gone. */
  forget: () => Promise<boolean>;
}

const ERASED = '[erased]';

/** Does a row (any table) carry the subject in one of its identity columns? */
function rowIsSubject(row: unknown, values: ReadonlySet<string>): boolean {
  const r = row as Record<string, unknown>;
  return IDENTITY_COLUMN_NAMES.some((c) => {
    const v = r[c];
    return Array.isArray(v) ? v.some((x) => values.has(String(x))) : typeof v === 'string' && values.has(v);
  });
}

/** The JSON body with every string equal to one of `values` replaced, or undefined when none is there. */
function redactJson(body: string, values: ReadonlySet<string>): string | undefined {
  let hit = false;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string' && values.has(v)) {
      hit = true;
      return ERASED;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const out = JSON.stringify(walk(JSON.parse(body)));
  return hit ? out : undefined;
}

/**
 * Erasure request: deletes the person's rows (ClickHouse mutations, waited
 * for), every version of their recordings, the rows still on their way to
 * ClickHouse (spool), their identity in pending webhook bodies (the outbox,
 * vacuumed after), and their access archives; then destroys their salt,
 * so that what is kept (audit trail, records of requests, recordings under a
 * legal hold or a COMPLIANCE lock) can no longer be linked back to them by
 * recomputing the pseudonym. GOVERNANCE locks are bypassed, the request being
 * the legal ground. The result lists what was erased, what was kept, and why.
 */
export async function dsarErase(
  ctx: ErasureContext,
  o: { tenant: string; identity: string; pseudonym: string },
): Promise<ErasureResult> {
  await ctx.flush();
  const result: ErasureResult = {
    subject: o.pseudonym,
    erased: [],
    recordingsDeleted: [],
    objectVersionsDeleted: 0,
    files: { spoolRows: 0, webhookBodiesRedacted: 0, exportsDeleted: [], pendingRecordingsDeleted: [] },
    saltDestroyed: false,
    kept: [],
    mentionsRedacted: [],
  };
  const params = { tenant: o.tenant, p: o.pseudonym };
  // Recordings not uploaded yet first: an upload finishing later would store the person again.
  if (ctx.discardPendingRecordings) result.files.pendingRecordingsDeleted = await ctx.discardPendingRecordings();
  // Recordings first: a kept recording keeps its catalog row (and its pseudonym) with it.
  const keptIds: string[] = [];
  const catalog = ctx.catalog;
  for (const found of catalog ? await catalog.ofSubject(o.tenant, o.pseudonym, LIVE_STATUSES) : []) {
    // Claimed in a transaction on the row: a legal hold set meanwhile, on any node, keeps the recording.
    const { row: r, refusal } = await catalog!.claimDeletion(o.tenant, found.id, ['uploading', 'ready', 'failed']);
    if (!r || refusal === 'missing' || refusal === 'deleted') continue;
    if (refusal) {
      keptIds.push(r.id);
      result.kept.push({
        what: `recording ${r.id}`,
        reason:
          refusal === 'legal-hold'
            ? 'under legal hold (GDPR art. 17(3)(e), legal claims)'
            : 'being deleted by another request at the same time; a new erasure request completes it',
      });
      continue;
    }
    if (ctx.store && r.object_key) {
      // Every version under the key, not only the catalogued one: an upload retried after a failure leaves others.
      let locked = false;
      try {
        const versions = new Set([
          ...(await ctx.store.versions(r.object_key)),
          ...(r.version_id ? [r.version_id] : []),
        ]);
        for (const v of versions) {
          try {
            await ctx.store.remove(r.object_key, v, { bypassGovernance: true });
            result.objectVersionsDeleted++;
          } catch (err) {
            const code = (err as { code?: string }).code;
            if (code === 'NoSuchVersion' || code === 'NoSuchKey') continue;
            if (!(err instanceof ObjectLockedError)) throw err;
            locked = true;
          }
        }
      } catch (err) {
        await catalog!.releaseClaim(r);
        throw err;
      }
      if (locked) {
        await catalog!.releaseClaim(r);
        keptIds.push(r.id);
        result.kept.push({
          what: `recording ${r.id}`,
          reason: `locked in COMPLIANCE mode until ${r.retain_until} (legal retention obligation, art. 17(3)(b))`,
        });
        continue;
      }
    }
    await catalog!.finishDeletion(r, 'erasure-request', { forget: true });
    result.recordingsDeleted.push(r.id);
  }
  await ctx.flush();
  // Display names are in the participants rows about to be deleted; pending webhook bodies carry them too.
  const names = (
    await (
      await ctx.client.query({
        query: `SELECT DISTINCT display_name
                FROM ${ctx.db}.participants
                WHERE ${where('participants')} AND display_name != ''`,
        query_params: params,
        format: 'JSONEachRow',
      })
    ).json<{ display_name: string }>()
  ).map((r) => r.display_name);
  const subject = new Set([o.identity, o.pseudonym]);
  // Rows still on their way are removed before the mutations, so none lands after them.
  if (ctx.rewriteHeld)
    result.files.spoolRows = await ctx.rewriteHeld((table, row) =>
      SUBJECT_TABLES[table]?.erase !== 'keep' &&
      rowIsSubject(row, subject) &&
      !(table === 'recordings' && keptIds.includes((row as CatalogRow).id))
        ? undefined
        : table === MENTIONS_TABLE
          ? withoutMention(row, o.pseudonym)
          : row,
    );
  for (const [table, t] of Object.entries(SUBJECT_TABLES)) {
    // A kept recording keeps its catalog row.
    const filter = `${where(table)}${table === 'recordings' ? ' AND id NOT IN {kept:Array(String)}' : ''}`;
    const query_params = { ...params, kept: keptIds };
    const n = Number(
      (
        await (
          await ctx.client.query({
            query: `SELECT count() AS c FROM ${ctx.db}.${table} WHERE ${filter}`,
            query_params,
            format: 'JSONEachRow',
          })
        ).json<{ c: string }>()
      )[0]!.c,
    );
    if (t.erase === 'keep') {
      if (n) result.kept.push({ what: `${n} row(s) in ${table}`, reason: t.why! });
      continue;
    }
    await ctx.client.command({
      query: `ALTER TABLE ${ctx.db}.${table} DELETE WHERE ${filter}`,
      query_params,
      clickhouse_settings: { mutations_sync: '2' },
    });
    result.erased.push({ table, rows: n });
  }
  result.mentionsRedacted.push({ table: MENTIONS_TABLE, rows: await eraseMentions(ctx, params) });
  const redact = new Set([...subject, ...names]);
  if (ctx.redactDeliveries)
    result.files.webhookBodiesRedacted = await ctx.redactDeliveries((d) =>
      d.body.includes(o.identity) || d.body.includes(o.pseudonym) ? redactJson(d.body, redact) : undefined,
    );
  if (ctx.exportsDir) result.files.exportsDeleted = await deleteSubjectExports(ctx.exportsDir, o.tenant, o.pseudonym);
  result.saltDestroyed = await ctx.forget();
  return result;
}

/** A held row of someone else's with the subject's pseudonym replaced in its attributes (the row itself unchanged). */
function withoutMention(row: unknown, pseudonym: string): unknown {
  const attrs = (row as { attrs?: Record<string, string> }).attrs;
  if (!attrs || !Object.values(attrs).some((v) => v.includes(pseudonym))) return row;
  const scrubbed = Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, v.replaceAll(pseudonym, ERASED)]));
  return { ...(row as object), attrs: scrubbed };
}

/** Replaces the subject's pseudonym in other people's stored rows (a ClickHouse mutation, waited for). */
async function eraseMentions(ctx: DsarContext, params: { tenant: string; p: string }): Promise<number> {
  const filter = `tenant = {tenant:String} AND participant != {p:String}
                  AND arrayExists(v -> position(v, {p:String}) > 0, mapValues(attrs))`;
  const [count] = await (
    await ctx.client.query({
      query: `SELECT count() AS c FROM ${ctx.db}.${MENTIONS_TABLE} WHERE ${filter}`,
      query_params: params,
      format: 'JSONEachRow',
    })
  ).json<{ c: string }>();
  const n = Number(count?.c ?? 0);
  if (n === 0) return 0;
  await ctx.client.command({
    query: `ALTER TABLE ${ctx.db}.${MENTIONS_TABLE}
            UPDATE attrs = mapApply((k, v) -> (k, replaceAll(v, {p:String}, {erased:String})), attrs) WHERE ${filter}`,
    query_params: { ...params, erased: ERASED },
    clickhouse_settings: { mutations_sync: '2' },
  });
  return n;
}

/** Deletes the DSAR access archives made for the subject (their meta names the subject's pseudonym). */
async function deleteSubjectExports(dir: string, tenant: string, pseudonym: string): Promise<string[]> {
  const deleted: string[] = [];
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!f.endsWith('.meta.json')) continue;
    const meta = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as {
      tenant?: string;
      subject?: string;
      ext?: string;
    };
    if (meta.tenant !== tenant || meta.subject !== pseudonym) continue;
    const id = f.slice(0, -'.meta.json'.length);
    await rm(path.join(dir, `${id}.${meta.ext}`), { force: true });
    await rm(path.join(dir, f), { force: true });
    deleted.push(id);
  }
  return deleted;
}
