import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { errors as msErrors, type types as ms } from 'mediasoup';
import type { Config } from '../config/index.js';
import type { Logger } from '../logging.js';
import { VigieError } from '../errors.js';
import type { Peer, TrackSource } from './Peer.js';
import type { WorkerSlot } from './WorkerPool.js';
import type { RoomOptions } from './RoomDirectory.js';
import { RoomRouter, type RouterLoad } from './RoomRouter.js';

/** Per-peer ceilings: a misbehaving client cannot exhaust a worker. */
export const PEER_LIMITS = { transports: 4, producers: 6, consumers: 300 } as const;

/** The media settings a room's transports are created with. */
export type TransportSettings = Pick<
  Config['media'],
  'listenIp' | 'announcedAddress' | 'rtcMinPort' | 'rtcMaxPort' | 'enableUdp' | 'enableTcp' | 'initialOutgoingBitrate'
>;

/**
 * How a room grows beyond one worker: the consumer budget of one router, and a way to get a router on a worker
 * the room does not use yet (undefined when there is none).
 */
export interface RoomSpread {
  consumerBudget: number;
  addRouter: (avoid: ReadonlySet<WorkerSlot>) => Promise<{ router: ms.Router; slot: WorkerSlot } | undefined>;
}

/** One router for the whole room: what a room gets when it is not told how to spread. */
const NO_SPREAD: RoomSpread = { consumerBudget: Infinity, addRouter: async () => undefined };

export interface RoomObserverEvents {
  newpeer: [peer: Peer];
  peerleft: [peer: Peer, reason: string];
  close: [reason: string];
  /** The first consumer in the room started receiving a producer (`wanted`), or the last one stopped. */
  demand: [producerId: string, wanted: boolean];
}

export interface TransportDirection {
  direction: 'send' | 'recv';
}

/**
 * Why the worker would refuse `incoming` next to the producers already on its
 * transport, or undefined. The worker routes RTP by SSRC, MID and RID and
 * refuses a duplicate with a plain Error (not a TypeError), which would reach
 * the client as INTERNAL; this applies the same rules as mediasoup's
 * RtpListener::AddProducer, in the same order, so the client hears
 * INVALID_REQUEST instead. `incoming` is not yet validated by mediasoup.
 */
export function rtpListenerConflict(
  existing: readonly ms.RtpParameters[],
  incoming: ms.RtpParameters,
): string | undefined {
  const ssrcs = new Set<number>();
  const mids = new Set<string>();
  const rids = new Set<string>();
  const ssrcsOf = (p: ms.RtpParameters) =>
    (p.encodings ?? [])
      .flatMap((e) => [e?.ssrc, e?.rtx?.ssrc])
      .filter((x): x is number => typeof x === 'number' && x !== 0);
  const ridsOf = (p: ms.RtpParameters) =>
    (p.encodings ?? []).map((e) => e?.rid).filter((x): x is string => typeof x === 'string' && x !== '');
  for (const p of existing) {
    for (const ssrc of ssrcsOf(p)) ssrcs.add(ssrc);
    if (p.mid) mids.add(p.mid);
    for (const rid of ridsOf(p)) rids.add(rid);
  }
  for (const ssrc of ssrcsOf(incoming)) {
    if (ssrcs.has(ssrc)) return `ssrc ${ssrc} is already used on this transport`;
    ssrcs.add(ssrc);
  }
  if (typeof incoming.mid === 'string' && incoming.mid !== '' && mids.has(incoming.mid))
    return `mid ${incoming.mid} is already used on this transport`;
  for (const rid of ridsOf(incoming)) {
    if (rids.has(rid) && !incoming.mid)
      return `rid ${rid} is already used on this transport, and no mid tells the tracks apart`;
    rids.add(rid);
  }
  return undefined;
}

/**
 * A room: its peers, an active-speaker observer, and its mediasoup routers. It
 * starts on one router (`router`, on `slot`'s worker); when that router carries
 * the consumer budget, new participants are served by a router on another
 * worker, and producers are piped with `pipeToRouter` to the routers where they
 * have consumers. A room lives from its first join to its last leave; each
 * such life is one call, with its own `callId`, whatever routers it spans.
 */
export class Room {
  readonly observer = new EventEmitter<RoomObserverEvents>();
  readonly peers = new Map<string, Peer>();
  readonly createdAt = Date.now();
  /** Kinds of track a moderator muted, by identity (see muteProducers). */
  readonly #moderatorMutes = new Map<string, Set<ms.MediaKind>>();
  #closed = false;
  /** The producer the ActiveSpeakerObserver last named dominant. */
  #dominant: string | undefined;
  /**
   * Transports whose connect succeeded. dtlsState stays `new` until a DTLS
   * handshake starts, and the worker refuses a second connect with a plain
   * Error, which would reach the client as INTERNAL.
   */
  readonly #connected = new WeakSet<ms.Transport>();
  /** The room's routers, the first one (`router`) first. */
  readonly #routers: RoomRouter[] = [];
  /** Consumers receiving each producer now, on all the room's routers (see isWanted). */
  readonly #receiving = new Map<string, number>();
  readonly #onReceiving = (producerId: string, delta: 1 | -1): void => {
    const before = this.#receiving.get(producerId) ?? 0;
    const after = before + delta;
    if (after > 0) this.#receiving.set(producerId, after);
    else this.#receiving.delete(producerId);
    if (before === 0 || after === 0) this.observer.emit('demand', producerId, after > 0);
  };
  /** The router serving each participant, by peer id: its transports, producers and consumers are there. */
  readonly #routerOf = new Map<string, RoomRouter>();
  /** A router being added on another worker, shared by the participants who wait for it. */
  #growing?: Promise<RoomRouter>;
  /** Producers piped to other routers: producer id, then destination router id. Each pair is piped once. */
  readonly #pipes = new Map<string, Map<string, Promise<void>>>();

  constructor(
    readonly tenant: string,
    readonly id: string,
    readonly router: ms.Router,
    readonly slot: WorkerSlot,
    private readonly speakerObserver: ms.ActiveSpeakerObserver,
    private readonly transportSettings: TransportSettings,
    private readonly maxPeers: number,
    private readonly log: Logger,
    /** Options the room opened with (recording policy, consent, retention). */
    readonly options: RoomOptions = { recordingPolicy: 'manual', consentRequired: false },
    private readonly spread: RoomSpread = NO_SPREAD,
    /** The call's id: a new one, or the owning node's when this node extends a call that spans nodes. */
    readonly callId: string = randomUUID(),
  ) {
    this.#routers.push(new RoomRouter(router, slot, this.#onReceiving));
    speakerObserver.on('dominantspeaker', ({ producer }) => {
      const owner = this.ownerOf(producer.id);
      if (!owner) return;
      this.#dominant = producer.id;
      this.broadcast('activeSpeaker', { peerId: owner.id, producerId: producer.id });
    });
    // mediasoup closes a dead worker's routers before it emits 'died', so the
    // reason is read from the worker here rather than from the pool's event.
    router.observer.once('close', () => this.close(slot.worker.died ? 'worker-died' : 'router-closed'));
  }

  get closed(): boolean {
    return this.#closed;
  }

  get key(): string {
    return roomKey(this.tenant, this.id);
  }

  broadcast(method: string, data: Record<string, unknown>, except?: Peer): void {
    for (const p of this.peers.values()) if (p !== except) p.notify(method, data);
  }

  findPeerByIdentity(identity: string): Peer | undefined {
    for (const p of this.peers.values()) if (p.identity === identity) return p;
    return undefined;
  }

  /** `replacing`: the same participant's previous session, about to leave; it does not count against the limit. */
  addPeer(peer: Peer, { replacing }: { replacing?: Peer } = {}): void {
    if (this.#closed) throw new VigieError('NOT_FOUND', 'room is closed');
    const leaving = replacing && this.peers.has(replacing.id) ? 1 : 0;
    if (this.peers.size - leaving >= this.maxPeers)
      throw new VigieError('FORBIDDEN', `room is full (${this.maxPeers} participants)`);
    this.peers.set(peer.id, peer);
    // Placed now when a router has room; otherwise when it first needs one (routerFor), as that may mean a new one.
    // A participant of another node is on the first router: the link between the nodes ends there.
    const open = peer.remote ? this.#routers[0] : this.#openRouter();
    if (open) this.#place(peer, open);
    this.broadcast('peerJoined', { peerId: peer.id, name: peer.displayName }, peer);
    // The observer speaks only when the dominant speaker changes: a newcomer is told who it is now.
    const speaker = this.#dominant === undefined ? undefined : this.ownerOf(this.#dominant);
    if (speaker) peer.notify('activeSpeaker', { peerId: speaker.id, producerId: this.#dominant });
    this.observer.emit('newpeer', peer);
  }

  removePeer(peer: Peer, reason: string): void {
    if (!this.peers.delete(peer.id)) return;
    this.#unplace(peer);
    peer.close(reason);
    this.broadcast('peerLeft', { peerId: peer.id, reason });
    this.observer.emit('peerleft', peer, reason);
    if (this.peers.size === 0) this.close('empty');
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const peer of this.peers.values()) {
      peer.notify('roomClosed', { reason });
      peer.close(`room-closed:${reason}`);
      this.observer.emit('peerleft', peer, `room-closed:${reason}`);
    }
    this.peers.clear();
    this.#routerOf.clear();
    // Closing a router closes its pipe transports, and mediasoup closes their other ends.
    for (const r of [...this.#routers]) if (!r.closed) r.router.close();
    this.log.info({ tenant: this.tenant, room: this.id, callId: this.callId, reason }, 'room closed');
    this.observer.emit('close', reason);
  }

  /** The routers the room spans, the first one first. */
  get routers(): readonly RoomRouter[] {
    return this.#routers;
  }

  /** Peers and consumers on each of the room's routers. */
  load(): RouterLoad[] {
    return this.#routers.map((r) => ({
      tenant: this.tenant,
      room: this.id,
      routerId: r.router.id,
      worker: r.slot.index,
      peers: r.peers.size,
      consumers: r.consumers,
    }));
  }

  /** The router a participant's media is on: where it was placed, else the room's first. */
  routerOf(peer: Peer): ms.Router {
    return this.#servedBy(peer).router;
  }

  /** The worker of that router: telemetry shows with it which workers a room's tracks are on. */
  slotOf(peer: Peer): WorkerSlot {
    return this.#servedBy(peer).slot;
  }

  #servedBy(peer: Peer): RoomRouter {
    return this.#routerOf.get(peer.id) ?? this.#routers[0]!;
  }

  /**
   * The router that serves this participant, placing it first when it has none: on a router of the room under the
   * consumer budget, else on a new router on another worker. When every worker already holds one of the room's
   * routers, the least-loaded of them takes it beyond the budget: a full node still admits the participant.
   */
  async routerFor(peer: Peer): Promise<ms.Router> {
    return (await this.#placed(peer)).router;
  }

  async #placed(peer: Peer): Promise<RoomRouter> {
    for (;;) {
      const placed = this.#routerOf.get(peer.id);
      if (placed) return placed;
      if (this.#closed || !this.peers.has(peer.id)) throw new VigieError('NOT_FOUND', 'not in this room');
      const chosen = this.#openRouter() ?? (await this.#grow());
      // Placed by a concurrent call, or gone, while the router was made: the loop sees it.
      if (!this.#routerOf.has(peer.id) && this.peers.has(peer.id) && !chosen.closed) this.#place(peer, chosen);
    }
  }

  #openRouter(): RoomRouter | undefined {
    return this.#routers.find((r) => !r.closed && r.consumers < this.spread.consumerBudget);
  }

  #place(peer: Peer, r: RoomRouter): void {
    r.add(peer.id);
    this.#routerOf.set(peer.id, r);
  }

  /** Takes a participant off its router; a router other than the first closes with its last participant. */
  #unplace(peer: Peer): void {
    const r = this.#routerOf.get(peer.id);
    if (!r) return;
    this.#routerOf.delete(peer.id);
    r.delete(peer.id);
    if (r !== this.#routers[0] && r.peers.size === 0 && !r.closed) r.router.close();
  }

  #grow(): Promise<RoomRouter> {
    this.#growing ??= this.#addRouter().finally(() => (this.#growing = undefined));
    return this.#growing;
  }

  async #addRouter(): Promise<RoomRouter> {
    const made = await this.spread.addRouter(new Set(this.#routers.map((r) => r.slot))).catch((err: unknown) => {
      // A worker dying as it is asked: the room's live routers serve, beyond the budget, rather than refuse the join.
      this.log.error({ err, room: this.id, callId: this.callId }, 'could not add a router to the room');
      return undefined;
    });
    const live = this.#routers.filter((r) => !r.closed);
    if (this.#closed || live.length === 0) {
      made?.router.close();
      throw new VigieError('NOT_FOUND', 'room is closed');
    }
    if (!made) {
      this.log.warn(
        { room: this.id, callId: this.callId, budget: this.spread.consumerBudget },
        'every worker already serves this room; placing beyond the router consumer budget',
      );
      return live.reduce((best, r) => (r.consumers < best.consumers ? r : best));
    }
    const added = new RoomRouter(made.router, made.slot, this.#onReceiving);
    this.#routers.push(added);
    made.router.observer.once('close', () => this.#routerClosed(added));
    this.log.info(
      {
        tenant: this.tenant,
        room: this.id,
        callId: this.callId,
        worker: made.slot.index,
        routers: this.#routers.length,
      },
      'room spread to another worker',
    );
    return added;
  }

  /**
   * A router other than the first closed: emptied, or its worker died. Its participants leave the room with the
   * reason the whole room would give (`worker-died`: the SDK rejoins and is placed on a live router); the call and
   * the participants on other routers go on.
   */
  #routerClosed(r: RoomRouter): void {
    this.#routers.splice(this.#routers.indexOf(r), 1);
    for (const byRouter of this.#pipes.values()) byRouter.delete(r.router.id);
    if (this.#closed) return;
    const reason = r.slot.worker.died ? 'worker-died' : 'router-closed';
    for (const [peerId, placed] of [...this.#routerOf]) {
      const peer = this.peers.get(peerId);
      if (placed !== r || !peer) continue;
      peer.notify('roomClosed', { reason });
      this.removePeer(peer, `room-closed:${reason}`);
    }
  }

  /** Makes a producer of `from` consumable on `to`, once per producer and router; mediasoup keeps its id. */
  async #pipe(producerId: string, from: RoomRouter, to: RoomRouter): Promise<void> {
    const byRouter = this.#pipes.get(producerId) ?? new Map<string, Promise<void>>();
    this.#pipes.set(producerId, byRouter);
    let pipe = byRouter.get(to.router.id);
    if (!pipe) {
      const forget = () => byRouter.get(to.router.id) === pipe && byRouter.delete(to.router.id);
      // mediasoup closes the pipe producer with the producer, and either with its router.
      pipe = from.router
        .pipeToRouter({ producerId, router: to.router })
        .then(({ pipeProducer }) => void pipeProducer?.observer.once('close', forget));
      byRouter.set(to.router.id, pipe);
      pipe.catch(forget);
    }
    try {
      await pipe;
    } catch (err) {
      if (err instanceof msErrors.NotFoundError || from.closed || to.closed)
        throw new VigieError('NOT_FOUND', 'no such producer in this room');
      throw err;
    }
  }

  /** Makes a producer of the room consumable on its first router (where links to other nodes end). */
  async pipeToFirstRouter(producerId: string): Promise<void> {
    const owner = this.ownerOf(producerId);
    const origin = owner && this.#routerOf.get(owner.id);
    if (origin && origin !== this.#routers[0]) await this.#pipe(producerId, origin, this.#routers[0]!);
  }

  /**
   * Whether some consumer in the room receives `producerId` now: a participant's (not paused), a recorder's, a pipe
   * to another router or node that carries it. A node link pipes a track to the other node only while it is wanted
   * there (src/cascade).
   */
  isWanted(producerId: string): boolean {
    return this.#receiving.has(producerId);
  }

  otherPeers(peer: Peer): ReturnType<Peer['describe']>[] {
    return [...this.peers.values()].filter((p) => p !== peer).map((p) => p.describe());
  }

  async createWebRtcTransport(peer: Peer, { direction }: TransportDirection): Promise<Record<string, unknown>> {
    if (peer.transports.size >= PEER_LIMITS.transports)
      throw new VigieError('FORBIDDEN', `at most ${PEER_LIMITS.transports} transports per participant`);
    const placed = await this.#placed(peer);
    const s = this.transportSettings;
    const common = {
      enableUdp: s.enableUdp,
      enableTcp: s.enableTcp,
      preferUdp: true,
      initialAvailableOutgoingBitrate: s.initialOutgoingBitrate,
      appData: { peerId: peer.id, direction },
    };
    const transport = placed.slot.webRtcServer
      ? await placed.router.createWebRtcTransport({ ...common, webRtcServer: placed.slot.webRtcServer })
      : await placed.router.createWebRtcTransport({
          ...common,
          listenInfos: (['udp', 'tcp'] as const)
            .filter((protocol) => (protocol === 'udp' ? s.enableUdp : s.enableTcp))
            .map((protocol) => ({
              protocol,
              ip: s.listenIp,
              announcedAddress: s.announcedAddress,
              portRange: { min: s.rtcMinPort, max: s.rtcMaxPort },
            })),
        });
    // The peer left while the worker created it: nothing would ever close it before the room does.
    if (peer.closed) {
      transport.close();
      throw new VigieError('INVALID_REQUEST', 'the participant left while its transport was created');
    }
    peer.transports.set(transport.id, transport);
    transport.observer.once('close', () => peer.transports.delete(transport.id));
    transport.on('dtlsstatechange', (state) => {
      if (state === 'failed' || state === 'closed') {
        this.log.warn({ room: this.id, peerId: peer.id, transportId: transport.id, state }, 'transport DTLS ended');
      }
    });
    peer.observer.emit('newtransport', transport);
    return {
      transportId: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
    };
  }

  async connectTransport(peer: Peer, transportId: string, dtlsParameters: ms.DtlsParameters): Promise<void> {
    const transport = this.#transport(peer, transportId);
    if (!('dtlsState' in transport)) throw new VigieError('INVALID_REQUEST', 'not a WebRTC transport');
    if (transport.dtlsState !== 'new' || this.#connected.has(transport))
      throw new VigieError('INVALID_REQUEST', 'transport already connected');
    // Marked before the await: a second connect racing the first must be refused too.
    this.#connected.add(transport);
    await clientParameters(() => transport.connect({ dtlsParameters }));
  }

  async restartIce(peer: Peer, transportId: string): Promise<ms.IceParameters> {
    const transport = this.#transport(peer, transportId);
    if (!('restartIce' in transport)) throw new VigieError('INVALID_REQUEST', 'not a WebRTC transport');
    const iceParameters = await transport.restartIce();
    peer.observer.emit('icerestart', transport);
    return iceParameters;
  }

  async produce(
    peer: Peer,
    req: { transportId: string; kind: ms.MediaKind; rtpParameters: ms.RtpParameters; source: TrackSource },
  ): Promise<string> {
    const transport = this.#transport(peer, req.transportId);
    if (transport.appData.direction === 'recv')
      throw new VigieError('INVALID_REQUEST', 'cannot produce on a receive transport');
    if (peer.producers.size >= PEER_LIMITS.producers)
      throw new VigieError('FORBIDDEN', `at most ${PEER_LIMITS.producers} tracks per participant`);
    for (const p of peer.producers.values()) {
      if (p.appData.source === req.source)
        throw new VigieError('INVALID_REQUEST', `a ${req.source} track is already published`);
    }
    const onTransport = [...peer.producers.values()]
      .filter((p) => p.appData.transportId === transport.id && !p.closed)
      .map((p) => p.rtpParameters);
    const conflict = rtpListenerConflict(onTransport, req.rtpParameters);
    if (conflict) throw new VigieError('INVALID_REQUEST', conflict);
    const mutedByModerator = this.isMutedByModerator(peer, req.kind);
    const producer = await clientParameters(() =>
      transport.produce({
        kind: req.kind,
        rtpParameters: req.rtpParameters,
        paused: mutedByModerator,
        appData: { peerId: peer.id, source: req.source, transportId: transport.id },
      }),
    );
    this.#adoptProducer(peer, producer);
    if (mutedByModerator) await this.#pauseByModerator(peer, producer);
    return producer.id;
  }

  /** Registers a producer created elsewhere (e.g. a PlainTransport bot) and announces it. */
  adoptProducer(peer: Peer, producer: ms.Producer): void {
    this.#adoptProducer(peer, producer);
  }

  #adoptProducer(peer: Peer, producer: ms.Producer): void {
    peer.producers.set(producer.id, producer);
    producer.observer.once('close', () => {
      this.#pipes.delete(producer.id);
      peer.producers.delete(producer.id);
      this.broadcast('producerClosed', { peerId: peer.id, producerId: producer.id }, peer);
    });
    // The active speaker is chosen on the first router: a voice from another router is piped there.
    const origin = this.#routerOf.get(peer.id);
    if (producer.kind === 'audio')
      void (
        origin && origin !== this.#routers[0] ? this.#pipe(producer.id, origin, this.#routers[0]!) : Promise.resolve()
      )
        .then(() => this.speakerObserver.addProducer({ producerId: producer.id }))
        .catch(() => undefined);
    peer.observer.emit('newproducer', producer);
    this.broadcast(
      'newProducer',
      {
        peerId: peer.id,
        producerId: producer.id,
        kind: producer.kind,
        source: producer.appData.source,
        paused: producer.paused,
      },
      peer,
    );
  }

  /**
   * Remote mute (by a moderator or the API): pauses the peer's tracks of `kind`
   * (both kinds when unset) and tells everyone. The mute holds until
   * `unmuteProducers`: the participant cannot resume those tracks, and tracks
   * of that kind it publishes later (after a rejoin, say) start paused. It is
   * kept by identity, so a reconnect does not lift it.
   */
  async muteProducers(peer: Peer, kind?: ms.MediaKind): Promise<string[]> {
    const kinds = this.#moderatorMutes.get(peer.identity) ?? new Set<ms.MediaKind>();
    for (const k of kind ? [kind] : (['audio', 'video'] as const)) kinds.add(k);
    this.#moderatorMutes.set(peer.identity, kinds);
    const muted: string[] = [];
    for (const p of peer.producers.values()) {
      if (kind && p.kind !== kind) continue;
      muted.push(p.id);
      await this.#pauseByModerator(peer, p);
    }
    return muted;
  }

  /** Lifts a remote mute: the participant may turn its tracks on again (they stay paused until it does). */
  unmuteProducers(peer: Peer, kind?: ms.MediaKind): string[] {
    const kinds = this.#moderatorMutes.get(peer.identity);
    for (const k of kind ? [kind] : (['audio', 'video'] as const)) kinds?.delete(k);
    if (kinds?.size === 0) this.#moderatorMutes.delete(peer.identity);
    const unmuted: string[] = [];
    for (const p of peer.producers.values()) {
      if ((kind && p.kind !== kind) || this.isMutedByModerator(peer, p.kind)) continue;
      unmuted.push(p.id);
      peer.notify('unmutedByServer', { producerId: p.id, kind: p.kind });
    }
    return unmuted;
  }

  isMutedByModerator(peer: Peer, kind: ms.MediaKind): boolean {
    return this.#moderatorMutes.get(peer.identity)?.has(kind) ?? false;
  }

  async #pauseByModerator(peer: Peer, producer: ms.Producer): Promise<void> {
    peer.notify('mutedByServer', { producerId: producer.id, kind: producer.kind });
    if (producer.paused) return;
    await producer.pause();
    this.broadcast('producerPaused', { peerId: peer.id, producerId: producer.id }, peer);
  }

  closeProducer(peer: Peer, producerId: string): void {
    this.#producer(peer, producerId).close();
  }

  async setProducerPaused(peer: Peer, producerId: string, paused: boolean): Promise<void> {
    const producer = this.#producer(peer, producerId);
    if (!paused && this.isMutedByModerator(peer, producer.kind))
      throw new VigieError('FORBIDDEN', 'this track was muted by a moderator; only a moderator can unmute it');
    if (paused) await producer.pause();
    else await producer.resume();
    this.broadcast(paused ? 'producerPaused' : 'producerResumed', { peerId: peer.id, producerId }, peer);
  }

  async consume(
    peer: Peer,
    req: { transportId: string; producerId: string; rtpCapabilities: ms.RtpCapabilities },
  ): Promise<Record<string, unknown>> {
    const transport = this.#transport(peer, req.transportId);
    if (transport.appData.direction === 'send')
      throw new VigieError('INVALID_REQUEST', 'cannot consume on a send transport');
    if (peer.consumers.size >= PEER_LIMITS.consumers)
      throw new VigieError('FORBIDDEN', `at most ${PEER_LIMITS.consumers} consumers per participant`);
    const owner = this.ownerOf(req.producerId);
    if (!owner) throw new VigieError('NOT_FOUND', 'no such producer in this room');
    if (owner === peer) throw new VigieError('INVALID_REQUEST', 'cannot consume your own track');
    const origin = this.#routerOf.get(owner.id) ?? this.#routers[0]!;
    if (!origin.router.canConsume({ producerId: req.producerId, rtpCapabilities: req.rtpCapabilities })) {
      throw new VigieError('INVALID_REQUEST', 'your RTP capabilities cannot receive this track');
    }
    // The track is received where the participant is: piped there first when its producer is on another router.
    const here = await this.#placed(peer);
    if (here !== origin) await this.#pipe(req.producerId, origin, here);
    // Created paused, as mediasoup recommends: the client resumes once its
    // consumer exists, so no early keyframe is lost.
    const consumer = await clientParameters(() =>
      transport.consume({
        producerId: req.producerId,
        rtpCapabilities: req.rtpCapabilities,
        paused: true,
        appData: { peerId: peer.id, producerPeerId: owner.id },
      }),
    );
    peer.consumers.set(consumer.id, consumer);
    const closed = (reason: string) => {
      if (!peer.consumers.delete(consumer.id)) return;
      peer.notify('consumerClosed', { consumerId: consumer.id, reason });
    };
    consumer.on('transportclose', () => peer.consumers.delete(consumer.id));
    consumer.on('producerclose', () => closed('producer-closed'));
    consumer.on('score', (score) => peer.notify('consumerScore', { consumerId: consumer.id, score }));
    consumer.on('layerschange', (layers) =>
      peer.notify('consumerLayersChanged', { consumerId: consumer.id, layers: layers ?? null }),
    );
    peer.observer.emit('newconsumer', consumer);
    return {
      consumerId: consumer.id,
      producerId: req.producerId,
      peerId: owner.id,
      kind: consumer.kind,
      rtpParameters: consumer.rtpParameters,
      type: consumer.type,
      producerPaused: consumer.producerPaused,
      // camera, mic, screen…: lets the receiver lay out a screen share apart from the sender's camera.
      source: owner.producers.get(req.producerId)?.appData.source,
    };
  }

  async setConsumerPaused(peer: Peer, consumerId: string, paused: boolean): Promise<void> {
    const consumer = this.#consumer(peer, consumerId);
    if (paused) await consumer.pause();
    else await consumer.resume();
  }

  async setPreferredLayers(peer: Peer, consumerId: string, layers: ms.ConsumerLayers): Promise<void> {
    const consumer = this.#consumer(peer, consumerId);
    if (consumer.type !== 'simulcast' && consumer.type !== 'svc')
      throw new VigieError('INVALID_REQUEST', 'consumer has no layers');
    await clientParameters(() => consumer.setPreferredLayers(layers));
  }

  /** The participant who publishes this producer, if it is in the room. */
  ownerOf(producerId: string): Peer | undefined {
    for (const p of this.peers.values()) if (p.producers.has(producerId)) return p;
    return undefined;
  }

  #transport(peer: Peer, id: string) {
    const t = peer.transports.get(id);
    if (!t) throw new VigieError('NOT_FOUND', 'no such transport');
    return t;
  }

  #producer(peer: Peer, id: string) {
    const p = peer.producers.get(id);
    if (!p) throw new VigieError('NOT_FOUND', 'no such producer');
    return p;
  }

  #consumer(peer: Peer, id: string) {
    const c = peer.consumers.get(id);
    if (!c) throw new VigieError('NOT_FOUND', 'no such consumer');
    return c;
  }
}

/**
 * Runs one mediasoup call that is handed parameters the client sent (DTLS,
 * RTP parameters or capabilities, layers). mediasoup rejects bad ones with a
 * TypeError or UnsupportedError, which is then the client's fault. Only here:
 * a TypeError anywhere else is a bug of ours, and stays INTERNAL.
 */
async function clientParameters<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof TypeError || err instanceof msErrors.UnsupportedError)
      throw new VigieError('INVALID_REQUEST', err.message.slice(0, 200));
    throw err;
  }
}

export function roomKey(tenant: string, room: string): string {
  return `${tenant}/${room}`;
}
