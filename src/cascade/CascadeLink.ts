import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import type { Logger } from '../logging.js';
import { Peer, type Room, type TransportSettings } from '../media/index.js';
import type { RecordingService } from '../recording/index.js';

/**
 * What the two nodes of a link say to each other, one JSON object per WebSocket message. Both sides speak the same
 * language; the caller is authenticated, yet every message is still validated (a bug on one node must not crash the
 * other). `rtpParameters` are handed to mediasoup, which validates them itself.
 */
const id = z.string().min(1).max(64);
export const linkMessageSchema = z.discriminatedUnion('t', [
  /** Where this side's pipe transport listens, and its SRTP key. */
  z.object({
    t: z.literal('transport'),
    ip: z.string().min(1).max(64),
    port: z.number().int().min(1).max(65535),
    srtpParameters: z.object({ cryptoSuite: z.string().max(64), keyBase64: z.string().max(256) }),
  }),
  /** This side announced the participants it had when the link opened. */
  z.object({ t: z.literal('ready') }),
  z.object({ t: z.literal('peer'), peerId: id, name: z.string().max(256) }),
  z.object({ t: z.literal('peerLeft'), peerId: id, reason: z.string().max(200) }),
  z.object({
    t: z.literal('producer'),
    peerId: id,
    producerId: id,
    kind: z.enum(['audio', 'video']),
    rtpParameters: z.record(z.string(), z.unknown()),
    paused: z.boolean(),
    source: z.string().max(32),
  }),
  z.object({ t: z.literal('producerClosed'), producerId: id }),
  z.object({ t: z.literal('producerPaused'), producerId: id, paused: z.boolean() }),
  /** Something on this side started (or stopped) receiving one of the other side's tracks: it crosses only then. */
  z.object({ t: z.literal('demand'), producerId: id, wanted: z.boolean() }),
  /**
   * The room's recording started (`active`) or stopped on this side: the other side starts or stops its own, in the
   * same session, so that each node records its own participants of the one call.
   */
  z.object({
    t: z.literal('recording'),
    recordingId: id,
    active: z.boolean(),
    reason: z.string().max(200).optional(),
  }),
  /** The room closed on this side, for this reason: the other side closes what it holds of it. */
  z.object({ t: z.literal('closed'), reason: z.string().max(200) }),
]);
export type LinkMessage = z.infer<typeof linkMessageSchema>;
const LINK_MESSAGE_TYPES: ReadonlySet<string> = new Set(linkMessageSchema.options.map((o) => o.shape.t.value));

export interface CascadeLinkOptions {
  room: Room;
  socket: WebSocket;
  /** The node at the other end. */
  remoteNodeId: string;
  /**
   * `owner`: this node holds the room's placement and relays to the other end everyone it has, participants of
   * other edges included (a star around the owner). `edge`: this node extends the owner's room, relays its own
   * participants only, and closes its room with the link.
   */
  role: 'owner' | 'edge';
  transport: Pick<TransportSettings, 'listenIp' | 'announcedAddress' | 'rtcMinPort' | 'rtcMaxPort'>;
  /** A link silent this long (no message, no pong) is dead. */
  deadAfterMs: number;
  /** This node's recordings, when it records: the room's recording is started and stopped on both sides at once. */
  recording?: Pick<RecordingService, 'observer' | 'recordingId' | 'start' | 'stop'>;
  log: Logger;
}

export interface CascadeLinkObserverEvents {
  /** The other side announced its participants (and this side has its pipe transport). */
  ready: [];
  close: [reason: string];
}

/**
 * One room's link between two nodes: a PipeTransport on each node's first router of the room, with SRTP between
 * them, and a WebSocket over which each side announces its participants and their tracks. Every track of a
 * participant on one side is announced to the other (consumed on this side's pipe transport, produced with the same
 * id on the other's), where a stand-in Peer (`peer.remote`) holds it: the room's participants see and consume it as
 * any other. Its media crosses only while something on the other side receives it (`demand`, from
 * Room.isWanted there): the pipe consumer here stays paused until then, so a track nobody watches on a node costs
 * no bandwidth between the nodes. Telemetry and recording skip the stand-ins: each node writes and records its own
 * participants, under the one call id.
 */
export class CascadeLink {
  readonly observer = new EventEmitter<CascadeLinkObserverEvents>();
  readonly room: Room;
  readonly remoteNodeId: string;
  readonly role: 'owner' | 'edge';
  /** The WebSocket to the other node (announcements, and ping/pong to tell a dead link). */
  readonly socket: WebSocket;
  readonly #opts: CascadeLinkOptions;
  readonly #log: Logger;
  #transport?: ms.PipeTransport;
  /** Incoming messages are applied one at a time, in order, after the pipe transport exists. */
  #queue: Promise<void>;
  /** Participants of the other side, by their id there (which is their id here too). */
  readonly #standIns = new Map<string, Peer>();
  /** This side's participants announced to the other side. */
  readonly #announced = new Set<string>();
  /** Pipe consumers of this side's tracks, by producer id. */
  readonly #sent = new Map<string, ms.Consumer>();
  /** Recording sessions that stopped on either side: a late echo of their start does not begin them again. */
  readonly #endedRecordings = new Set<string>();
  /** Message types of a newer node ignored on this link (each logged once). */
  readonly #unknownTypes = new Set<string>();
  #closed = false;
  #lastSeen = Date.now();
  readonly #heartbeat: NodeJS.Timeout;
  readonly #detach: () => void;

  constructor(opts: CascadeLinkOptions) {
    this.#opts = opts;
    this.room = opts.room;
    this.remoteNodeId = opts.remoteNodeId;
    this.role = opts.role;
    this.socket = opts.socket;
    this.#log = opts.log.child({ tenant: opts.room.tenant, room: opts.room.id, callId: opts.room.callId });
    this.#queue = this.#start();
    this.#queue.catch((err) => this.#fail(err, 'could not open the pipe transport'));
    this.socket.on('message', (raw) => this.#onMessage(raw as Buffer));
    this.socket.on('pong', () => (this.#lastSeen = Date.now()));
    this.socket.on('close', () => this.close('link-closed'));
    this.socket.on('error', (err) => this.#log.warn({ err: err.message }, 'room link error'));
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastSeen > opts.deadAfterMs) {
        this.#log.warn({ remoteNode: this.remoteNodeId }, 'room link silent: closed as dead');
        this.close('link-dead');
      } else if (this.socket.readyState === this.socket.OPEN) this.socket.ping();
    }, opts.deadAfterMs / 3).unref();

    const onPeer = (peer: Peer) => this.#announce(peer);
    // A track of the other side is wanted here, or no longer: the other side pipes it only while it is.
    const onDemand = (producerId: string, wanted: boolean) => {
      if (this.#remoteProducer(producerId)) this.#send({ t: 'demand', producerId, wanted });
    };
    const onLeft = (peer: Peer, reason: string) => this.#onPeerLeft(peer, reason);
    const onClose = (reason: string) => {
      this.#send({ t: 'closed', reason });
      this.close(reason);
    };
    const onRecordingStarted = (room: Room, recordingId: string) => {
      if (room === this.room) this.#send({ t: 'recording', recordingId, active: true });
    };
    const onRecordingStopped = (room: Room, recordingId: string, reason: string) => {
      if (room !== this.room) return;
      this.#endedRecordings.add(recordingId);
      // Only a decision to stop is relayed: one side's room closing or its node shutting down leaves the other's
      // recording going.
      if (!room.closed && reason !== 'room-closed' && reason !== 'shutdown')
        this.#send({ t: 'recording', recordingId, active: false, reason });
    };
    this.room.observer.on('newpeer', onPeer);
    this.room.observer.on('peerleft', onLeft);
    this.room.observer.once('close', onClose);
    this.room.observer.on('demand', onDemand);
    opts.recording?.observer.on('started', onRecordingStarted);
    opts.recording?.observer.on('stopped', onRecordingStopped);
    this.#detach = () => {
      this.room.observer.off('demand', onDemand);
      this.room.observer.off('newpeer', onPeer);
      this.room.observer.off('peerleft', onLeft);
      this.room.observer.off('close', onClose);
      opts.recording?.observer.off('started', onRecordingStarted);
      opts.recording?.observer.off('stopped', onRecordingStopped);
    };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** This side's pipe transport (once created): SRTP, tuple, stats. */
  get transport(): ms.PipeTransport | undefined {
    return this.#transport;
  }

  /** Whether this side's track `producerId` crosses the link now (the other side wants it). */
  sending(producerId: string): boolean {
    const consumer = this.#sent.get(producerId);
    return !!consumer && !consumer.closed && !consumer.paused;
  }

  /** Participants of the other side standing in here. */
  get standIns(): ReadonlyMap<string, Peer> {
    return this.#standIns;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#detach();
    // A dead link has no one to say goodbye to: its TCP connection is cut at once.
    if (reason === 'link-dead') this.socket.terminate();
    else if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING)
      this.socket.close(1000, reason.slice(0, 100));
    this.#transport?.close();
    if (this.role === 'edge') {
      // The edge serves the owner's call: without the link its participants would be in a call of their own.
      this.room.close(reason === 'link-closed' || reason === 'link-dead' ? `cascade-${reason}` : reason);
    } else {
      for (const standIn of [...this.#standIns.values()]) this.#removeStandIn(standIn, `cascade-${reason}`);
    }
    this.#standIns.clear();
    this.#log.info({ remoteNode: this.remoteNodeId, role: this.role, reason }, 'room link closed');
    this.observer.emit('close', reason);
  }

  async #start(): Promise<void> {
    const s = this.#opts.transport;
    // On the room's first router: participants of the other side are placed there (Room.addPeer).
    const transport = await this.room.router.createPipeTransport({
      listenInfo: {
        protocol: 'udp',
        ip: s.listenIp,
        announcedAddress: s.announcedAddress,
        portRange: { min: s.rtcMinPort, max: s.rtcMaxPort },
      },
      // Between nodes the media crosses a network: encrypted, as a participant's is.
      enableSrtp: true,
      appData: { cascade: this.remoteNodeId },
    });
    if (this.#closed) {
      transport.close();
      return;
    }
    this.#transport = transport;
    const srtp = transport.srtpParameters!;
    this.#send({
      t: 'transport',
      ip: s.announcedAddress ?? transport.tuple.localAddress,
      port: transport.tuple.localPort,
      srtpParameters: { cryptoSuite: srtp.cryptoSuite, keyBase64: srtp.keyBase64 },
    });
    for (const peer of this.room.peers.values()) this.#announce(peer);
    // Before 'ready': a participant who joins the other side while the call is recorded is recorded from the start.
    const recordingId = this.#opts.recording?.recordingId(this.room);
    if (recordingId) this.#send({ t: 'recording', recordingId, active: true });
    this.#send({ t: 'ready' });
  }

  /** Whether this side tells the other about `peer`: never the other side's own participants back. */
  #relays(peer: Peer): boolean {
    return this.role === 'edge' ? !peer.remote : peer.remote?.nodeId !== this.remoteNodeId;
  }

  #announce(peer: Peer): void {
    if (this.#closed || !this.#relays(peer) || this.#announced.has(peer.id)) return;
    this.#announced.add(peer.id);
    this.#send({ t: 'peer', peerId: peer.id, name: peer.displayName });
    const onProducer = (producer: ms.Producer) => void this.#sendProducer(peer, producer);
    for (const producer of peer.producers.values()) onProducer(producer);
    peer.observer.on('newproducer', onProducer);
    peer.observer.once('close', () => peer.observer.off('newproducer', onProducer));
  }

  #onPeerLeft(peer: Peer, reason: string): void {
    if (this.#announced.delete(peer.id)) this.#send({ t: 'peerLeft', peerId: peer.id, reason });
    // The edge's call is its own participants': when the last one leaves, it ends here (and the link with it).
    if (this.role === 'edge' && !this.room.closed && ![...this.room.peers.values()].some((p) => !p.remote))
      this.room.close('empty');
  }

  /** Pipes one of this side's tracks to the other side: consumed here, produced there with the same id. */
  async #sendProducer(peer: Peer, producer: ms.Producer): Promise<void> {
    if (this.#sent.has(producer.id)) return;
    try {
      await this.#queue;
      const transport = this.#transport;
      if (this.#closed || !transport || producer.closed) return;
      await this.room.pipeToFirstRouter(producer.id);
      const consumer = await transport.consume({ producerId: producer.id });
      // Paused until the other side wants it (a `demand` message; mediasoup's pipe consumers cannot start paused).
      await consumer.pause();
      if (this.#closed || this.#sent.has(producer.id)) {
        consumer.close();
        return;
      }
      this.#sent.set(producer.id, consumer);
      consumer.observer.once('close', () => this.#sent.delete(producer.id));
      consumer.on('producerclose', () => this.#send({ t: 'producerClosed', producerId: producer.id }));
      consumer.on('producerpause', () => this.#send({ t: 'producerPaused', producerId: producer.id, paused: true }));
      consumer.on('producerresume', () => this.#send({ t: 'producerPaused', producerId: producer.id, paused: false }));
      this.#send({
        t: 'producer',
        peerId: peer.id,
        producerId: producer.id,
        kind: consumer.kind,
        rtpParameters: consumer.rtpParameters as unknown as Record<string, unknown>,
        paused: consumer.producerPaused,
        source: String(producer.appData.source ?? ''),
      });
    } catch (err) {
      // Closed while it was piped: nothing to send.
      if (producer.closed || this.#closed) return;
      this.#log.error({ err, producerId: producer.id }, 'could not pipe a track to the other node');
    }
  }

  #onMessage(raw: Buffer): void {
    this.#lastSeen = Date.now();
    let parsed: LinkMessage;
    try {
      const json: unknown = JSON.parse(raw.toString('utf8'));
      const t = (json as { t?: unknown } | null)?.t;
      // A kind of message a newer node sends (during a rolling upgrade): what it says is not mirrored here, but
      // everything this node knows still is, so the call goes on.
      if (typeof t === 'string' && !LINK_MESSAGE_TYPES.has(t)) {
        const type = t.slice(0, 64);
        if (!this.#unknownTypes.has(type) && this.#unknownTypes.size < 32) {
          this.#unknownTypes.add(type);
          this.#log.warn({ remoteNode: this.remoteNodeId, type }, 'room link message of an unknown type: ignored');
        }
        return;
      }
      parsed = linkMessageSchema.parse(json);
    } catch (err) {
      // A message of a known kind that does not hold: the other node has a bug, and the link cannot be trusted to
      // mirror the room.
      this.#fail(err, 'invalid message on a room link');
      return;
    }
    // The end of the room, at once: the socket's close, which follows, must not get in first with a vaguer reason.
    if (parsed.t === 'closed') {
      this.close(parsed.reason);
      return;
    }
    this.#queue = this.#queue
      .then(() => this.#apply(parsed))
      .catch((err) => this.#fail(err, `could not apply a ${parsed.t} message of a room link`));
  }

  async #apply(m: LinkMessage): Promise<void> {
    if (this.#closed) return;
    const transport = this.#transport!;
    switch (m.t) {
      case 'transport':
        await transport.connect({
          ip: m.ip,
          port: m.port,
          srtpParameters: m.srtpParameters as ms.SrtpParameters,
        });
        return;
      case 'ready':
        this.observer.emit('ready');
        return;
      case 'peer': {
        if (this.#standIns.has(m.peerId) || this.room.peers.has(m.peerId)) return;
        const standIn = new Peer(
          {
            // Not the participant's identity: that is personal data, and stays on the node that serves them.
            identity: `remote:${this.remoteNodeId}:${m.peerId}`,
            tenant: this.room.tenant,
            room: this.room.id,
            grants: new Set(['publish']),
            name: m.name,
            expiresAt: Number.MAX_SAFE_INTEGER,
          },
          () => undefined,
          { nodeId: this.remoteNodeId, id: m.peerId },
        );
        this.#standIns.set(m.peerId, standIn);
        this.room.addPeer(standIn);
        return;
      }
      case 'peerLeft': {
        const standIn = this.#standIns.get(m.peerId);
        if (standIn) this.#removeStandIn(standIn, m.reason);
        return;
      }
      case 'producer': {
        const standIn = this.#standIns.get(m.peerId);
        if (!standIn || standIn.closed) return;
        const producer = await transport.produce({
          id: m.producerId,
          kind: m.kind,
          rtpParameters: m.rtpParameters as unknown as ms.RtpParameters,
          paused: m.paused,
          appData: { peerId: m.peerId, source: m.source, cascade: this.remoteNodeId },
        });
        if (standIn.closed || this.#closed) producer.close();
        else this.room.adoptProducer(standIn, producer);
        return;
      }
      case 'producerClosed':
        this.#remoteProducer(m.producerId)?.producer.close();
        return;
      case 'demand': {
        const consumer = this.#sent.get(m.producerId);
        if (!consumer || consumer.closed) return;
        try {
          if (!m.wanted) await consumer.pause();
          else {
            await consumer.resume();
            // Whoever receives it there starts with a key frame rather than waiting for the next one.
            if (consumer.kind === 'video') await consumer.requestKeyFrame();
          }
        } catch (err) {
          // One track, not the call: most often it ended meanwhile (its participant left; the worker has dropped
          // its pipe before this side hears it), and there is nothing left to pipe. The link and its other tracks
          // go on either way.
          this.#log.warn(
            { remoteNode: this.remoteNodeId, producerId: m.producerId, wanted: m.wanted, reason: String(err) },
            "could not follow the other side's demand for a track",
          );
        }
        return;
      }
      case 'producerPaused': {
        const found = this.#remoteProducer(m.producerId);
        if (!found) return;
        if (m.paused) await found.producer.pause();
        else await found.producer.resume();
        this.room.broadcast(m.paused ? 'producerPaused' : 'producerResumed', {
          peerId: found.standIn.id,
          producerId: m.producerId,
        });
        return;
      }
      case 'recording':
        await this.#applyRecording(m);
        return;
      case 'closed':
        return;
    }
  }

  /** The other side's recording started or stopped: this side's follows (an echo of its own is a no-op). */
  async #applyRecording(m: Extract<LinkMessage, { t: 'recording' }>): Promise<void> {
    const recording = this.#opts.recording;
    if (!recording || this.room.closed) return;
    const current = recording.recordingId(this.room);
    // Refused or failed here (e.g. the tenant's residency rules on this node's store): logged; the link is fine.
    const failed = (err: unknown) =>
      this.#log.warn(
        { err, remoteNode: this.remoteNodeId, recordingId: m.recordingId, active: m.active },
        'could not follow the recording of the other node',
      );
    if (m.active) {
      if (current || this.#endedRecordings.has(m.recordingId)) return;
      await recording
        .start(this.room, `node:${this.remoteNodeId}`, { recordingId: m.recordingId, relayed: true })
        .catch(failed);
      return;
    }
    this.#endedRecordings.add(m.recordingId);
    // Not awaited: finishing the files takes a while, and the link's next messages must not wait for it.
    if (current) void recording.stop(this.room, m.reason ?? 'stopped-on-another-node').catch(failed);
  }

  #remoteProducer(producerId: string): { standIn: Peer; producer: ms.Producer } | undefined {
    for (const standIn of this.#standIns.values()) {
      const producer = standIn.producers.get(producerId);
      if (producer) return { standIn, producer };
    }
    return undefined;
  }

  /** A participant of the other side left: its piped tracks close (their consumers here hear it), then it leaves. */
  #removeStandIn(standIn: Peer, reason: string): void {
    this.#standIns.delete(standIn.id);
    for (const producer of [...standIn.producers.values()]) producer.close();
    if (!this.room.closed) this.room.removePeer(standIn, reason);
  }

  #send(m: LinkMessage): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(m));
  }

  #fail(err: unknown, what: string): void {
    if (this.#closed) return;
    this.#log.error({ err, remoteNode: this.remoteNodeId }, what);
    this.close('link-failed');
  }
}
