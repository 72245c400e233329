import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ROOM_ID } from '../auth/index.js';
import { VigieError } from '../errors.js';
import { ObjectLockedError, type CatalogRow } from '../recording/index.js';
import { callIssues } from '../diagnosis/report.js';
import { cursorCodec } from './cursor.js';
import { audited as auditedRoutes } from './audited.js';
import { requireRoom, type Principal } from './principal.js';
import { openapi, parse } from './schema.js';

const idParam = z.object({ id: z.uuid() });
const roomParam = z.object({ room: z.string().regex(ROOM_ID) });
const controlBody = z.object({ action: z.enum(['start', 'stop']) });
const holdBody = z.object({ on: z.boolean() });
/** Where the previous page ended: the last row's start (epoch ms) and id, in the listing's order. */
const listCursor = cursorCodec(z.object({ startedMs: z.number().int().min(0).max(8.64e15), id: z.uuid() }).strict());
const listQuery = z.object({
  room: z.string().regex(ROOM_ID).optional(),
  callId: z.string().max(64).optional(),
  participant: z
    .string()
    .regex(/^[0-9a-f]{32}$/, 'a participant pseudonym')
    .optional(),
  from: z.iso.datetime().optional(),
  to: z.iso.datetime().optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: listCursor.param.optional(),
  includeDeleted: z.enum(['true', 'false']).default('false'),
});
const downloadQuery = z.object({ mode: z.enum(['redirect', 'stream']).default('redirect') });

/** Recording roles: viewer (recordings:read), dpo, admin. */
function requireRecordingRole(p: Principal, role: 'viewer' | 'dpo' | 'admin'): void {
  const has = (s: 'recordings:read' | 'dpo' | 'admin') => p.scopes.has(s);
  const ok =
    role === 'viewer'
      ? has('recordings:read') || has('dpo') || has('admin')
      : role === 'dpo'
        ? has('dpo')
        : has('admin') || has('dpo');
  if (!ok) throw new VigieError('FORBIDDEN', `the ${role} role is required`);
}

const publicRow = (r: CatalogRow) => ({
  id: r.id,
  sessionId: r.session_id,
  room: r.room,
  callId: r.call_id,
  participants: r.participants,
  tracks: r.tracks,
  codecs: r.codecs,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  durationS: r.duration_s,
  sizeBytes: Number(r.size_bytes),
  sha256: r.sha256,
  contentType: r.content_type,
  storageTarget: r.storage_target,
  storageCountry: r.storage_country,
  objectKey: r.object_key,
  versionId: r.version_id,
  retainUntil: r.retain_until,
  lockMode: r.lock_mode,
  legalHold: Boolean(r.legal_hold),
  retentionPolicy: r.retention_policy,
  status: r.status,
  deletedAt: r.deleted_at,
  deletionReason: r.deletion_reason,
});

/**
 * Recording control and retrieval. Every call, allowed or not, writes an
 * access record (who, what, when, from where, result) to `access_log`.
 */
export async function recordingRoutes(app: FastifyInstance): Promise<void> {
  const recording = () => {
    if (!app.recording) throw new VigieError('FORBIDDEN', 'recording is unavailable on this gateway');
    return app.recording;
  };
  // Every call, allowed or not, writes its access record (access_log and the audit chain).
  const audited = auditedRoutes(app);
  /**
   * The call's quality issues that overlap the file, with offsets from its start, so that a reviewer can jump to
   * the moment that was degraded. An issue that began before the file starts at offset 0; one still going on when
   * the file ends has no end offset.
   */
  const qualityTimeline = async (row: CatalogRow) => {
    await app.telemetry?.writer.flush();
    // The catalog's times are ISO 8601 (or epoch ms in an upload's row).
    const fromMs = new Date(row.started_at).getTime();
    const toMs = new Date(row.ended_at).getTime();
    const issues = await callIssues(app.clickhouse.client, app.clickhouse.database, row.tenant, row.call_id, {
      fromMs,
      toMs,
    });
    return issues.map((i) => ({
      issueId: i.issueId,
      issue: i.issue,
      direction: i.direction,
      kind: i.kind,
      participant: i.participant,
      startOffsetMs: Math.max(0, i.startedMs - fromMs),
      endOffsetMs: i.endedMs === null || i.endedMs > toMs ? null : i.endedMs - fromMs,
      startedAt: new Date(i.startedMs).toISOString(),
      endedAt: i.endedMs === null ? null : new Date(i.endedMs).toISOString(),
      evidence: i.evidence,
    }));
  };
  const find = (tenant: string, id: string): Promise<CatalogRow> => recording().catalog.require(tenant, id);

  app.post(
    '/v1/rooms/:room/recording',
    {
      // Before the access record: the owner of the room records the call, once.
      preHandler: app.forwardRoomCall,
      schema: {
        tags: ['recordings'],
        summary: "Start or stop a room's recording (admin, or a token with the record grant)",
        params: openapi(roomParam),
        body: openapi(controlBody),
      },
    },
    audited('recording.control', async (req, _reply, p, target) => {
      const { room } = parse(roomParam, req.params);
      const { action } = parse(controlBody, req.body);
      target(`room:${room}`);
      if (!(p.scopes.has('admin') || p.canRecord))
        throw new VigieError('FORBIDDEN', 'the admin scope or the record grant is required');
      requireRoom(p, room);
      const live = app.sfu.getRoom(p.tenant, room);
      if (!live) throw new VigieError('NOT_FOUND', 'no live call in this room');
      return action === 'start'
        ? recording().service.start(live, p.actor)
        : recording().service.stop(live, 'stopped-by-api');
    }),
  );

  app.get(
    '/v1/recordings',
    {
      schema: {
        tags: ['recordings'],
        summary: 'List and search recordings (room, call, participant, date range), paginated',
        querystring: openapi(listQuery),
      },
    },
    audited('recordings.list', async (req, _reply, p, target) => {
      requireRecordingRole(p, 'viewer');
      const q = parse(listQuery, req.query);
      target(JSON.stringify({ room: q.room, callId: q.callId, participant: q.participant }));
      // A room-scoped token sees its room only, whatever the query asks.
      if (p.room && q.room && q.room !== p.room) return { recordings: [], nextCursor: null };
      const rows = await recording().catalog.list({
        tenant: p.tenant,
        room: p.room ?? q.room,
        callId: q.callId,
        participant: q.participant,
        from: q.from,
        to: q.to,
        includeDeleted: q.includeDeleted === 'true',
        after: q.cursor,
        limit: q.limit,
      });
      const last = rows.at(-1);
      return {
        recordings: rows.map(publicRow),
        nextCursor:
          rows.length === q.limit && last
            ? listCursor.encode({ startedMs: Date.parse(String(last.started_at)), id: last.id })
            : null,
      };
    }),
  );

  app.get(
    '/v1/recordings/:id',
    { schema: { tags: ['recordings'], summary: "One recording's metadata", params: openapi(idParam) } },
    audited('recording.read', async (req, _reply, p, target) => {
      requireRecordingRole(p, 'viewer');
      const { id } = parse(idParam, req.params);
      target(`recording:${id}`);
      const row = await find(p.tenant, id);
      requireRoom(p, row.room);
      // The catalog is the control plane's and answers without ClickHouse; the quality timeline is telemetry's, and
      // an outage of it leaves the timeline out (null) rather than the recording unreadable.
      const qualityIssues = await qualityTimeline(row).catch((err) => {
        req.log.warn({ err, recording: id }, 'quality timeline unavailable (ClickHouse)');
        return null;
      });
      return { ...publicRow(row), qualityIssues };
    }),
  );

  app.get(
    '/v1/recordings/:id/download',
    {
      schema: {
        tags: ['recordings'],
        summary: 'Download: a short-lived presigned URL (302), or streamed through the gateway with Range support',
        params: openapi(idParam),
        querystring: openapi(downloadQuery),
      },
    },
    audited('recording.download', async (req, reply, p, target) => {
      requireRecordingRole(p, 'viewer');
      const { id } = parse(idParam, req.params);
      const { mode } = parse(downloadQuery, req.query);
      target(`recording:${id}`);
      const row = await find(p.tenant, id);
      requireRoom(p, row.room);
      if (row.status !== 'ready') throw new VigieError('NOT_FOUND', `recording is ${row.status}`);
      const store = recording().store;
      if (mode === 'redirect') {
        const url = await store.presign(row.object_key, row.version_id, app.config.recording.presignTtlSeconds);
        if (url) return reply.header('cache-control', 'no-store').redirect(url, 302);
      }
      const size = Number(row.size_bytes);
      const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
      reply
        .header('accept-ranges', 'bytes')
        .header('content-type', row.content_type)
        .header('cache-control', 'no-store')
        .header(
          'content-disposition',
          `attachment; filename="${row.id}${row.object_key.slice(row.object_key.lastIndexOf('.'))}"`,
        );
      if (m && (m[1] || m[2])) {
        const start = m[1] ? Number(m[1]) : Math.max(0, size - Number(m[2]));
        const end = m[1] && m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
        if (start > end || start >= size) return reply.code(416).header('content-range', `bytes */${size}`).send();
        return reply
          .code(206)
          .header('content-range', `bytes ${start}-${end}/${size}`)
          .header('content-length', end - start + 1)
          .send(await store.read(row.object_key, row.version_id, { start, end }));
      }
      return reply.header('content-length', size).send(await store.read(row.object_key, row.version_id));
    }),
  );

  app.put(
    '/v1/recordings/:id/legal-hold',
    {
      schema: {
        tags: ['recordings'],
        summary: 'Set or clear a legal hold (dpo only)',
        params: openapi(idParam),
        body: openapi(holdBody),
      },
    },
    audited('recording.legal_hold', async (req, _reply, p, target) => {
      requireRecordingRole(p, 'dpo');
      const { id } = parse(idParam, req.params);
      const { on } = parse(holdBody, req.body);
      target(`recording:${id}:${on ? 'on' : 'off'}`);
      const row = await recording().catalog.setLegalHold(
        p.tenant,
        id,
        on,
        (r) => {
          const policy = app.retention.policies().get(r.retention_policy);
          if (on && policy && !policy.categories.recordings.legalHoldAllowed)
            throw new VigieError('FORBIDDEN', `policy ${policy.name} does not allow legal holds`);
        },
        (r) => recording().store.setLegalHold(r.object_key, r.version_id, on),
      );
      req.log.info({ tenant: p.tenant, actor: p.actor, recording: id, legalHold: on }, 'legal hold changed');
      return publicRow(row);
    }),
  );

  app.delete(
    '/v1/recordings/:id',
    {
      schema: {
        tags: ['recordings'],
        summary: 'Delete a recording (refused while it is locked or on legal hold)',
        params: openapi(idParam),
      },
    },
    audited('recording.delete', async (req, reply, p, target) => {
      requireRecordingRole(p, 'admin');
      const { id } = parse(idParam, req.params);
      target(`recording:${id}`);
      const catalog = recording().catalog;
      const { row, refusal } = await catalog.claimDeletion(p.tenant, id, ['ready', 'uploading', 'failed']);
      if (refusal === 'missing' || !row) throw new VigieError('NOT_FOUND', 'no such recording');
      if (refusal === 'deleted') throw new VigieError('NOT_FOUND', 'recording already deleted');
      if (refusal === 'legal-hold')
        throw new VigieError('FORBIDDEN', 'recording cannot be deleted: it is under legal hold');
      if (refusal) throw new VigieError('INVALID_REQUEST', `recording is ${row.status}`);
      try {
        await recording().store.remove(row.object_key, row.version_id);
      } catch (err) {
        await catalog.releaseClaim(row);
        if (err instanceof ObjectLockedError) {
          const why = row.legal_hold
            ? 'it is under legal hold'
            : `it is locked (${row.lock_mode}) until ${row.retain_until}`;
          throw new VigieError('FORBIDDEN', `recording cannot be deleted: ${why}`);
        }
        throw err;
      }
      await catalog.finishDeletion(row, `deleted-by:${p.actor}`, { forget: false });
      app.webhooks.publish(p.tenant, 'recording.deleted', {
        recordingId: id,
        room: row.room,
        callId: row.call_id,
        by: p.actor,
      });
      return reply.code(204).send();
    }),
  );
}
