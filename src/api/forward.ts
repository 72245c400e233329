/**
 * REST calls on a room whose call another node holds (the room directory's
 * placement) are sent to that node, and its answer is returned unchanged: the
 * caller may reach any node, and the live state (participants, mutes,
 * recording) is only on the owner.
 *
 * The call is sent as it came: method, path, body and the caller's own
 * credential (`x-api-key` or `Authorization`). API keys and the token secret
 * are shared through PostgreSQL, so the owner authorizes the caller exactly as
 * this node would, and no credential of the node's own is ever added: a hop
 * grants nothing. The owner alone acts, audits and answers.
 *
 * In a room that spans nodes (src/cascade), a call naming a participant that
 * stands in here for another node's (remove, mute, unmute) is sent to the
 * node that serves that participant, where its media and its ban are.
 *
 * The hop is marked with `x-vigie-forwarded`: the sending node's id, the
 * caller's address (for the owner's access records) and an HMAC of both and of
 * the request line under a secret the nodes share. The owner never forwards a
 * marked call again (loop guard: nodes that share one public URL, or a room
 * that moved meanwhile, answer 503 rather than bounce). An unmarked or forged
 * header is ignored: it is then an ordinary call.
 *
 * Decorates `forwardRoomCall`, a preHandler for routes with a `:room`
 * parameter that act on the room's live call.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ROOM_ID } from '../auth/index.js';
import { VigieError } from '../errors.js';
import { sharedSecret } from '../store/index.js';
import { authenticate } from './principal.js';

export const FORWARDED_HEADER = 'x-vigie-forwarded';

declare module 'fastify' {
  interface FastifyInstance {
    forwardRoomCall: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  }
}

/** Headers of the owner's answer that the caller needs besides the body. */
const ANSWER_HEADERS = ['content-type', 'retry-after', 'location', 'cache-control'];

export default fp(
  async (app: FastifyInstance) => {
    const key = await sharedSecret(app.db, 'node-forward.secret', app.config.dataDir);
    const sign = (node: string, ip: string, req: FastifyRequest) =>
      createHmac('sha256', key).update(`${node}\n${ip}\n${req.method}\n${req.url}`).digest('base64url');
    /** Calls that arrived through another node of the cluster: verified once, in onRequest. */
    const forwarded = new WeakSet<FastifyRequest>();

    app.addHook('onRequest', async (req) => {
      const header = req.headers[FORWARDED_HEADER];
      if (typeof header !== 'string') return;
      const [node = '', ip = '', mac = ''] = header.split(' ');
      const expected = Buffer.from(sign(node, ip, req));
      const given = Buffer.from(mac);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return;
      forwarded.add(req);
      // The caller's address, not the forwarding node's: access records, audit entries and the failed-authentication
      // budget name whoever made the call.
      Object.defineProperty(req, 'ip', { value: ip, configurable: true });
    });

    /**
     * The node that acts on the call: for a room open here, the node serving the participant it names when that
     * participant stands in here for another node's (a room that spans nodes); else the room's owner.
     */
    const actingNode = async (req: FastifyRequest, tenant: string, room: string) => {
      const live = app.sfu.getRoom(tenant, room);
      if (!live) {
        const placement = app.rooms.elsewhere(await app.rooms.placement(tenant, room));
        if (!placement) return undefined;
        return { nodeId: placement.nodeId, what: `room ${room}`, relays: false };
      }
      const participantId = (req.params as { participantId?: string }).participantId;
      const remote = participantId ? live.peers.get(participantId)?.remote : undefined;
      if (!remote) return undefined;
      // The owner relays between the nodes that extend its room, so a call may reach a participant's node through
      // it: edge, owner, edge.
      const relays = (await app.rooms.placement(tenant, room))?.nodeId === app.rooms.nodeId;
      return { nodeId: remote.nodeId, what: `participant ${participantId}`, relays };
    };

    app.decorate('forwardRoomCall', async (req: FastifyRequest, reply: FastifyReply) => {
      const room = (req.params as { room?: string }).room;
      // A call that cannot be authenticated, or names no valid room, is answered here by the route itself.
      if (!room || !ROOM_ID.test(room)) return;
      const principal = await authenticate(app, req).catch(() => undefined);
      if (!principal) return;
      const acting = await actingNode(req, principal.tenant, room);
      if (!acting) return;
      // A dead node's rooms are gone with it: the route answers as for a room with no call.
      const owner = (await app.nodes.registry.liveNodes()).find((n) => n.id === acting.nodeId);
      if (!owner) return;
      if (forwarded.has(req) && !acting.relays)
        throw new VigieError(
          'UNAVAILABLE',
          `${acting.what} is on node ${owner.id}, but this call was already forwarded here by another node: ` +
            'the room moved meanwhile, or nodes share one public URL (VIGIE_PUBLIC_URL must name each node); retry',
        );
      const headers: Record<string, string> = {
        [FORWARDED_HEADER]: `${app.rooms.nodeId} ${req.ip} ${sign(app.rooms.nodeId, req.ip, req)}`,
      };
      for (const h of ['x-api-key', 'authorization'])
        if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
      const hasBody = req.body !== undefined && req.body !== null;
      if (hasBody) headers['content-type'] = 'application/json';
      const target = new URL(req.url, owner.publicUrl);
      let answer: Response;
      let body: Buffer;
      try {
        answer = await fetch(target, {
          method: req.method,
          headers,
          body: hasBody ? JSON.stringify(req.body) : undefined,
          redirect: 'manual',
          signal: AbortSignal.timeout(app.config.nodes.forwardTimeoutSeconds * 1000),
        });
        body = Buffer.from(await answer.arrayBuffer());
      } catch (err) {
        // The reason only (a refused connection, a timeout): the request's headers carry the caller's credential.
        req.log.warn(
          { room, owner: owner.id, ownerUrl: owner.publicUrl, reason: (err as Error).message },
          'the node that holds the room did not answer a forwarded call',
        );
        throw new VigieError(
          'UNAVAILABLE',
          `${acting.what} is on node ${owner.id}, which did not answer (${(err as Error).name}); retry shortly`,
        );
      }
      req.log.info(
        { room, owner: owner.id, status: answer.status },
        'call forwarded to the node that holds the room or the participant',
      );
      reply.code(answer.status);
      for (const h of ANSWER_HEADERS) {
        const v = answer.headers.get(h);
        if (v !== null) reply.header(h, v);
      }
      return reply.send(answer.status === 204 ? undefined : body);
    });
  },
  { name: 'vigie-api-forward', dependencies: ['vigie-store', 'vigie-core', 'vigie-nodes'] },
);
