import type { Device, types as msc } from 'mediasoup-client';
import { newDevice, warmUpDevice } from './device.js';
import { MAX_JOIN_REDIRECTS, SignalingClient, SignalingError } from './SignalingClient.js';

export type Source = 'camera' | 'mic' | 'screen' | 'screen-audio';

export interface RemotePeer {
  peerId: string;
  name: string;
  /** Remote tracks by consumer id. */
  tracks: Map<
    string,
    { consumerId: string; producerId: string; kind: 'audio' | 'video'; source?: string; track: MediaStreamTrack }
  >;
}

export interface VigieCallEvents {
  peerJoined: { peerId: string; name: string };
  peerLeft: { peerId: string; reason: string };
  trackAdded: { peerId: string; consumerId: string; kind: 'audio' | 'video'; source?: string; track: MediaStreamTrack };
  trackRemoved: { peerId: string; consumerId: string };
  activeSpeaker: { peerId: string };
  roomClosed: { reason: string };
  /** A moderator muted one of this participant's tracks: it cannot be turned on again until `unmutedByServer`. */
  mutedByServer: { producerId: string; kind: 'audio' | 'video' };
  /** A moderator lifted the mute: the participant may turn the track on again (it stays off until then). */
  unmutedByServer: { producerId: string; kind: 'audio' | 'video' };
  /** The server is shutting down; the call moves to another server (or this one restarted) by itself. */
  serverDraining: { reason: string; deadlineSeconds: number };
  /** The server sent a fresh access token; later requests and rejoins use it. */
  tokenRefreshed: { expiresAt: number };
  recording: { active: boolean; consentRequired: boolean; recordingId?: string };
  /** A moderator removed this participant from the call. */
  removed: { reason: string };
  /** Gone for good: left, replaced by another tab, or every attempt to rejoin failed. */
  disconnected: { code: number; reason: string };
  /** The connection dropped, or the room's media server died: rejoining with the same token and tracks. */
  reconnecting: { attempt: number; reason: string };
  /** Back in the call, with the same tracks published and the others' tracks received again. */
  reconnected: { peerId: string };
  error: { code: string; message: string };
}

/** The values of `qualityLimitationReason` the gateway accepts (WebRTC stats); any other is left out. */
const LIMITATION_REASONS = new Set(['none', 'cpu', 'bandwidth', 'other']);

/**
 * Simulcast layers for a camera of this height, lowest first as mediasoup
 * expects. Chromium encodes at most 3 layers from 540 lines up, 2 from 360
 * (libwebrtc's table; at 640x480 a third layer is measurably dropped), and
 * silently drops the others, so asking for more only misleads the SFU.
 */
export function simulcastEncodings(height: number): RTCRtpEncodingParameters[] | undefined {
  const all: RTCRtpEncodingParameters[] = [
    { scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
  ];
  const count = height >= 540 ? 3 : height >= 360 ? 2 : 1;
  return count === 1
    ? undefined
    : all.slice(-count).map((e, i, layers) => ({ ...e, scaleResolutionDownBy: 2 ** (layers.length - 1 - i) }));
}

export interface JoinOptions {
  /** WebSocket URL; defaults to `/ws` on the page's own host. */
  url?: string;
  token: string;
  /** Force TURN relay (e.g. strict corporate networks). */
  relayOnly?: boolean;
  /** Subscribe to other participants' tracks automatically (default true). */
  autoSubscribe?: boolean;
  /** Rejoin by itself after a dropped connection or a media server failure (default true). */
  reconnect?: boolean;
  /** Display name shown to the others when the token carries none (the token's name wins). */
  name?: string;
  /**
   * A signaling socket the page opened already, e.g. on its pre-join screen, so that joining does not wait for a
   * handshake. Used if still connecting or open; otherwise (the server closes sockets that do not join within
   * `VIGIE_SIGNALING_JOIN_TIMEOUT_MS`) a new one is opened.
   */
  socket?: WebSocket;
}

/**
 * Waits before each rejoin attempt; after the last, the call is disconnected for good. About 30 s in all: long
 * enough for the cluster to declare a dead node dead (VIGIE_NODES_DEAD_AFTER_S, 10 s by default), after which its
 * rooms are placed again where their participants rejoin.
 */
const REJOIN_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 8000, 8000];
/**
 * Close codes after which rejoining would be wrong: replaced by another session, removed, rate-limited.
 * Every other one rejoins, 1012 included: the server is restarting or draining, and the call moves on.
 */
const FINAL_CLOSE_CODES = new Set([1000, 4000, 4001, 4008]);

/**
 * Request id of the `join` sent by the call page's inline script (src/web/earlyJoin.ts, which documents the contract).
 */
const EARLY_JOIN_ID = 0;

interface EarlyJoin {
  socket: WebSocket;
  token: string;
  /** Messages received until the SDK takes the socket; undefined after. */
  buffer?: string[];
}

/**
 * The connection the call page opened and joined on before the SDK loaded, if
 * it is for this join: same token, default URL, still open. It is taken once;
 * one that is not used is closed, so that its participant does not linger in
 * the room.
 */
function takeEarlyJoin(options: JoinOptions): (EarlyJoin & { buffer: string[] }) | undefined {
  const w = globalThis as { vigieEarlyJoin?: EarlyJoin };
  const early = w.vigieEarlyJoin;
  if (!early?.buffer) return undefined;
  delete w.vigieEarlyJoin;
  const buffer = early.buffer;
  early.buffer = undefined;
  if (early.token === options.token && options.url === undefined && early.socket.readyState <= WebSocket.OPEN)
    return { ...early, buffer };
  early.socket.close(1000, 'not used');
  return undefined;
}

/** What the server sends of a transport it created: the browser's side is made from it. */
type ServerTransport = {
  transportId: string;
  iceParameters: msc.IceParameters;
  iceCandidates: msc.IceCandidate[];
  dtlsParameters: msc.DtlsParameters;
};

/** A join answered: on which connection, at which node's URL (after redirects), and the answer. */
type Joined = { signaling: SignalingClient; joined: any; url: string };

type JoinedInfo = {
  peerId: string;
  callId: string;
  tenant: string;
  room: string;
  name: string;
  grants: string[];
  iceServers: RTCIceServer[];
  recording: { active: boolean; consentRequired: boolean };
};

/** How often, and how long, a new consumer's stats are read for the join funnel's first frame and first audio. */
const FIRST_MEDIA_POLL_MS = 50;
const FIRST_MEDIA_WAIT_MS = 30_000;

/**
 * A participant's side of a call: join with a token, publish camera, mic or
 * screen, receive the others. Events: see VigieCallEvents.
 */
export class VigieCall {
  readonly peers = new Map<string, RemotePeer>();
  /**
   * The participant speaking now, as last announced. A newcomer is told at once, which can be before the page
   * listens for 'activeSpeaker' (join() resolves after the held notifications are replayed): read it after join().
   */
  activeSpeaker: string | undefined;
  readonly producers = new Map<Source, msc.Producer>();
  readonly consumers = new Map<string, msc.Consumer>();
  /** The consumer of each producer, by producer id, from the moment its subscription is asked for. */
  readonly #subscriptions = new Map<string, Promise<msc.Consumer>>();
  /** One transport per direction, created on first use; callers at the same moment share its creation. */
  #transports: Partial<Record<'send' | 'recv', Promise<msc.Transport>>> = {};
  readonly #listeners = new Map<keyof VigieCallEvents, Set<(e: any) => void>>();
  #left = false;
  #rejoining = false;
  #statsTimer?: ReturnType<typeof setInterval>;
  #signaling: SignalingClient;
  /** The signaling URL of the node this call is on (where the last join, after its redirects, was answered). */
  #url: string;
  /** The other live nodes' signaling URLs, as the last join's answer listed them: where to rejoin if ours is gone. */
  #nodes: string[] = [];
  /** The URL this call first joined through (`options.url` or the page's host). */
  readonly #origin: string;
  /** What each published source was sent with, to publish it again after a rejoin. */
  readonly #published = new Map<Source, { track: MediaStreamTrack; encodings?: RTCRtpEncodingParameters[] }>();
  /** Producers a moderator muted: they stay off until unmuted. */
  readonly mutedByModerator = new Set<string>();
  /** The kinds whose first media this join reported (the gateway's join funnel); each join starts afresh. */
  #firstMedia = new Set<string>();

  private constructor(
    joined: Joined,
    readonly device: Device,
    readonly info: JoinedInfo,
    private readonly options: JoinOptions,
  ) {
    this.#signaling = joined.signaling;
    this.#url = joined.url;
    this.#origin = options.url ?? VigieCall.signalingUrl();
  }

  /** The current signaling connection (a new one after each rejoin). */
  get signaling(): SignalingClient {
    return this.#signaling;
  }

  /**
   * Gets the browser ready to join: asks it now for the media capabilities every join needs, which takes it 20 to 30
   * ms that the join would otherwise wait for after the server answered. For a pre-join screen; optional.
   */
  static prepare(): void {
    warmUpDevice();
  }

  static async join(options: JoinOptions): Promise<VigieCall> {
    // While the join goes to the server and back (if prepare() did not run earlier).
    warmUpDevice();
    const first = await VigieCall.#connectAndJoin(options);
    const { joined } = first;
    const device = newDevice();
    await device.load({ routerRtpCapabilities: joined.rtpCapabilities });
    // A copy: the token in it is replaced by each refreshed one, and the caller's object is not ours to change.
    const call = new VigieCall(first, device, VigieCall.#infoOf(joined), { ...options });
    call.#enter(joined);
    return call;
  }

  /** The gateway's signaling endpoint on the page's own host: where `join` connects unless given `url`. */
  static signalingUrl(): string {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  }

  /**
   * Opens a connection and joins. A join that reaches a node which does not serve the room is answered REDIRECT:
   * the SDK then joins again, with the same token, on a new connection to the node named, at most
   * MAX_JOIN_REDIRECTS times (more is a loop, refused as REDIRECT_LOOP). The first hop may use the socket the page
   * opened, or the join the call page sent already (takeEarlyJoin).
   */
  static async #connectAndJoin(options: JoinOptions): Promise<Joined> {
    const early = takeEarlyJoin(options);
    let url = options.url ?? VigieCall.signalingUrl();
    const ready = options.socket && options.socket.readyState <= WebSocket.OPEN ? options.socket : undefined;
    if (options.socket && !ready) options.socket.close();
    let socket = early?.socket ?? ready ?? new WebSocket(url);
    const hops: string[] = [];
    for (;;) {
      const signaling = new SignalingClient(socket);
      // Others may publish or join while the device loads: hold those
      // notifications until their handlers exist (see #enter), then replay them.
      signaling.holdNotifications();
      try {
        const joined = await VigieCall.#sendJoin(signaling, options, hops.length ? undefined : early);
        return { signaling, joined, url: socket.url || url };
      } catch (err) {
        signaling.close();
        if (!(err instanceof SignalingError) || err.code !== 'REDIRECT' || !err.redirect) throw err;
        hops.push(err.redirect.nodeId);
        if (hops.length > MAX_JOIN_REDIRECTS)
          throw new SignalingError(
            'REDIRECT_LOOP',
            `the nodes keep redirecting this join: ${hops.join(' → ')}`,
            'join',
          );
        url = err.redirect.url;
        socket = new WebSocket(url);
      }
    }
  }

  static async #sendJoin(signaling: SignalingClient, options: JoinOptions, early?: { buffer: string[] }): Promise<any> {
    if (!early)
      return signaling.request('join', {
        token: options.token,
        ...(options.name ? { name: options.name } : {}),
        // Receiving from the start: the server creates the recv transport with the join (one round trip less).
        ...(options.autoSubscribe === false ? {} : { recvTransport: true }),
      });
    // The page's script already sent the join: take its answer from what the socket received so far, or will.
    const joined = signaling.answerTo(EARLY_JOIN_ID, 'join');
    signaling.replay(early.buffer);
    return joined;
  }

  /**
   * Where a rejoin goes, in this order: the node the call was on (a dropped connection, a restarted or draining
   * node, which redirects), the other live nodes its last join listed, and the URL it first joined through. The
   * first that answers the join wins; a refused token ends the search, since every node refuses it.
   */
  async #joinAnywhere(): Promise<Joined> {
    let failure: unknown;
    for (const url of new Set([this.#url, ...this.#nodes, this.#origin])) {
      if (this.#left) break;
      try {
        return await VigieCall.#connectAndJoin({ ...this.options, url, socket: undefined });
      } catch (err) {
        if (err instanceof SignalingError && ['UNAUTHORIZED', 'FORBIDDEN'].includes(err.code)) throw err;
        failure = err;
      }
    }
    throw failure ?? new Error('left');
  }

  static #infoOf(joined: any): JoinedInfo {
    const { peerId, callId, tenant, room, name, grants, iceServers, recording } = joined;
    return { peerId, callId, tenant, room, name, grants, iceServers, recording };
  }

  /** Wires the connection, then receives the peers already in the room. */
  #enter(joined: any): void {
    this.#firstMedia = new Set();
    this.#nodes = Array.isArray(joined.nodes) ? joined.nodes.filter((u: unknown) => typeof u === 'string') : [];
    this.#wire();
    // Created by the server with the join (asked for by #connectAndJoin): the subscriptions below use it at once.
    if (joined.recvTransport) this.#transports.recv = Promise.resolve(this.#useTransport('recv', joined.recvTransport));
    if (joined.heartbeatTimeoutMs > 0) this.#signaling.keepAlive(joined.heartbeatTimeoutMs);
    clearInterval(this.#statsTimer);
    if (joined.clientStatsIntervalMs > 0) {
      this.#statsTimer = setInterval(
        () => void this.reportStats().catch(() => undefined),
        joined.clientStatsIntervalMs,
      );
    }
    for (const p of joined.peers as Array<{
      peerId: string;
      name: string;
      producers: Array<{ producerId: string; kind: 'audio' | 'video'; source?: string }>;
    }>) {
      this.peers.set(p.peerId, { peerId: p.peerId, name: p.name, tracks: new Map() });
      if (this.options.autoSubscribe !== false && this.can('subscribe')) {
        for (const pr of p.producers) void this.subscribe(p.peerId, pr.producerId).catch((e) => this.#emitError(e));
      }
    }
    this.#signaling.releaseNotifications();
  }

  /**
   * Rejoins after the connection dropped or the room's media server died: a
   * new connection, the same token (the gateway replaces the old session), the
   * same tracks published again, and the others' tracks received again.
   */
  async #rejoin(reason: string): Promise<void> {
    if (this.#rejoining || this.#left) return;
    this.#rejoining = true;
    this.#teardown({ keepTracks: true });
    this.#signaling.close();
    for (const [peerId, peer] of this.peers)
      for (const consumerId of peer.tracks.keys()) this.#emit('trackRemoved', { peerId, consumerId });
    const before = new Set(this.peers.keys());
    this.peers.clear();
    let last = reason;
    for (const [i, delay] of REJOIN_DELAYS_MS.entries()) {
      this.#emit('reconnecting', { attempt: i + 1, reason: last });
      await new Promise((r) => setTimeout(r, delay));
      if (this.#left) return;
      try {
        const { signaling, joined, url } = await this.#joinAnywhere();
        this.#signaling = signaling;
        this.#url = url;
        Object.assign(this.info, VigieCall.#infoOf(joined));
        // The device keeps the capabilities it loaded: a reopened room's router offers the same codecs
        // (src/media/codecs.ts).
        for (const id of before)
          if (!joined.peers.some((p: { peerId: string }) => p.peerId === id))
            this.#emit('peerLeft', { peerId: id, reason: 'left-while-reconnecting' });
        this.#enter(joined);
        for (const [source, { track, encodings }] of [...this.#published]) {
          if (track.readyState === 'live') await this.publish(source, track, encodings);
          else this.#published.delete(source);
        }
        this.#rejoining = false;
        this.#emit('reconnected', { peerId: this.info.peerId });
        return;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
        // A refused token (expired, revoked) will not get better by retrying.
        if (err instanceof SignalingError && ['UNAUTHORIZED', 'FORBIDDEN'].includes(err.code)) break;
      }
    }
    this.#rejoining = false;
    this.#left = true;
    this.#teardown();
    this.#emit('disconnected', { code: this.#signaling.closeInfo?.code ?? 1006, reason: `could not rejoin: ${last}` });
  }

  can(grant: 'publish' | 'subscribe' | 'record' | 'admin'): boolean {
    // As the server decides (hasGrant in src/auth/grants.ts): a moderator publishes and subscribes, but records only
    // with `record`.
    return (
      this.info.grants.includes(grant) ||
      (this.info.grants.includes('admin') && (grant === 'publish' || grant === 'subscribe'))
    );
  }

  on<K extends keyof VigieCallEvents>(event: K, listener: (e: VigieCallEvents[K]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Publishes the camera. By default as simulcast, so that the SFU can send
   * each receiver the layer its network and its layout call for (see
   * setPreferredLayers): as many layers as browsers encode at the captured
   * size, each half the resolution of the next.
   */
  async publishCamera(
    constraints: MediaTrackConstraints = { width: 640, height: 480 },
    options: { simulcast?: boolean } = {},
  ): Promise<msc.Producer> {
    const stream = await navigator.mediaDevices.getUserMedia({ video: constraints });
    const track = stream.getVideoTracks()[0]!;
    const encodings = options.simulcast === false ? undefined : simulcastEncodings(track.getSettings().height ?? 480);
    return this.publish('camera', track, encodings);
  }

  async publishMic(constraints: MediaTrackConstraints = {}): Promise<msc.Producer> {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: constraints });
    return this.publish('mic', stream.getAudioTracks()[0]!);
  }

  async publishScreen(): Promise<msc.Producer> {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
    const track = stream.getVideoTracks()[0]!;
    track.addEventListener('ended', () => void this.unpublish('screen'));
    return this.publish('screen', track);
  }

  async publish(
    source: Source,
    track: MediaStreamTrack,
    encodings?: RTCRtpEncodingParameters[],
  ): Promise<msc.Producer> {
    const transport = await this.#transport('send');
    // The SDK stops tracks itself (unpublish, leave), so that a rejoin can send the same ones again.
    const producer = await transport.produce({ track, encodings, appData: { source }, stopTracks: false });
    // Published while muted by a moderator (after a rejoin, say): the server told us during produce.
    if (this.mutedByModerator.has(producer.id)) producer.pause();
    this.producers.set(source, producer);
    this.#published.set(source, { track, encodings });
    return producer;
  }

  async unpublish(source: Source): Promise<void> {
    const producer = this.producers.get(source);
    if (!producer) return;
    this.producers.delete(source);
    this.#published.delete(source);
    producer.close();
    producer.track?.stop();
    await this.signaling.request('closeProducer', { producerId: producer.id }).catch(() => undefined);
  }

  async setPaused(source: Source, paused: boolean): Promise<void> {
    const producer = this.producers.get(source);
    if (!producer) return;
    if (!paused && this.mutedByModerator.has(producer.id))
      throw new SignalingError('FORBIDDEN', 'muted by a moderator', 'resumeProducer');
    if (paused) producer.pause();
    else producer.resume();
    try {
      await this.signaling.request(paused ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id });
    } catch (err) {
      // Refused (e.g. muted by a moderator meanwhile): the track stays as the server has it.
      if (!paused) producer.pause();
      throw err;
    }
  }

  subscribe(peerId: string, producerId: string): Promise<msc.Consumer> {
    // One consumer per producer: the join answer and a `newProducer` notification both name a producer made while
    // this join ran, and a second consumer would play the same voice twice.
    const existing = this.#subscriptions.get(producerId);
    if (existing) return existing;
    const subscribing = this.#subscribe(peerId, producerId);
    this.#subscriptions.set(producerId, subscribing);
    const forget = () => this.#subscriptions.get(producerId) === subscribing && this.#subscriptions.delete(producerId);
    subscribing.then((c) => (c.closed ? forget() : c.observer.once('close', forget)), forget);
    return subscribing;
  }

  async #subscribe(peerId: string, producerId: string): Promise<msc.Consumer> {
    const transport = await this.#transport('recv');
    const c = await this.signaling.request('consume', {
      transportId: transport.id,
      producerId,
      rtpCapabilities: this.device.rtpCapabilities,
    });
    const consumer = await transport.consume({
      id: c.consumerId,
      producerId,
      kind: c.kind,
      rtpParameters: c.rtpParameters,
      appData: { peerId },
    });
    this.consumers.set(consumer.id, consumer);
    await this.signaling.request('resumeConsumer', { consumerId: consumer.id });
    this.#watchFirstMedia(consumer);
    const peer = this.peers.get(peerId);
    const entry = {
      consumerId: consumer.id,
      producerId,
      kind: consumer.kind as 'audio' | 'video',
      source: c.source as string | undefined,
      track: consumer.track,
    };
    peer?.tracks.set(consumer.id, entry);
    this.#emit('trackAdded', { peerId, ...entry });
    return consumer;
  }

  /**
   * Asks the SFU for one layer of a simulcast or SVC track: 0 is the lowest
   * resolution. A thumbnail needs 0; the active speaker, the highest. The SFU
   * still goes lower when the network cannot carry the preferred layer.
   */
  async setPreferredLayers(consumerId: string, spatialLayer: number, temporalLayer?: number): Promise<void> {
    await this.signaling.request('setPreferredLayers', {
      consumerId,
      spatialLayer,
      ...(temporalLayer === undefined ? {} : { temporalLayer }),
    });
  }

  /** Stats of everything this participant sends and receives, as the browser sees it. */
  async getStats(): Promise<{ outbound: Record<string, any[]>; inbound: Record<string, any[]> }> {
    const outbound: Record<string, any[]> = {};
    const inbound: Record<string, any[]> = {};
    for (const [source, p] of this.producers) outbound[source] = [...(await p.getStats()).values()];
    for (const [id, c] of this.consumers) inbound[id] = [...(await c.getStats()).values()];
    return { outbound, inbound };
  }

  startRecording(): Promise<{ recordingId: string }> {
    return this.signaling.request('startRecording');
  }

  stopRecording(): Promise<{ recordingId: string }> {
    return this.signaling.request('stopRecording');
  }

  /** The participant's answer when the room requires consent to be recorded. */
  async setRecordingConsent(given: boolean): Promise<void> {
    await this.signaling.request('recordingConsent', { given });
  }

  /**
   * Sends the gateway a summary of this browser's getStats(): what it sends and
   * receives, and its candidate pair, so the server's and the client's view of
   * each track can be compared. Called every `clientStatsIntervalMs` after join.
   */
  async reportStats(): Promise<void> {
    const tracks: Record<string, unknown>[] = [];
    let pair: Record<string, unknown> | undefined;
    const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    const pickPair = (stats: Map<string, any>) => {
      if (pair) return;
      const transport = [...stats.values()].find((r) => r.type === 'transport' && r.selectedCandidatePairId);
      const cp = transport
        ? stats.get(transport.selectedCandidatePairId)
        : [...stats.values()].find((r) => r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded');
      if (!cp) return;
      const local = stats.get(cp.localCandidateId);
      pair = {
        candidateType: local?.candidateType,
        protocol: local?.candidateType === 'relay' ? (local?.relayProtocol ?? local?.protocol) : local?.protocol,
        rttMs: n(cp.currentRoundTripTime) !== undefined ? cp.currentRoundTripTime * 1000 : undefined,
        availableOutgoingBitrate: n(cp.availableOutgoingBitrate),
      };
    };
    /** Each RTP report of one producer or consumer, with the selected candidate pair picked up on the way. */
    const rtpReports = async (owner: msc.Producer | msc.Consumer, type: 'outbound-rtp' | 'inbound-rtp') => {
      const stats = (await owner.getStats()) as unknown as Map<string, any>;
      pickPair(stats);
      return { stats, reports: [...stats.values()].filter((r) => r.type === type) };
    };
    for (const [source, producer] of this.producers) {
      const { stats, reports } = await rtpReports(producer, 'outbound-rtp');
      const encodings = producer.rtpSender?.getParameters().encodings ?? [];
      // What the sender means to send, against which the server scores the video: the camera's settings, and the
      // factor each layer scales them down by. Not the media-source stats for a camera: when the encoder needs fewer
      // frames (short of CPU, or a maxFramerate), Chromium has the source deliver fewer, and those read as captured.
      // A screen, though, gives a frame when it changes (a still slide, one or two a second), below the rate it is
      // set to: its frame rate is what the source delivers.
      const capture = producer.kind === 'video' ? producer.track?.getSettings() : undefined;
      for (const r of reports) {
        const remote = [...stats.values()].find((x) => x.type === 'remote-inbound-rtp' && x.ssrc === r.ssrc);
        const encoding = encodings.length === 1 ? encodings[0] : encodings.find((e) => e.rid === r.rid);
        const delivered = source === 'screen' ? stats.get(r.mediaSourceId) : undefined;
        tracks.push({
          kind: r.kind,
          direction: 'outbound',
          producerId: producer.id,
          ssrc: r.ssrc,
          bytes: r.bytesSent ?? 0,
          packets: r.packetsSent ?? 0,
          packetsLost: remote?.packetsLost ?? 0,
          jitterMs: n(remote?.jitter) !== undefined ? remote.jitter * 1000 : undefined,
          framesPerSecond: n(r.framesPerSecond),
          frameWidth: n(r.frameWidth),
          frameHeight: n(r.frameHeight),
          qualityLimitationReason: LIMITATION_REASONS.has(r.qualityLimitationReason)
            ? r.qualityLimitationReason
            : undefined,
          captureFps: n(delivered ? delivered.framesPerSecond : capture?.frameRate),
          captureWidth: n(capture?.width),
          captureHeight: n(capture?.height),
          scaleResolutionDownBy: capture ? n(encoding?.scaleResolutionDownBy) : undefined,
        });
      }
    }
    for (const consumer of this.consumers.values()) {
      for (const r of (await rtpReports(consumer, 'inbound-rtp')).reports) {
        tracks.push({
          kind: r.kind,
          direction: 'inbound',
          consumerId: consumer.id,
          ssrc: r.ssrc,
          bytes: r.bytesReceived ?? 0,
          packets: r.packetsReceived ?? 0,
          packetsLost: r.packetsLost ?? 0,
          jitterMs: n(r.jitter) !== undefined ? r.jitter * 1000 : undefined,
          jitterBufferDelayMs:
            r.jitterBufferEmittedCount > 0 ? (r.jitterBufferDelay / r.jitterBufferEmittedCount) * 1000 : undefined,
          freezeCount: n(r.freezeCount),
          totalFreezesDurationMs: n(r.totalFreezesDuration) !== undefined ? r.totalFreezesDuration * 1000 : undefined,
          concealedSamples: n(r.concealedSamples),
          totalSamplesReceived: n(r.totalSamplesReceived),
          framesDecoded: n(r.framesDecoded),
          framesPerSecond: n(r.framesPerSecond),
          frameWidth: n(r.frameWidth),
          frameHeight: n(r.frameHeight),
        });
      }
    }
    if (tracks.length === 0) return;
    await this.signaling.request('clientStats', {
      tracks: tracks.slice(0, 64),
      ...(pair ? { candidatePair: pair } : {}),
    });
  }

  /**
   * Tells the gateway when this join decoded its first video frame and played its first audio (once per kind): the
   * last steps of its join funnel. Read from the receiver's stats (framesDecoded, totalSamplesReceived), polled
   * every FIRST_MEDIA_POLL_MS until media arrives, for at most FIRST_MEDIA_WAIT_MS; the gateway stamps the report
   * on arrival, so the client's clock does not matter.
   */
  #watchFirstMedia(consumer: msc.Consumer): void {
    const kind = consumer.kind;
    const signaling = this.#signaling;
    const reported = this.#firstMedia;
    const deadline = Date.now() + FIRST_MEDIA_WAIT_MS;
    const poll = async (): Promise<void> => {
      if (reported.has(kind) || consumer.closed || signaling !== this.#signaling || Date.now() > deadline) return;
      const stats = (await consumer.getStats().catch(() => undefined)) as Map<string, any> | undefined;
      const started = [...(stats?.values() ?? [])].some(
        (r) => r.type === 'inbound-rtp' && (kind === 'video' ? r.framesDecoded > 0 : r.totalSamplesReceived > 0),
      );
      if (!started) {
        setTimeout(() => void poll(), FIRST_MEDIA_POLL_MS);
        return;
      }
      if (reported.has(kind) || signaling !== this.#signaling) return;
      reported.add(kind);
      await signaling.request('mediaStarted', { consumerId: consumer.id }).catch(() => undefined);
    };
    void poll();
  }

  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    await this.signaling.request('leave').catch(() => undefined);
    this.#teardown();
    this.signaling.close();
  }

  #teardown({ keepTracks = false } = {}): void {
    clearInterval(this.#statsTimer);
    for (const p of this.producers.values()) {
      p.close();
      if (!keepTracks) p.track?.stop();
    }
    if (!keepTracks) this.#published.clear();
    for (const c of this.consumers.values()) c.close();
    this.producers.clear();
    this.consumers.clear();
    this.#subscriptions.clear();
    for (const ready of Object.values(this.#transports))
      void ready.then(
        (t) => t.close(),
        () => undefined,
      );
    this.#transports = {};
  }

  async #createTransport(direction: 'send' | 'recv'): Promise<msc.Transport> {
    return this.#useTransport(direction, await this.signaling.request('createWebRtcTransport', { direction }));
  }

  /** The browser's side of a transport the server created (on request, or with the join). */
  #useTransport(direction: 'send' | 'recv', t: ServerTransport): msc.Transport {
    const options = {
      id: t.transportId,
      iceParameters: t.iceParameters,
      iceCandidates: t.iceCandidates,
      dtlsParameters: t.dtlsParameters,
      iceServers: this.info.iceServers,
      iceTransportPolicy: (this.options.relayOnly ? 'relay' : 'all') as RTCIceTransportPolicy,
    };
    const transport =
      direction === 'send' ? this.device.createSendTransport(options) : this.device.createRecvTransport(options);
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      this.signaling.request('connectTransport', { transportId: transport.id, dtlsParameters }).then(callback, errback);
    });
    transport.on('connectionstatechange', (state) => {
      if (state === 'failed') {
        this.signaling
          .request('restartIce', { transportId: transport.id })
          .then(({ iceParameters }) => transport.restartIce({ iceParameters }))
          .catch((e) => this.#emitError(e));
      }
    });
    if (direction === 'send') {
      transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
        this.signaling
          .request('produce', { transportId: transport.id, kind, rtpParameters, source: appData.source })
          .then(({ producerId }) => callback({ id: producerId }), errback);
      });
    }
    return transport;
  }

  #transport(direction: 'send' | 'recv'): Promise<msc.Transport> {
    let ready = this.#transports[direction];
    if (!ready) {
      ready = this.#transports[direction] = this.#createTransport(direction);
      // A failed creation is not kept: the next publish or subscribe tries again.
      ready.catch(() => this.#transports[direction] === ready && delete this.#transports[direction]);
    }
    return ready;
  }

  #wire(): void {
    const s = this.signaling;
    s.on('peerJoined', ({ peerId, name }) => {
      this.peers.set(peerId, { peerId, name, tracks: new Map() });
      this.#emit('peerJoined', { peerId, name });
    });
    s.on('peerLeft', ({ peerId, reason }) => {
      this.peers.delete(peerId);
      this.#emit('peerLeft', { peerId, reason });
    });
    s.on('newProducer', ({ peerId, producerId }) => {
      if (this.options.autoSubscribe !== false && this.can('subscribe'))
        void this.subscribe(peerId, producerId).catch((e) => this.#emitError(e));
    });
    s.on('consumerClosed', ({ consumerId }) => {
      const consumer = this.consumers.get(consumerId);
      if (!consumer) return;
      consumer.close();
      this.consumers.delete(consumerId);
      const peerId = (consumer.appData as { peerId: string }).peerId;
      this.peers.get(peerId)?.tracks.delete(consumerId);
      this.#emit('trackRemoved', { peerId, consumerId });
    });
    s.on('activeSpeaker', ({ peerId }) => {
      this.activeSpeaker = peerId;
      this.#emit('activeSpeaker', { peerId });
    });
    s.on('roomClosed', ({ reason }) => {
      // A media server death is an accident: the room opens again on a live worker, and the call rejoins it.
      if (reason === 'worker-died' && this.options.reconnect !== false) return void this.#rejoin(reason);
      this.#teardown();
      this.peers.clear();
      this.#emit('roomClosed', { reason });
    });
    s.on('recordingStarted', ({ recordingId, consentRequired }) =>
      this.#emit('recording', { active: true, consentRequired: Boolean(consentRequired), recordingId }),
    );
    s.on('recordingStopped', ({ recordingId }) =>
      this.#emit('recording', { active: false, consentRequired: false, recordingId }),
    );
    s.on('mutedByServer', ({ producerId, kind }) => {
      this.mutedByModerator.add(producerId);
      for (const p of this.producers.values()) if (p.id === producerId) p.pause();
      this.#emit('mutedByServer', { producerId, kind });
    });
    s.on('unmutedByServer', ({ producerId, kind }) => {
      this.mutedByModerator.delete(producerId);
      this.#emit('unmutedByServer', { producerId, kind });
    });
    s.on('tokenRefreshed', ({ token, expiresAt }) => {
      this.options.token = token;
      this.#emit('tokenRefreshed', { expiresAt });
    });
    s.on('serverDraining', ({ reason, deadlineSeconds }) => this.#emit('serverDraining', { reason, deadlineSeconds }));
    s.on('removed', ({ reason }) => {
      this.#left = true;
      this.#teardown();
      this.peers.clear();
      this.#emit('removed', { reason });
    });
    s.on('error', (e) => this.#emit('error', e));
    s.on('close', (info) => {
      if (this.#left || this.#rejoining || s !== this.#signaling) return;
      if (this.options.reconnect !== false && !FINAL_CLOSE_CODES.has(info.code))
        void this.#rejoin(`connection closed (${info.code})`);
      else this.#emit('disconnected', info);
    });
  }

  #emitError(err: unknown): void {
    const e =
      err instanceof SignalingError
        ? { code: err.code, message: err.message }
        : { code: 'CLIENT', message: String((err as Error)?.message ?? err) };
    this.#emit('error', e);
  }

  #emit<K extends keyof VigieCallEvents>(event: K, data: VigieCallEvents[K]): void {
    for (const l of this.#listeners.get(event) ?? []) l(data);
  }
}
