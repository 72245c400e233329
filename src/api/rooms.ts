import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ROOM_ID } from '../auth/index.js';
import { VigieError } from '../errors.js';
import { type RoomPlacement, roomOptionsSchema, type Room } from '../media/index.js';
import { annotateRequest } from '../telemetry/httpTracing.js';
import { authenticate, requireScope } from './principal.js';
import { openapi, parse } from './schema.js';

const roomParam = z.object({ room: z.string().regex(ROOM_ID) });
const participantParam = roomParam.extend({ participantId: z.string().min(1).max(64) });
const createBody = roomOptionsSchema.extend({
  room: z.string().regex(ROOM_ID, 'room must be 1-64 letters, digits, _ or -'),
});
const muteBody = z.object({ kind: z.enum(['audio', 'video']).optional() });
const unbanBody = z.object({ identity: z.string().min(1).max(256) });

/** What the room routes answer (documentation and the server SDK's types; replies are not reshaped by them). */
const roomView = z.object({
  room: z.string(),
  declared: z.boolean().describe('declared through POST /v1/rooms (its options outlive the call)'),
  options: roomOptionsSchema,
  live: z
    .object({ callId: z.string(), startedAt: z.iso.datetime(), participants: z.number().int() })
    .nullable()
    .describe('the call in progress on the node that answers, or null'),
  node: z
    .string()
    .nullable()
    .describe('the node (VIGIE_NODE_ID) whose call the room is in, on any node; null when no call is open'),
});
const participantsView = z.object({
  participants: z.array(
    z.object({
      participantId: z.string(),
      identity: z.string(),
      name: z.string(),
      joinedAt: z.iso.datetime(),
      tracks: z.array(
        z.object({
          trackId: z.string(),
          kind: z.enum(['audio', 'video']),
          source: z.string().nullable(),
          paused: z.boolean(),
        }),
      ),
    }),
  ),
});

/**
 * Options that only the business app (an API key) sets: a moderator cannot turn its room's recording or consent off.
 */
const APP_ONLY_OPTIONS = ['recordingPolicy', 'consentRequired'] as const;

function liveView(room: Room | undefined) {
  if (!room) return null;
  return { callId: room.callId, startedAt: new Date(room.createdAt).toISOString(), participants: room.peers.size };
}

/** Rooms and their participants, always within the caller's tenant: another tenant's room is simply not found. */
export async function roomRoutes(app: FastifyInstance): Promise<void> {
  /** `placement`: where the room's call is when it is not on this node (undefined: look it up). */
  const describe = async (tenant: string, roomId: string, placement?: RoomPlacement | null) => {
    const declared = app.rooms.get(tenant, roomId);
    const live = app.sfu.getRoom(tenant, roomId);
    const found = live ? undefined : placement === undefined ? await app.rooms.placement(tenant, roomId) : placement;
    // A DELETE /v1/rooms answers before the closed call's release lands.
    const placed = app.rooms.elsewhere(found);
    if (!declared && !live && !placed) return undefined;
    return {
      room: roomId,
      declared: Boolean(declared),
      options: live?.options ?? declared?.options ?? roomOptionsSchema.parse({}),
      live: liveView(live),
      node: live ? app.rooms.nodeId : (placed?.nodeId ?? null),
    };
  };
  const findRoom = async (tenant: string, roomId: string) => {
    const d = await describe(tenant, roomId);
    if (!d) throw new VigieError('NOT_FOUND', 'no such room');
    return d;
  };
  const findPeer = (tenant: string, roomId: string, participantId: string) => {
    const room = app.sfu.getRoom(tenant, roomId);
    const peer = room?.peers.get(participantId);
    if (!room || !peer) throw new VigieError('NOT_FOUND', 'no such participant in this room');
    return { room, peer };
  };

  app.post(
    '/v1/rooms',
    {
      schema: {
        tags: ['rooms'],
        summary: 'Create (declare) a room with options',
        body: openapi(createBody),
        response: { 201: openapi(roomView) },
      },
    },
    async (req, reply) => {
      const p = await authenticate(app, req);
      const { room, ...options } = parse(createBody, req.body);
      requireScope(p, 'rooms:write', room);
      annotateRequest(req, { room });
      if (p.room !== undefined) {
        // A moderator keeps what the app decided (or the defaults), and is told when it tries to change it.
        const current = app.rooms.optionsFor(p.tenant, room);
        const given = req.body as Record<string, unknown>;
        for (const k of APP_ONLY_OPTIONS) {
          if (k in given && options[k] !== current[k])
            throw new VigieError('FORBIDDEN', `a moderator token cannot change ${k}; an API key with rooms:write can`);
          Object.assign(options, { [k]: current[k] });
        }
      }
      await app.rooms.declare(p.tenant, room, options);
      req.log.info({ tenant: p.tenant, actor: p.actor, room }, 'room declared');
      return reply.code(201).send(await describe(p.tenant, room));
    },
  );

  app.get(
    '/v1/rooms',
    {
      schema: {
        tags: ['rooms'],
        summary: 'List declared and live rooms',
        response: { 200: openapi(z.object({ rooms: z.array(roomView) })) },
      },
    },
    async (req) => {
      const p = await authenticate(app, req);
      requireScope(p, 'rooms:read');
      const ids = new Set(app.rooms.list(p.tenant).map((r) => r.room));
      for (const r of app.sfu.rooms.values()) if (r.tenant === p.tenant && !r.closed) ids.add(r.id);
      // One query for the rooms whose call is on another node, rather than one per room.
      const placements = await app.rooms.placements(p.tenant);
      for (const id of placements.keys()) ids.add(id);
      const rooms = [];
      for (const id of [...ids].filter((id) => p.room === undefined || id === p.room).sort()) {
        const room = await describe(p.tenant, id, placements.get(id) ?? null);
        if (room) rooms.push(room);
      }
      return { rooms };
    },
  );

  app.get(
    '/v1/rooms/:room',
    {
      preHandler: app.forwardRoomCall,
      schema: {
        tags: ['rooms'],
        summary: 'Get a room',
        params: openapi(roomParam),
        response: { 200: openapi(roomView) },
      },
    },
    async (req) => {
      const p = await authenticate(app, req);
      const { room } = parse(roomParam, req.params);
      requireScope(p, 'rooms:read', room);
      return await findRoom(p.tenant, room);
    },
  );

  app.delete(
    '/v1/rooms/:room',
    {
      preHandler: app.forwardRoomCall,
      schema: {
        tags: ['rooms'],
        summary: 'Close a room: ends its call and removes its declaration',
        params: openapi(roomParam),
      },
    },
    async (req, reply) => {
      const p = await authenticate(app, req);
      const { room } = parse(roomParam, req.params);
      requireScope(p, 'rooms:write', room);
      await findRoom(p.tenant, room);
      app.sfu.getRoom(p.tenant, room)?.close('closed-by-api');
      // A moderator ends the call but cannot forget the declaration: its room would reopen with default (weaker)
      // options.
      if (p.room === undefined) await app.rooms.remove(p.tenant, room);
      req.log.info({ tenant: p.tenant, actor: p.actor, room }, 'room closed through the API');
      return reply.code(204).send();
    },
  );

  app.get(
    '/v1/rooms/:room/participants',
    {
      preHandler: app.forwardRoomCall,
      schema: {
        tags: ['participants'],
        summary: 'List the participants of a live room',
        params: openapi(roomParam),
        response: { 200: openapi(participantsView) },
      },
    },
    async (req) => {
      const p = await authenticate(app, req);
      const { room } = parse(roomParam, req.params);
      requireScope(p, 'rooms:read', room);
      await findRoom(p.tenant, room);
      const live = app.sfu.getRoom(p.tenant, room);
      await app.compliance?.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'participants.list',
        target: `room:${room}`,
        sourceIp: req.ip,
      });
      return {
        participants: [...(live?.peers.values() ?? [])].map((peer) => ({
          participantId: peer.id,
          identity: peer.identity,
          name: peer.displayName,
          joinedAt: new Date(peer.joinedAt).toISOString(),
          tracks: [...peer.producers.values()].map((t) => ({
            trackId: t.id,
            kind: t.kind,
            source: t.appData.source ?? null,
            paused: t.paused,
          })),
        })),
      };
    },
  );

  app.delete(
    '/v1/rooms/:room/participants/:participantId',
    {
      preHandler: app.forwardRoomCall,
      schema: { tags: ['participants'], summary: 'Remove a participant', params: openapi(participantParam) },
    },
    async (req, reply) => {
      const p = await authenticate(app, req);
      const { room, participantId } = parse(participantParam, req.params);
      requireScope(p, 'rooms:write', room);
      const found = findPeer(p.tenant, room, participantId);
      // Banned before the peer goes, so its SDK cannot rejoin in between: until
      // its token (as last refreshed) expires, or a ban lift.
      await app.roomBans.ban(p.tenant, room, found.peer.identity, found.peer.expiresAt);
      found.room.removePeer(found.peer, 'removed');
      await app.compliance?.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'participant.remove',
        target: `room:${room}`,
        subject: app.telemetry?.keys.participant(found.peer),
        sourceIp: req.ip,
      });
      req.log.info({ tenant: p.tenant, actor: p.actor, room, participantId }, 'participant removed through the API');
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/rooms/:room/bans/lift',
    {
      schema: {
        tags: ['participants'],
        summary: 'Let a removed identity join the room again before its token expires',
        params: openapi(roomParam),
        body: openapi(unbanBody),
      },
    },
    async (req) => {
      const p = await authenticate(app, req);
      const { room } = parse(roomParam, req.params);
      const { identity } = parse(unbanBody, req.body);
      requireScope(p, 'rooms:write', room);
      const lifted = await app.roomBans.lift(p.tenant, room, identity);
      await app.compliance?.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'participant.ban-lift',
        target: `room:${room}`,
        subject: await app.telemetry?.keys.pseudonymizer.pseudonym(p.tenant, identity),
        sourceIp: req.ip,
      });
      req.log.info({ tenant: p.tenant, actor: p.actor, room, lifted }, 'ban lifted through the API');
      return { lifted };
    },
  );

  app.post(
    '/v1/rooms/:room/participants/:participantId/mute',
    {
      preHandler: app.forwardRoomCall,
      schema: {
        tags: ['participants'],
        summary: 'Mute a participant remotely (audio, video, or both)',
        params: openapi(participantParam),
        body: openapi(muteBody),
      },
    },
    async (req) => {
      const p = await authenticate(app, req);
      const { room, participantId } = parse(participantParam, req.params);
      const { kind } = parse(muteBody, req.body);
      requireScope(p, 'rooms:write', room);
      const found = findPeer(p.tenant, room, participantId);
      const muted = await found.room.muteProducers(found.peer, kind);
      await app.compliance?.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'participant.mute',
        target: `room:${room}`,
        subject: app.telemetry?.keys.participant(found.peer),
        sourceIp: req.ip,
        details: { kind: kind ?? 'all', tracks: muted.length },
      });
      req.log.info(
        { tenant: p.tenant, actor: p.actor, room, participantId, kind: kind ?? 'all', muted: muted.length },
        'participant muted through the API',
      );
      return { muted };
    },
  );

  app.post(
    '/v1/rooms/:room/participants/:participantId/unmute',
    {
      preHandler: app.forwardRoomCall,
      schema: {
        tags: ['participants'],
        summary: 'Lift a remote mute: the participant may turn the tracks on again',
        params: openapi(participantParam),
        body: openapi(muteBody),
      },
    },
    async (req) => {
      const p = await authenticate(app, req);
      const { room, participantId } = parse(participantParam, req.params);
      const { kind } = parse(muteBody, req.body);
      requireScope(p, 'rooms:write', room);
      const found = findPeer(p.tenant, room, participantId);
      const unmuted = found.room.unmuteProducers(found.peer, kind);
      await app.compliance?.record({
        tenant: p.tenant,
        actor: p.actor,
        action: 'participant.unmute',
        target: `room:${room}`,
        subject: app.telemetry?.keys.participant(found.peer),
        sourceIp: req.ip,
      });
      req.log.info(
        { tenant: p.tenant, actor: p.actor, room, participantId, kind: kind ?? 'all', unmuted: unmuted.length },
        'participant unmuted through the API',
      );
      return { unmuted };
    },
  );
}
