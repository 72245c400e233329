/**
 * Signaling: the WebSocket at `/ws`.
 *
 * Needs the `sfu`, `tokens`, `roomBans`, `config` and `cascade` decorations and WebSocket support; offers
 * `signalingSessions`, the live connections by peer id, and `drainSignaling`,
 * the graceful shutdown that SIGTERM runs (`signalingDraining` tells whether it has begun). Each connection is a
 * SignalingSession; see protocol.ts for the messages and their schemas.
 *
 * One client address holds at most `maxConnectionsPerIp` connections (more are
 * closed with 1013, "try again later"), and a connection that has not joined a
 * room within `joinTimeoutMs` is closed with 1008: sockets cost memory and file
 * descriptors before any token is checked.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { SignalingSession, type SessionContext } from './SignalingSession.js';

export { SignalingSession, CLOSE_CODES } from './SignalingSession.js';
export * from './protocol.js';

async function signalingPlugin(app: FastifyInstance): Promise<void> {
  const { maxConnectionsPerIp, joinTimeoutMs } = app.config.signaling;
  const ctx: SessionContext = {
    sfu: app.sfu,
    rooms: app.rooms,
    recording: app.recording?.service,
    tokens: app.tokens,
    config: app.config,
    log: app.log.child({ component: 'signaling' }),
    sessions: new Map(),
    bans: app.roomBans,
    draining: false,
    registry: app.nodes.registry,
    openRoom: (tenant, room, options) => app.cascade.openRoom(tenant, room, options),
    extendsHere: (tenant, owner) => app.cascade.extendsHere(tenant, owner),
  };
  app.decorate('signalingSessions', ctx.sessions);
  app.decorate('drainSignaling', (deadlineSeconds = app.config.signaling.drainDeadlineSeconds) =>
    drain(ctx, deadlineSeconds, () => leaveRooms(app)),
  );
  app.decorate('signalingDraining', () => ctx.draining);
  const openByIp = new Map<string, number>();
  app.get('/ws', { websocket: true }, (socket, req) => {
    const ip = req.ip;
    const open = (openByIp.get(ip) ?? 0) + 1;
    openByIp.set(ip, open);
    socket.once('close', () => {
      const left = (openByIp.get(ip) ?? 1) - 1;
      if (left > 0) openByIp.set(ip, left);
      else openByIp.delete(ip);
    });
    if (open > maxConnectionsPerIp) {
      ctx.log.warn({ conn: req.id, open }, 'signaling connection refused: too many from one address');
      socket.close(1013, 'too many connections from this address');
      return;
    }
    const session = new SignalingSession(socket, ctx, ctx.log.child({ conn: req.id }));
    const joinTimer = setTimeout(() => {
      if (session.peer) return;
      ctx.log.info({ conn: req.id }, 'signaling connection closed: no join in time');
      socket.close(1008, 'join timeout');
    }, joinTimeoutMs);
    socket.once('close', () => clearTimeout(joinTimer));
  });
}

/**
 * Several nodes: a draining node tells the registry at once (placement skips
 * it) and releases its rooms' placements, so that the first participant who
 * rejoins elsewhere places the room there and the others follow. A failure is
 * logged: the drain goes on, and the heartbeat publishes the flag later.
 */
async function leaveRooms(app: FastifyInstance): Promise<void> {
  try {
    await app.nodes.registry.markDraining();
    const released = await app.rooms.releaseAll();
    app.log.info({ component: 'signaling', released }, 'draining: room placements released');
  } catch (err) {
    app.log.error({ err, component: 'signaling' }, 'draining: room placements not released');
  }
}

/**
 * Graceful drain: joins are sent to other nodes (or refused, UNAVAILABLE, with
 * none) from now on, participants are told the server is going away, and the
 * calls in progress may end by themselves. Resolves when no room has anyone
 * left, or at the deadline, when the remaining participants are closed with
 * 1012 so that their SDK rejoins (another node, another server behind the load
 * balancer, or this one restarted).
 */
async function drain(ctx: SessionContext, deadlineSeconds: number, leaveRooms: () => Promise<void>): Promise<void> {
  ctx.draining = true;
  await leaveRooms();
  const live = () => [...ctx.sfu.rooms.values()].some((room) => !room.closed && room.peers.size > 0);
  ctx.log.info({ deadlineSeconds, participants: ctx.sessions.size }, 'draining: new joins refused');
  for (const session of ctx.sessions.values()) session.announceDrain(deadlineSeconds);
  const deadline = Date.now() + deadlineSeconds * 1000;
  while (live() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const remaining = [...ctx.sessions.values()];
  for (const session of remaining) session.closeForRestart();
  ctx.log.info({ closedAtDeadline: remaining.length }, 'drained');
}

export default fp(signalingPlugin, {
  name: 'vigie-signaling',
  dependencies: ['vigie-core', 'vigie-nodes', 'vigie-cascade', '@fastify/websocket'],
});
