import type { types as ms } from 'mediasoup';
import type { ClientStatsReport, Peer, RefusedJoin, Room, Sfu, WorkerSlot } from '../media/index.js';

/** Callbacks for what happens in the media plane; every one is optional. */
export interface MediaPlaneHandlers {
  roomCreated?(room: Room): void;
  roomClosed?(room: Room, reason: string): void;
  peerJoined?(room: Room, peer: Peer): void;
  peerLeft?(room: Room, peer: Peer, reason: string): void;
  transportCreated?(room: Room, peer: Peer, transport: ms.WebRtcTransport | ms.PlainTransport): void;
  iceRestarted?(room: Room, peer: Peer, transport: ms.WebRtcTransport): void;
  producerCreated?(room: Room, peer: Peer, producer: ms.Producer): void;
  consumerCreated?(room: Room, peer: Peer, consumer: ms.Consumer): void;
  clientStats?(room: Room, peer: Peer, report: ClientStatsReport): void;
  mediaStarted?(room: Room, peer: Peer, kind: 'audio' | 'video', at: number): void;
  joinRefused?(join: RefusedJoin): void;
  workerDied?(slot: WorkerSlot, error: Error): void;
}

/**
 * Subscribes to the media plane's observers (SFU → rooms → peers → tracks) and
 * forwards to the handlers. Only observers are used: nothing here can change
 * or keep alive a room, a peer or a track.
 */
export function watchMediaPlane(sfu: Sfu, handlers: MediaPlaneHandlers): () => void {
  let active = true;
  const onRoom = (room: Room) => {
    if (!active) return;
    handlers.roomCreated?.(room);
    room.observer.on('newpeer', (peer) => {
      // A participant of another node (a room that spans nodes): its events and stats are written by its own node.
      if (!active || peer.remote) return;
      handlers.peerJoined?.(room, peer);
      peer.observer.on('newtransport', (t) => active && handlers.transportCreated?.(room, peer, t));
      peer.observer.on('icerestart', (t) => active && handlers.iceRestarted?.(room, peer, t));
      peer.observer.on('newproducer', (p) => active && handlers.producerCreated?.(room, peer, p));
      peer.observer.on('newconsumer', (c) => active && handlers.consumerCreated?.(room, peer, c));
      peer.observer.on('clientstats', (r) => active && handlers.clientStats?.(room, peer, r));
      peer.observer.on('mediastarted', (kind, at) => active && handlers.mediaStarted?.(room, peer, kind, at));
    });
    room.observer.on('peerleft', (peer, reason) => active && !peer.remote && handlers.peerLeft?.(room, peer, reason));
    room.observer.once('close', (reason) => active && handlers.roomClosed?.(room, reason));
  };
  const onWorkerDied = (slot: WorkerSlot, error: Error) => active && handlers.workerDied?.(slot, error);
  const onJoinRefused = (join: RefusedJoin) => active && handlers.joinRefused?.(join);
  sfu.observer.on('newroom', onRoom);
  sfu.observer.on('joinrefused', onJoinRefused);
  sfu.pool.observer.on('workerdied', onWorkerDied);
  return () => {
    active = false;
    sfu.observer.off('newroom', onRoom);
    sfu.observer.off('joinrefused', onJoinRefused);
    sfu.pool.observer.off('workerdied', onWorkerDied);
  };
}

/** Runs async tasks with at most `limit` in flight. */
export async function runLimited(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
}
