import type { types as ms } from 'mediasoup';
import type { Peer, Room, Sfu } from '../media/index.js';
import type { ClickHouseWriter } from './ClickHouseWriter.js';
import type { CallKeys } from './rows.js';
import { watchMediaPlane } from './watchMediaPlane.js';

/** Event names stored in `call_events.event`. */
export type CallEventName =
  | 'room.created'
  | 'room.closed'
  | 'peer.joined'
  | 'peer.left'
  | 'transport.created'
  | 'transport.connected'
  | 'transport.failed'
  | 'transport.closed'
  | 'ice.state'
  | 'ice.restart'
  | 'producer.created'
  | 'producer.closed'
  | 'producer.paused'
  | 'producer.resumed'
  | 'producer.score'
  | 'consumer.created'
  | 'consumer.closed'
  | 'consumer.paused'
  | 'consumer.resumed'
  | 'consumer.score'
  | 'consumer.layers'
  | 'worker.died'
  | 'recording.started'
  | 'recording.stopped'
  | 'recording.failed'
  | 'recording.consent_given'
  | 'recording.consent_refused'
  | 'quality.issue'
  | 'quality.resolved';

/**
 * Turns media-plane lifecycle into `call_events` rows, and records each
 * participant's identity once in `participants`, the only table that holds it
 * in clear.
 */
export class CallEventRecorder {
  #unwatch?: () => void;
  constructor(
    private readonly sfu: Sfu,
    private readonly writer: ClickHouseWriter,
    private readonly keys: CallKeys,
  ) {}

  start(): void {
    this.#unwatch = watchMediaPlane(this.sfu, {
      roomCreated: (room) =>
        this.record(room, undefined, 'room.created', room.id, '', { worker: String(room.slot.index) }),
      roomClosed: (room, reason) =>
        this.record(room, undefined, 'room.closed', room.id, reason, {
          duration_ms: String(Date.now() - room.createdAt),
        }),
      peerJoined: (room, peer) => {
        const now = Date.now();
        this.writer.write('participants', {
          tenant: room.tenant,
          participant: this.keys.participant(peer),
          identity: peer.identity,
          display_name: peer.displayName,
          first_seen: now,
          updated_at: now,
        });
        this.record(room, peer, 'peer.joined', peer.id, '', { grants: [...peer.claims.grants].join(',') });
      },
      peerLeft: (room, peer, reason) =>
        this.record(room, peer, 'peer.left', peer.id, reason, { duration_ms: String(Date.now() - peer.joinedAt) }),
      transportCreated: (room, peer, t) => this.#watchTransport(room, peer, t),
      iceRestarted: (room, peer, t) => this.record(room, peer, 'ice.restart', t.id),
      producerCreated: (room, peer, p) => this.#watchProducer(room, peer, p),
      consumerCreated: (room, peer, c) => this.#watchConsumer(room, peer, c),
      workerDied: (slot, error) =>
        this.writer.write('call_events', {
          ts: Date.now(),
          tenant: '',
          room: '',
          call_id: '',
          peer_id: '',
          participant: '',
          node: this.keys.node,
          event: 'worker.died',
          object_id: String(slot.worker.pid),
          reason: error.message.slice(0, 200),
          attrs: { worker: String(slot.index) },
        }),
    });
  }

  stop(): void {
    this.#unwatch?.();
  }

  /** Writes one event row; also used by other capabilities (e.g. recording). */
  record(
    room: Room,
    peer: Peer | undefined,
    event: CallEventName,
    objectId: string,
    reason = '',
    attrs: Record<string, string> = {},
  ): void {
    this.writer.write('call_events', {
      ts: Date.now(),
      ...this.keys.of(room, peer),
      event,
      object_id: objectId,
      reason,
      attrs,
    });
  }

  #watchTransport(room: Room, peer: Peer, t: ms.WebRtcTransport | ms.PlainTransport): void {
    const direction = String(t.appData.direction ?? 'plain');
    this.record(room, peer, 'transport.created', t.id, '', { direction });
    (t.observer as ms.TransportObserver).once('close', () => this.record(room, peer, 'transport.closed', t.id));
    if (!('iceState' in t)) return;
    const webrtc = t as ms.WebRtcTransport;
    webrtc.observer.on('icestatechange', (state) => this.record(room, peer, 'ice.state', t.id, '', { state }));
    webrtc.observer.on('dtlsstatechange', (state) => {
      if (state === 'connected')
        this.record(room, peer, 'transport.connected', t.id, '', { protocol: webrtc.iceSelectedTuple?.protocol ?? '' });
      else if (state === 'failed') this.record(room, peer, 'transport.failed', t.id, 'dtls-failed');
    });
  }

  #watchProducer(room: Room, peer: Peer, p: ms.Producer): void {
    const codec = p.rtpParameters.codecs[0]?.mimeType ?? '';
    this.record(room, peer, 'producer.created', p.id, '', {
      kind: p.kind,
      codec,
      source: String(p.appData.source ?? ''),
      ...servedBy(room, peer),
    });
    p.observer.once('close', () => this.record(room, peer, 'producer.closed', p.id));
    p.observer.on('pause', () => this.record(room, peer, 'producer.paused', p.id));
    p.observer.on('resume', () => this.record(room, peer, 'producer.resumed', p.id));
    p.observer.on('score', (scores) =>
      this.record(room, peer, 'producer.score', p.id, '', { score: scores.map((s) => s.score).join(',') }),
    );
  }

  #watchConsumer(room: Room, peer: Peer, c: ms.Consumer): void {
    this.record(room, peer, 'consumer.created', c.id, '', {
      kind: c.kind,
      producer_id: c.producerId,
      type: c.type,
      ...servedBy(room, peer),
    });
    c.observer.once('close', () => this.record(room, peer, 'consumer.closed', c.id));
    c.observer.on('pause', () => this.record(room, peer, 'consumer.paused', c.id));
    c.observer.on('resume', () => this.record(room, peer, 'consumer.resumed', c.id));
    c.observer.on('score', (s) =>
      this.record(room, peer, 'consumer.score', c.id, '', {
        score: String(s.score),
        producer_score: String(s.producerScore),
      }),
    );
    c.observer.on('layerschange', (l) =>
      this.record(room, peer, 'consumer.layers', c.id, '', {
        spatial: String(l?.spatialLayer ?? -1),
        temporal: String(l?.temporalLayer ?? -1),
      }),
    );
  }
}

/**
 * Where a participant's tracks are: the worker (its index on the node) and the router. A room beyond one worker's
 * consumer budget spans several (Room.routerFor); without this, which worker carries what is in-process state only.
 */
const servedBy = (room: Room, peer: Peer) => ({
  worker: String(room.slotOf(peer).index),
  router: room.routerOf(peer).id,
});
