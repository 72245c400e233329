/**
 * Media plane: the mediasoup SFU.
 *
 * - WorkerPool: one worker per core, least-loaded placement, replacement on death.
 * - Sfu: rooms by tenant and room id; one router per room until it reaches the consumer budget.
 * - RoomRouter: one of a room's routers (on one worker) and its load; producers are piped between them.
 * - Room / Peer: transports, producers and consumers of a call, with limits.
 *
 * Each class exposes an `observer` (typed EventEmitter) so telemetry and
 * recording can watch the media plane without owning any of it.
 */
export * from './Sfu.js';
export * from './Room.js';
export * from './RoomRouter.js';
export * from './Peer.js';
export * from './WorkerPool.js';
export * from './codecs.js';
export * from './workerBinary.js';
export * from './RoomDirectory.js';
export * from './RoomBans.js';
