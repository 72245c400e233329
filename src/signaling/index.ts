/**
 * Signaling: the WebSocket at `/ws`.
 *
 * Needs the `sfu`, `tokens` and `config` decorations; offers
 * `signalingSessions`, the live connections by peer id. Each connection is a
 * SignalingSession; see protocol.ts for the messages and their schemas.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import websocket from '@fastify/websocket';
import { SignalingSession, type SessionContext } from './SignalingSession.js';

export { SignalingSession, CLOSE_CODES } from './SignalingSession.js';
export * from './protocol.js';

async function signalingPlugin(app: FastifyInstance): Promise<void> {
  const { maxFrameBytes } = app.config.signaling;
  await app.register(websocket, {
    // Frames above the configured limit get an error response; this hard cap
    // only stops a peer from making the server buffer something huge.
    options: { maxPayload: Math.max(maxFrameBytes * 4, 256 * 1024) },
  });
  const ctx: SessionContext = { sfu: app.sfu, rooms: app.rooms, recording: app.recording?.service, tokens: app.tokens, config: app.config, log: app.log.child({ component: 'signaling' }), sessions: new Map() };
  app.decorate('signalingSessions', ctx.sessions);
  app.get('/ws', { websocket: true }, (socket, req) => {
    new SignalingSession(socket, ctx, ctx.log.child({ conn: req.id }));
  });
}

export default fp(signalingPlugin, { name: 'vigie-signaling', dependencies: ['vigie-core'] });
