import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import type { Logger } from '../logging.js';
import type { ClientStatsReport, Peer, Room, Sfu } from '../media/index.js';
import type { ClickHouseWriter } from './ClickHouseWriter.js';
import { estimateMos, type VideoReference, videoQualityScore } from './quality.js';
import type { CallKeys } from './rows.js';
import { runLimited, watchMediaPlane } from './watchMediaPlane.js';

interface Counters {
  packets: number;
  bytes: number;
  lost: number;
  nack: number;
  pli: number;
  fir: number;
  at: number;
}

interface TrackEntry {
  role: 'producer' | 'consumer';
  obj: ms.Producer | ms.Consumer;
  room: Room;
  peer: Peer;
  codec: string;
  clockRate: number;
  source: string;
  producerId: string;
  createdAt: number;
  prev: Map<number, Counters>;
  /** All streams of the track together, at the last sample (for `tracksample`). */
  sampled?: { packets: number; lost: number; bytes: number; at: number };
  /** A `getStats()` of it is in flight: another pass skips it rather than read its counters out of order. */
  busy?: boolean;
  /** Sampled every focus interval until then (ms since the epoch): it showed trouble. */
  focusUntil: number;
}

interface TransportEntry {
  obj: ms.WebRtcTransport;
  room: Room;
  peer: Peer;
  direction: string;
  prev: { rx: number; tx: number; at: number };
}

/** What the participant's browser last said about one stream: a track, or one layer of a simulcast track. */
interface ClientView {
  fps?: number;
  width?: number;
  height?: number;
  freezeMs: number;
  totalFreezesMs?: number;
  /** The largest frame this stream has shown: the video score's reference when its sender says nothing of it. */
  largest?: { width: number; height: number };
  /**
   * The frame rates of the last 60 reports: their median is the reference frame rate when the sender says nothing
   * of it. Not the highest: a receiver catching up after a stall reports bursts of 30 fps and more.
   */
  recentFps: number[];
}

/** What a sender's browser says it means to send on a video producer, against which its video is scored. */
interface SenderIntent {
  capture: VideoReference;
  /** Each layer's scale-down factor, by SSRC. */
  scales: Map<number, number>;
}

interface PeerNetwork {
  candidateType?: string;
  protocol?: string;
  rttMs?: number;
}

/**
 * Samples every producer, consumer and WebRTC transport once per interval
 * (getStats() concurrently, with a bound) and writes one row per track or
 * transport, with deltas over the interval and quality scores. Also stores the
 * browsers' own reports (client stats), and uses what they know that the
 * server cannot see (frame rate, resolution, freezes, relay) to complete the
 * server rows.
 */
export interface AudioSample {
  room: Room;
  peer: Peer;
  trackId: string;
  direction: 'inbound' | 'outbound';
  mos: number;
  ts: number;
}

/** One track's figures over one sampling interval, as the SFU measured them: what call diagnosis reads. */
export interface TrackSample {
  room: Room;
  /** The participant whose track it is: the publisher of a producer, the subscriber of a consumer. */
  peer: Peer;
  role: 'producer' | 'consumer';
  kind: ms.MediaKind;
  trackId: string;
  producerId: string;
  /** A consumer's or producer's own pause (a consumer also stops when its producer pauses). */
  paused: boolean;
  ts: number;
  intervalMs: number;
  packets: number;
  lossFraction: number;
  bitrateBps: number;
  /** mediasoup's score of the stream (0–10). */
  score: number;
  /** A producer's streams that carried packets in the interval: the simulcast layers its sender sends now. */
  activeStreams?: number;
  /** A simulcast consumer's spatial layer now (none while no layer fits), and the one its subscriber asked for. */
  layers?: { current?: number; preferred?: number };
  /**
   * Interarrival jitter (RFC 3550 §6.4.1, ms), the highest of the track's streams: measured by the SFU on what it
   * receives for a producer; the subscriber's own, from its receiver reports, for a consumer. Unset until measured.
   */
  jitterMs?: number;
  /** A consumer's round trip between the SFU and its subscriber (ms), from the subscriber's receiver reports. */
  rttMs?: number;
}

export class StatsCollector {
  /** Each audio sample's MOS, for whoever watches call quality (alerts), and every track's sample (diagnosis). */
  readonly observer = new EventEmitter<{ audiosample: [sample: AudioSample]; tracksample: [sample: TrackSample] }>();
  readonly samplesTaken = { track_stats: 0, transport_stats: 0, client_stats: 0 };
  readonly #tracks = new Map<string, TrackEntry>();
  readonly #transports = new Map<string, TransportEntry>();
  /** By track id, then SSRC: each layer of a simulcast producer is its own stream. */
  readonly #clientView = new Map<string, Map<number, ClientView>>();
  /** By producer id. */
  readonly #intent = new Map<string, SenderIntent>();
  readonly #network = new WeakMap<Peer, PeerNetwork>();
  #timer?: NodeJS.Timeout;
  #focusTimer?: NodeJS.Timeout;
  #focusPass?: Promise<void>;
  /** The sampling pass running on each worker, by process id. */
  readonly #sampling = new Map<number, Promise<void>>();
  #unwatch?: () => void;
  /** The focus interval in use; 0 when focused sampling is off, or no finer than the interval itself. */
  readonly #focusMs: number;

  /** The finest interval at which this collector samples: the focus interval when it is on, else the interval. */
  get finestIntervalMs(): number {
    return this.#focusMs || this.options.intervalMs;
  }

  constructor(
    private readonly sfu: Sfu,
    private readonly writer: ClickHouseWriter,
    private readonly keys: CallKeys,
    private readonly options: {
      intervalMs: number;
      concurrency: number;
      /** 0: off. Otherwise the interval at which tracks that show trouble are sampled (see `#focus`). */
      focusIntervalMs?: number;
    },
    private readonly log: Logger,
  ) {
    const focus = options.focusIntervalMs ?? 0;
    this.#focusMs = focus > 0 && focus < options.intervalMs ? focus : 0;
  }

  start(): void {
    this.#unwatch = watchMediaPlane(this.sfu, {
      producerCreated: (room, peer, p) => this.#addTrack('producer', p, room, peer, p.rtpParameters, p.id),
      consumerCreated: (room, peer, c) => this.#addTrack('consumer', c, room, peer, c.rtpParameters, c.producerId),
      transportCreated: (room, peer, t) => {
        if (!('iceState' in t)) return;
        const entry: TransportEntry = {
          obj: t as ms.WebRtcTransport,
          room,
          peer,
          direction: String(t.appData.direction ?? ''),
          prev: { rx: 0, tx: 0, at: Date.now() },
        };
        this.#transports.set(t.id, entry);
        t.observer.once('close', () => this.#transports.delete(t.id));
      },
      clientStats: (room, peer, report) => this.#onClientStats(room, peer, report),
    });
    this.#timer = setInterval(() => this.#tick(), this.options.intervalMs);
    this.#timer.unref();
    if (this.#focusMs > 0) {
      this.#focusTimer = setInterval(() => this.#focusTick(), this.#focusMs);
      this.#focusTimer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    clearInterval(this.#focusTimer);
    this.#unwatch?.();
    await Promise.all([...this.#sampling.values(), this.#focusPass]);
  }

  /** How long a track stays in focus after its last sign of trouble: enough samples for an issue to end. */
  get #focusHoldMs(): number {
    return 10 * this.#focusMs;
  }

  /**
   * Puts a track in focus: sampled every focus interval, not only every interval, for a while. Every track is
   * sampled at the interval (5 s by default) for the rows the dashboards read; each `getStats()` costs the gateway
   * tens of microseconds of CPU, so sampling them all every second costs more than the SFU itself spends forwarding
   * (bench/README.md, "Telemetry overhead"). The worker already tells, for free, which track is in trouble: it
   * emits a score (0–10) when the loss it measures moves it, and a consumer's layer change. Those tracks, and the
   * producer a consumer's figures are judged against, are sampled at the finer interval, so that the diagnosis sees
   * an issue, and its end, within seconds.
   */
  #focus(e: TrackEntry): void {
    const until = Date.now() + this.#focusHoldMs;
    e.focusUntil = until;
    if (e.role === 'consumer') {
      const upstream = this.#tracks.get(e.producerId);
      if (upstream) upstream.focusUntil = Math.max(upstream.focusUntil, until);
    }
  }

  #focusTick(): void {
    if (this.#focusPass) return;
    const now = Date.now();
    const due = this.#focusMs * 0.75;
    const tasks = [...this.#tracks.values()]
      .filter((e) => e.focusUntil > now && now - (e.sampled?.at ?? 0) >= due)
      .map((e) => () => this.#sampleTrack(e));
    if (!tasks.length) return;
    this.#focusPass = runLimited(tasks, this.options.concurrency)
      .catch((err) => this.log.error({ err }, 'focused stats sampling failed'))
      .finally(() => (this.#focusPass = undefined));
  }

  /** One sampling pass over everything tracked. */
  async sampleOnce(): Promise<void> {
    await Promise.all([...this.#tasksByWorker().values()].map((tasks) => runLimited(tasks, this.options.concurrency)));
  }

  /**
   * Each worker is sampled on its own: a worker starved of CPU answers its `getStats()` seconds late, and a pass
   * that waited for it would leave every call on every other worker unsampled (and undiagnosed) meanwhile. A worker
   * whose previous pass still runs skips this tick.
   */
  #tick(): void {
    for (const [pid, tasks] of this.#tasksByWorker()) {
      if (this.#sampling.has(pid)) {
        this.log.warn(
          { worker: pid, intervalMs: this.options.intervalMs },
          "a worker's stats sampling still running at the next tick; tick skipped for it",
        );
        continue;
      }
      const pass = runLimited(tasks, this.options.concurrency)
        .catch((err) => this.log.error({ err, worker: pid }, 'stats sampling failed'))
        .finally(() => this.#sampling.delete(pid));
      this.#sampling.set(pid, pass);
    }
  }

  /** What to sample, by the process id of the worker that holds it. */
  #tasksByWorker(): Map<number, Array<() => Promise<void>>> {
    const byWorker = new Map<number, Array<() => Promise<void>>>();
    const add = (room: Room, peer: Peer, task: () => Promise<void>) => {
      const pid = room.slotOf(peer).worker.pid;
      const tasks = byWorker.get(pid) ?? [];
      tasks.push(task);
      byWorker.set(pid, tasks);
    };
    for (const e of this.#tracks.values()) add(e.room, e.peer, () => this.#sampleTrack(e));
    for (const e of this.#transports.values()) add(e.room, e.peer, () => this.#sampleTransport(e));
    return byWorker;
  }

  #addTrack(
    role: TrackEntry['role'],
    obj: ms.Producer | ms.Consumer,
    room: Room,
    peer: Peer,
    rtp: ms.RtpParameters,
    producerId: string,
  ): void {
    const codec = rtp.codecs[0];
    const source =
      role === 'producer'
        ? String(obj.appData.source ?? '')
        : String(room.ownerOf(producerId)?.producers.get(producerId)?.appData.source ?? '');
    const entry: TrackEntry = {
      role,
      obj,
      room,
      peer,
      codec: codec?.mimeType ?? '',
      clockRate: codec?.clockRate ?? 90000,
      source,
      producerId,
      createdAt: Date.now(),
      prev: new Map(),
      focusUntil: 0,
    };
    this.#tracks.set(obj.id, entry);
    if (this.#focusMs > 0) {
      // The worker's own signs of trouble (see #focus); a score of 10 is a clean stream.
      if (role === 'producer')
        (obj as ms.Producer).observer.on('score', (scores) => {
          if (scores.some((sc) => sc.score < 10)) this.#focus(entry);
        });
      else {
        const consumer = obj as ms.Consumer;
        consumer.observer.on('score', (sc) => {
          if (sc.score < 10 || sc.producerScore < 10) this.#focus(entry);
        });
        consumer.observer.on('layerschange', () => this.#focus(entry));
      }
    }
    (obj.observer as ms.ProducerObserver).once('close', () => {
      this.#tracks.delete(obj.id);
      this.#clientView.delete(obj.id);
      if (role === 'producer') this.#intent.delete(obj.id);
    });
  }

  async #sampleTrack(e: TrackEntry): Promise<void> {
    if (e.busy) return;
    let stats: Array<ms.ProducerStat | ms.ConsumerStat>;
    e.busy = true;
    try {
      stats = await e.obj.getStats();
    } catch {
      return; // closed between listing and sampling
    } finally {
      e.busy = false;
    }
    const now = Date.now();
    const wanted = e.role === 'producer' ? 'inbound-rtp' : 'outbound-rtp';
    const net = this.#network.get(e.peer);
    const views = this.#clientView.get(e.obj.id);
    const layers = e.role === 'consumer' ? (e.obj as ms.Consumer).currentLayers : undefined;
    // A simulcast producer reports one stream per encoding; its layer is the encoding's position (lowest first).
    const encodings = e.role === 'producer' ? ((e.obj as ms.Producer).rtpParameters.encodings ?? []) : [];
    const producerLayer = (st: ms.ProducerStat | ms.ConsumerStat) =>
      encodings.length > 1
        ? encodings.findIndex((enc) => (st.rid !== undefined && enc.rid === st.rid) || enc.ssrc === st.ssrc)
        : -1;
    const direction = e.role === 'producer' ? 'inbound' : 'outbound';
    const keys = this.keys.of(e.room, e.peer);
    let activeStreams = 0;
    for (const s of stats) {
      if (s.type !== wanted) continue;
      const prev = e.prev.get(s.ssrc) ?? { packets: 0, bytes: 0, lost: 0, nack: 0, pli: 0, fir: 0, at: e.createdAt };
      if (s.packetCount > prev.packets) activeStreams++;
      const cur: Counters = {
        packets: s.packetCount,
        bytes: s.byteCount,
        lost: s.packetsLost,
        nack: s.nackCount,
        pli: s.pliCount,
        fir: s.firCount,
        at: now,
      };
      e.prev.set(s.ssrc, cur);
      const view = views?.get(s.ssrc);
      const intervalMs = Math.max(1, now - prev.at);
      const packets = Math.max(0, cur.packets - prev.packets);
      const lost = Math.max(0, cur.lost - prev.lost);
      const lossFraction = packets + lost > 0 ? lost / (packets + lost) : 0;
      const jitterMs = s.jitter > 0 ? (s.jitter / e.clockRate) * 1000 : e.role === 'producer' ? 0 : null;
      // mediasoup says 0 until a receiver report answers one of its sender reports (for a producer's stream, until the
      // sender answers in RTCP XR, which browsers and ffmpeg do not): not measured, rather than a perfect path.
      const measuredRtt = s.roundTripTime ? s.roundTripTime : undefined;
      const rttMs = measuredRtt ?? net?.rttMs ?? null;
      if (e.role === 'consumer' && measuredRtt !== undefined && net) net.rttMs = measuredRtt;
      const isAudio = e.obj.kind === 'audio';
      const mos = isAudio ? estimateMos({ lossFraction, jitterMs: jitterMs ?? 0, rttMs: rttMs ?? 0 }) : null;
      if (mos !== null)
        this.observer.emit('audiosample', { room: e.room, peer: e.peer, trackId: e.obj.id, direction, mos, ts: now });
      this.writer.write('track_stats', {
        ts: now,
        ...keys,
        track_id: e.obj.id,
        producer_id: e.producerId,
        kind: e.obj.kind,
        direction,
        source: e.source,
        codec: e.codec,
        ssrc: s.ssrc,
        spatial_layer: layers?.spatialLayer ?? producerLayer(s),
        temporal_layer: layers?.temporalLayer ?? -1,
        interval_ms: intervalMs,
        bitrate_bps: ((cur.bytes - prev.bytes) * 8 * 1000) / intervalMs,
        packets,
        bytes: Math.max(0, cur.bytes - prev.bytes),
        packets_lost: cur.lost - prev.lost,
        loss_fraction: lossFraction,
        jitter_ms: jitterMs,
        rtt_ms: rttMs,
        nack_count: Math.max(0, cur.nack - prev.nack),
        pli_count: Math.max(0, cur.pli - prev.pli),
        fir_count: Math.max(0, cur.fir - prev.fir),
        score: s.score,
        frame_rate: isAudio ? null : (view?.fps ?? null),
        frame_width: isAudio ? null : (view?.width ?? null),
        frame_height: isAudio ? null : (view?.height ?? null),
        mos,
        video_quality: isAudio ? null : this.#videoQuality(e, s.ssrc, view, intervalMs, lossFraction),
      });
      this.samplesTaken.track_stats++;
      if (view) view.freezeMs = 0;
    }
    this.#emitTrackSample(e, stats, now, activeStreams);
  }

  /**
   * One sample per track and interval: a simulcast producer's streams are summed, as what matters to diagnosis is
   * what the participant sent, whatever the layer.
   */
  #emitTrackSample(
    e: TrackEntry,
    stats: Array<ms.ProducerStat | ms.ConsumerStat>,
    now: number,
    activeStreams: number,
  ): void {
    const wanted = e.role === 'producer' ? 'inbound-rtp' : 'outbound-rtp';
    const streams = stats.filter((s) => s.type === wanted);
    const prev = e.sampled ?? { packets: 0, lost: 0, bytes: 0, at: e.createdAt };
    const cur = { packets: 0, lost: 0, bytes: 0, at: now };
    let score = 10;
    let jitter = 0;
    let rttMs = 0;
    for (const s of streams) {
      cur.packets += s.packetCount;
      cur.lost += s.packetsLost;
      cur.bytes += s.byteCount;
      score = Math.min(score, s.score);
      jitter = Math.max(jitter, s.jitter);
      rttMs = Math.max(rttMs, s.roundTripTime ?? 0);
    }
    e.sampled = cur;
    const packets = Math.max(0, cur.packets - prev.packets);
    const lost = Math.max(0, cur.lost - prev.lost);
    const intervalMs = Math.max(1, now - prev.at);
    const obj = e.obj as ms.Consumer;
    const lossFraction = packets + lost > 0 ? lost / (packets + lost) : 0;
    // Still in trouble: stays in focus for as long as it lasts, not only after the worker's last score change.
    const paused = isPaused(e);
    // A consumer held below the layer asked for; not a paused one, which has no layer and sends nothing on purpose.
    const below =
      e.role === 'consumer' &&
      !paused &&
      obj.preferredLayers !== undefined &&
      (obj.currentLayers?.spatialLayer ?? -1) < obj.preferredLayers.spatialLayer;
    if (this.#focusMs > 0 && !paused && (lossFraction > 0 || score < 10 || below)) this.#focus(e);
    this.observer.emit('tracksample', {
      room: e.room,
      peer: e.peer,
      role: e.role,
      kind: e.obj.kind,
      trackId: e.obj.id,
      producerId: e.producerId,
      paused,
      ts: now,
      intervalMs,
      packets,
      lossFraction,
      bitrateBps: (Math.max(0, cur.bytes - prev.bytes) * 8 * 1000) / intervalMs,
      score: streams.length ? score : 0,
      ...(jitter > 0 ? { jitterMs: (jitter / e.clockRate) * 1000 } : {}),
      ...(rttMs > 0 ? { rttMs } : {}),
      ...(e.role === 'producer'
        ? { activeStreams }
        : obj.type === 'simulcast' || obj.type === 'svc'
          ? { layers: { current: obj.currentLayers?.spatialLayer, preferred: obj.preferredLayers?.spatialLayer } }
          : {}),
    });
  }

  /**
   * The video score of one stream over the interval, against what its sender means to send (src/telemetry/quality.ts):
   * for a viewer, the sender's top layer; for the sender's own upload, this layer. Null when there is nothing to judge:
   * no browser report yet, or a paused track.
   */
  #videoQuality(e: TrackEntry, ssrc: number, view: ClientView | undefined, intervalMs: number, lossFraction: number) {
    if (!view?.width || !view.height || view.fps === undefined || !view.largest) return null;
    if (isPaused(e)) return null;
    const intent = this.#intent.get(e.producerId);
    const scale = intent && (e.role === 'producer' ? intent.scales.get(ssrc) : Math.min(...intent.scales.values()));
    const reference = intent
      ? {
          width: intent.capture.width / (scale ?? 1),
          height: intent.capture.height / (scale ?? 1),
          fps: intent.capture.fps,
        }
      : { ...view.largest, fps: median(view.recentFps) };
    return videoQualityScore({
      width: view.width,
      height: view.height,
      fps: view.fps,
      reference,
      freezeMs: view.freezeMs,
      intervalMs,
      lossFraction,
    });
  }

  async #sampleTransport(e: TransportEntry): Promise<void> {
    let s: ms.WebRtcTransportStat | undefined;
    try {
      [s] = await e.obj.getStats();
    } catch {
      return;
    }
    if (!s) return;
    const now = Date.now();
    const intervalMs = Math.max(1, now - e.prev.at);
    const rx = Math.max(0, s.bytesReceived - e.prev.rx);
    const tx = Math.max(0, s.bytesSent - e.prev.tx);
    e.prev = { rx: s.bytesReceived, tx: s.bytesSent, at: now };
    const net = this.#network.get(e.peer);
    this.writer.write('transport_stats', {
      ts: now,
      ...this.keys.of(e.room, e.peer),
      transport_id: e.obj.id,
      direction: e.direction,
      ice_state: s.iceState,
      dtls_state: s.dtlsState,
      protocol: s.iceSelectedTuple?.protocol ?? '',
      candidate_type: net?.candidateType ?? '',
      interval_ms: intervalMs,
      bytes_received: rx,
      bytes_sent: tx,
      recv_bitrate_bps: (rx * 8 * 1000) / intervalMs,
      send_bitrate_bps: (tx * 8 * 1000) / intervalMs,
      available_outgoing_bitrate: s.availableOutgoingBitrate ?? null,
      rtt_ms: net?.rttMs ?? null,
    });
    this.samplesTaken.transport_stats++;
  }

  #onClientStats(room: Room, peer: Peer, report: ClientStatsReport): void {
    const now = Date.now();
    const key = this.keys.of(room, peer);
    const pair = report.candidatePair;
    if (pair) {
      const net = this.#network.get(peer) ?? {};
      if (pair.candidateType) net.candidateType = pair.candidateType;
      if (pair.protocol) net.protocol = pair.protocol;
      if (pair.rttMs !== undefined) net.rttMs = pair.rttMs;
      this.#network.set(peer, net);
    }
    for (const t of report.tracks) {
      const trackId = t.direction === 'outbound' ? t.producerId! : t.consumerId!;
      const views = this.#clientView.get(trackId) ?? new Map<number, ClientView>();
      this.#clientView.set(trackId, views);
      const view = views.get(t.ssrc) ?? { freezeMs: 0, recentFps: [] };
      views.set(t.ssrc, view);
      if (t.totalFreezesDurationMs !== undefined) {
        view.freezeMs += Math.max(0, t.totalFreezesDurationMs - (view.totalFreezesMs ?? t.totalFreezesDurationMs));
        view.totalFreezesMs = t.totalFreezesDurationMs;
      }
      view.fps = t.framesPerSecond ?? view.fps;
      view.width = t.frameWidth ?? view.width;
      view.height = t.frameHeight ?? view.height;
      if (t.framesPerSecond !== undefined) view.recentFps = [...view.recentFps.slice(-59), t.framesPerSecond];
      if (
        view.width &&
        view.height &&
        view.width * view.height > (view.largest?.width ?? 0) * (view.largest?.height ?? 0)
      )
        view.largest = { width: view.width, height: view.height };
      if (t.direction === 'outbound' && t.captureFps && t.captureWidth && t.captureHeight) {
        const intent = this.#intent.get(trackId) ?? { capture: { width: 0, height: 0, fps: 0 }, scales: new Map() };
        intent.capture = { width: t.captureWidth, height: t.captureHeight, fps: t.captureFps };
        intent.scales.set(t.ssrc, t.scaleResolutionDownBy ?? 1);
        this.#intent.set(trackId, intent);
      }
      const producerId =
        t.direction === 'outbound' ? t.producerId! : (peer.consumers.get(t.consumerId!)?.producerId ?? '');
      this.writer.write('client_stats', {
        ts: now,
        ...key,
        kind: t.kind,
        direction: t.direction,
        producer_id: producerId,
        consumer_id: t.consumerId ?? '',
        ssrc: t.ssrc,
        bytes: t.bytes,
        packets: t.packets,
        packets_lost: t.packetsLost,
        jitter_ms: t.jitterMs ?? null,
        jitter_buffer_delay_ms: t.jitterBufferDelayMs ?? null,
        freeze_count: t.freezeCount ?? null,
        total_freezes_duration_ms: t.totalFreezesDurationMs ?? null,
        concealed_samples: t.concealedSamples ?? null,
        total_samples_received: t.totalSamplesReceived ?? null,
        frames_decoded: t.framesDecoded ?? null,
        frames_per_second: t.framesPerSecond ?? null,
        frame_width: t.frameWidth ?? null,
        frame_height: t.frameHeight ?? null,
        candidate_type: pair?.candidateType ?? '',
        protocol: pair?.protocol ?? '',
        rtt_ms: pair?.rttMs ?? null,
        available_outgoing_bitrate: pair?.availableOutgoingBitrate ?? null,
      });
      this.samplesTaken.client_stats++;
    }
  }
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
}

/** A track that sends nothing on purpose: paused itself, or a consumer of a paused producer. */
function isPaused(e: TrackEntry): boolean {
  return e.obj.paused || (e.role === 'consumer' && (e.obj as ms.Consumer).producerPaused);
}
