import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { callIssues, callJoinFunnel, callParticipants, findCall, verdictFor } from '../diagnosis/report.js';
import { VigieError } from '../errors.js';
import { audited } from './audited.js';
import { requireScope } from './principal.js';
import { openapi, parse } from './schema.js';

const callParam = z.object({ callId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a call id') });
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** What the diagnosis answers (documentation and the server SDK's types; the reply is not reshaped by it). */
const diagnosisView = z.object({
  callId: z.string(),
  room: z.string(),
  startedAt: z.iso.datetime(),
  participants: z.array(
    z.object({
      participant: z.string().describe('pseudonym, as in the telemetry and the recordings'),
      identity: z.string().nullable().describe('null once the participant has been erased'),
      name: z.string().nullable(),
      peerIds: z.array(z.string()),
      joinedAt: z.iso.datetime(),
      leftAt: z.iso.datetime().nullable(),
      joinFunnel: z
        .array(z.record(z.string(), z.unknown()))
        .nullable()
        .describe("one entry per join, the join_funnel table's columns; null where the funnel is not recorded"),
      verdict: z.string().describe('one line in plain English'),
    }),
  ),
  issues: z.array(
    z.object({
      issueId: z.string(),
      issue: z
        .string()
        .describe(
          'the detector (docs/operators.md, "Call diagnosis"): uplink_loss, uplink_congestion, downlink_loss, ' +
            'downlink_congestion, one_way_media, sfu_overload, encoder_limited, video_frozen, turn_relay, ' +
            'ice_restart_failed, uplink_jitter, downlink_jitter, high_rtt; more may come',
        ),
      direction: z.string(),
      kind: z.string(),
      participant: z.string().describe("whose network or client it is (the publisher's for an uplink issue)"),
      name: z.string().nullable(),
      trackId: z.string(),
      startedAt: z.iso.datetime(),
      endedAt: z.iso.datetime().nullable().describe('null while the issue lasts'),
      resolution: z.string().nullable(),
      affected: z.array(z.object({ participant: z.string(), name: z.string().nullable() })),
      evidence: z.record(z.string(), z.union([z.number(), z.string()])),
    }),
  ),
});

/**
 * A call's diagnosis: what went wrong, whose network it was, who suffered, and a verdict per participant. It names
 * participants, so every read is audited (access_log and the audit chain) like a recording's; another tenant's
 * call is not found, exactly as a call that never was.
 */
export async function callRoutes(app: FastifyInstance): Promise<void> {
  const client = app.clickhouse.client;
  const db = app.clickhouse.database;
  app.get(
    '/v1/calls/:callId/diagnosis',
    {
      schema: {
        tags: ['calls'],
        summary:
          "A call's diagnosis: participants, their join funnel, each quality issue (whose, which direction, when, " +
          'who suffered, evidence) and one verdict per participant (rooms:read)',
        params: openapi(callParam),
        response: { 200: openapi(diagnosisView) },
      },
    },
    audited(app)('call.diagnosis', async (req, _reply, p, target) => {
      const { callId } = parse(callParam, req.params);
      target(`call:${callId}`);
      requireScope(p, 'rooms:read');
      // What this node's writer still holds is part of the call (a call in progress is diagnosed up to now).
      await app.telemetry?.writer.flush();
      const call = await findCall(client, db, p.tenant, callId);
      // A room token sees its own room's calls only, and learns nothing of the others.
      if (!call || (p.room !== undefined && p.room !== call.room))
        throw new VigieError('NOT_FOUND', 'no such call for this tenant');
      const [participants, issues, funnel] = await Promise.all([
        callParticipants(client, db, p.tenant, callId),
        callIssues(client, db, p.tenant, callId),
        callJoinFunnel(client, db, p.tenant, callId),
      ]);
      const byPseudonym = new Map(participants.map((x) => [x.participant, x]));
      const nameOf = (pseudonym: string) => byPseudonym.get(pseudonym)?.name ?? `participant ${pseudonym.slice(0, 8)}`;
      return {
        callId,
        room: call.room,
        startedAt: iso(call.startedMs),
        participants: participants.map((x) => ({
          participant: x.participant,
          identity: x.identity,
          name: x.name,
          peerIds: x.peerIds,
          joinedAt: iso(x.joinedMs),
          leftAt: iso(x.leftMs),
          // The join funnel (join_funnel, written by src/telemetry when the deployment records it).
          joinFunnel: funnel ? (funnel.get(x.participant) ?? []) : null,
          verdict: verdictFor(x.participant, issues, nameOf),
        })),
        issues: issues.map((i) => ({
          issueId: i.issueId,
          issue: i.issue,
          direction: i.direction,
          kind: i.kind,
          participant: i.participant,
          name: byPseudonym.get(i.participant)?.name ?? null,
          trackId: i.trackId,
          startedAt: iso(i.startedMs),
          endedAt: iso(i.endedMs),
          resolution: i.resolution,
          affected: i.affected.map((a) => ({ participant: a, name: byPseudonym.get(a)?.name ?? null })),
          evidence: i.evidence,
        })),
      };
    }),
  );
}
