import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import type { ClientStatsReport, ClientTrackStats, Peer, Room, Sfu } from '../media/index.js';
import type { CallEventRecorder } from '../telemetry/CallEventRecorder.js';
import type { CallKeys } from '../telemetry/rows.js';
import type { StatsCollector, TrackSample } from '../telemetry/StatsCollector.js';
import { watchMediaPlane } from '../telemetry/watchMediaPlane.js';
import type { WorkerHealth, WorkerHealthSample } from './WorkerHealth.js';

/** What a detector found wrong. */
export type IssueKind =
  | 'uplink_loss'
  | 'uplink_congestion'
  | 'downlink_loss'
  | 'one_way_media'
  | 'sfu_overload'
  | 'encoder_limited'
  | 'video_frozen'
  | 'turn_relay'
  | 'ice_restart_failed'
  | 'downlink_congestion'
  | 'uplink_jitter'
  | 'downlink_jitter'
  | 'high_rtt';

/** The figures that triggered an issue (numbers, or a reason as the browser gave it). */
export type Evidence = Record<string, number | string>;

/**
 * The rules' thresholds, documented in docs/operators.md ("Call diagnosis"). An issue starts after
 * `startSamples` bad samples in a row and ends after `endSamples` good ones: one bad second is not an issue,
 * and an issue that flickers around its threshold is one issue, not ten.
 */
export const DIAGNOSIS_RULES = {
  /** Packet loss at which a stream is bad, and below which it is good again (hysteresis). */
  lossStart: 0.05,
  lossEnd: 0.02,
  startSamples: 2,
  endSamples: 2,
  /** Samples in a row in which the publisher's track flows into the SFU but none of it reaches one subscriber. */
  oneWaySamples: 3,
  /**
   * A subscriber's browser reports, this many in a row, that it received no packet of a track while the SFU sent
   * it at least `oneWaySentPackets`: its network swallows what the SFU sends (the SFU's own figures cannot see
   * that, see docs/operators.md). The SFU's count comes from its samples, which may lag a report by one interval:
   * three reports, so a pause that lines up badly with one of them is not an issue.
   */
  oneWayReports: 3,
  oneWaySentPackets: 10,
  /**
   * Samples in a row in which a subscriber gets a lower simulcast layer than the publisher sends and the subscriber
   * asked for: the SFU's estimate of the subscriber's bandwidth holds it down. Longer than the others, as a call's
   * first seconds climb the layers while the estimate grows.
   */
  congestionSamples: 4,
  /**
   * A video publisher sends fewer simulcast layers than it has sent since it started, this many samples in a row:
   * its browser's estimate of its uplink no longer fits them (a browser adds layers as its estimate grows and drops
   * the top ones when it falls). Seen at the SFU's ingress, with or without the browser's own reports. A layer count
   * is one the publisher "has sent" once it held it this many samples in a row: while its estimate climbs in a call's
   * first seconds, a browser turns a layer on and off again (CI saw two layers for a moment at 280 kbit/s in all).
   */
  uplinkCongestionSamples: 3,
  /**
   * An encoder that says `bandwidth` while its browser's estimate still climbs from where it starts (Chromium: 300
   * kbit/s, the top layer off) is not held back: that counts once the encoder has said `none`, or this long (ms) after
   * the track's first report, for an uplink too narrow from the start.
   */
  encoderRampUpMs: 15_000,
  /**
   * A worker is strained when it answers a request on its channel this late (ms), or uses this share of its core;
   * healthy again below the second pair. While strained, loss on its tracks is not blamed on anyone's network.
   */
  workerLatencyStartMs: 250,
  workerCpuStart: 0.85,
  workerLatencyEndMs: 100,
  workerCpuEnd: 0.7,
  /**
   * Frozen video: a report in which the subscriber's browser counted new freezes that last this long together
   * (ms). Chromium counts a freeze from three frame intervals (300 ms at 10 fps): a clean call on a busy machine
   * has some of 400–500 ms, which nobody calls frozen video; a second is what a viewer notices.
   */
  freezeMs: 1000,
  /**
   * An ICE restart recovers when, this long after it (ms), the transport is connected and receives again. Until
   * then, the issue is open; it is checked again at each interval and ends when media comes back.
   */
  iceRestartRecoverMs: 10_000,
  /**
   * Interarrival jitter (RFC 3550 §6.4.1, ms) at which an audio stream is bad, and below which it is good again.
   * Audio only: its packets leave every 20 ms, so their spread is the path's, while a video frame's packets share one
   * timestamp and leave paced, so their spread is the sender's pacer as much as the path. Past 30 ms, a receiver's
   * jitter buffer grows (more delay) or late packets are lost (gaps in the sound).
   */
  jitterStartMs: 30,
  jitterEndMs: 15,
  /**
   * How old a subscriber's receiver report can be when a sample carries it (ms). A browser reports on what it receives
   * of audio every 5 s on average, each interval drawn between 2.5 and 7.5 s (libwebrtc's RTCP interval, randomized as
   * RFC 3550 §6.2 asks): its jitter can be the publisher's from seconds ago, after the publisher's uplink recovered.
   */
  receiverReportAgeMs: 7_500,
  /**
   * The round trip between the SFU and a participant (ms, from their receiver reports) at which their path is too
   * slow for conversation, and below which it is good again. ITU-T G.114 asks for at most 150 ms mouth to ear; one leg
   * of 400 ms round trip is already 200 ms one way, before the other participant's leg.
   */
  rttStartMs: 400,
  rttEndMs: 300,
} as const;

export interface QualityIssue {
  id: string;
  kind: IssueKind;
  room: Room;
  /**
   * Whose network or client it is: the publisher for an uplink issue, the subscriber for a downlink one; none when
   * the fault is the server's.
   */
  peer?: Peer;
  /** `both` for a route (a relayed connection carries both directions). */
  direction: 'uplink' | 'downlink' | 'server' | 'both';
  /** The track that showed it (a producer for uplink issues, a consumer for downlink ones); '' for the server. */
  trackId: string;
  /** The worker (its index on this node) of a server issue. */
  worker?: number;
  mediaKind: string;
  startedAt: number;
  /** The participants who suffered from it: the publisher's subscribers, or the one subscriber. */
  affected: Peer[];
  /** The figures that triggered it. */
  evidence: Evidence;
  /** When it ended; unset while it lasts. */
  endedAt?: number;
}

type IssueDraft = Omit<QualityIssue, 'id'>;

interface Tracked {
  bad: number;
  good: number;
  issue?: QualityIssue;
}

/**
 * Runs the detectors on every track sample of the stats collector and turns what they see into issues: one
 * `quality.issue` call event with its evidence when an issue starts, one `quality.resolved` when it ends (or its
 * track or participant goes). Watches the media plane and the collector; reaches into neither.
 */
export class CallDiagnosis {
  readonly observer = new EventEmitter<{ issue: [issue: QualityIssue]; resolved: [issue: QualityIssue] }>();
  /** By detector and track: `${kind}/${trackId}`. */
  readonly #state = new Map<string, Tracked>();
  /** The last sample of each producer, as its subscribers' samples are judged against it. */
  readonly #producers = new Map<string, TrackSample>();
  /** Each producer's sample before its last. */
  readonly #prior = new Map<string, TrackSample>();
  /** Since when (its first such sample) each audio producer has arrived at the SFU with jitter under the end mark. */
  readonly #steadySince = new Map<string, number>();
  /** Since when (its first such sample) each audio producer has arrived at the SFU with loss under the end mark. */
  readonly #lossFreeSince = new Map<string, number>();
  /** The most simulcast layers each video producer has sent at once, and its bitrate then (bit/s). */
  readonly #fullest = new Map<string, { layers: number; bitrateBps: number }>();
  /** Each video producer's current layer count and for how many samples in a row it has held it. */
  readonly #layerRun = new Map<string, { layers: number; samples: number }>();
  /** Each video producer's first client report, and whether its encoder has said it is unlimited since. */
  readonly #encoders = new Map<string, { firstAt: number; unlimited: boolean }>();
  /** By participant: the consumer whose samples judge their round trip (one per participant, not one per track). */
  readonly #rttTrack = new Map<string, string>();
  /** Each inbound video's freeze count and total freeze time at its last client report, by consumer. */
  readonly #freezes = new Map<string, { count: number; ms: number }>();
  /** What the SFU has sent on each consumer: its packets, summed from its samples, and how many samples. */
  readonly #sent = new Map<string, { packets: number; samples: number }>();
  /** At each consumer's last judged client report: what its browser had received, and the SFU had sent. */
  readonly #delivered = new Map<string, { received: number; sent: number; samples: number }>();
  /** Each worker's run of strained and healthy samples, by process id, and the issues it caused, by room. */
  readonly #workers = new Map<number, { bad: number; good: number; strained: boolean; issues: QualityIssue[] }>();
  /** Issues ended in the last minute: a freeze is counted when it ends, maybe after its cause did. */
  #recent: QualityIssue[] = [];
  #seq = 0;
  #active = false;
  #unwatch?: () => void;
  readonly #onSample = (s: TrackSample) => this.#sample(s);
  readonly #onWorker = (s: WorkerHealthSample) => this.#workerSample(s);

  constructor(
    private readonly sfu: Sfu,
    private readonly collector: StatsCollector,
    private readonly workers: WorkerHealth,
    private readonly events: CallEventRecorder,
    private readonly keys: CallKeys,
    /** `intervalMs`: the SFU's stats interval; `clientStatsIntervalMs`: how often each browser reports. */
    private readonly options: { intervalMs: number; clientStatsIntervalMs: number },
  ) {}

  start(): void {
    this.#active = true;
    this.collector.observer.on('tracksample', this.#onSample);
    this.workers.observer.on('sample', this.#onWorker);
    this.#unwatch = watchMediaPlane(this.sfu, {
      producerCreated: (_room, _peer, p) =>
        p.observer.once('close', () => {
          this.#producers.delete(p.id);
          this.#prior.delete(p.id);
          this.#steadySince.delete(p.id);
          this.#lossFreeSince.delete(p.id);
          this.#fullest.delete(p.id);
          this.#layerRun.delete(p.id);
          this.#encoders.delete(p.id);
          this.#endTrack(p.id, 'track closed');
        }),
      consumerCreated: (_room, _peer, c) =>
        c.observer.once('close', () => {
          this.#freezes.delete(c.id);
          this.#sent.delete(c.id);
          this.#delivered.delete(c.id);
          this.#endTrack(c.id, 'track closed');
        }),
      clientStats: (room, peer, report) => this.#clientStats(room, peer, report),
      peerLeft: (_room, peer) => {
        this.#rttTrack.delete(peer.id);
        this.#endTrack(peer.id, 'participant left');
      },
      iceRestarted: (room, peer, t) => void this.#watchIceRestart(room, peer, t),
    });
  }

  stop(): void {
    this.#active = false;
    this.collector.observer.off('tracksample', this.#onSample);
    this.workers.observer.off('sample', this.#onWorker);
    this.#unwatch?.();
  }

  /** The issues open now. */
  openIssues(): QualityIssue[] {
    return [
      ...[...this.#state.values()].flatMap((t) => (t.issue ? [t.issue] : [])),
      ...[...this.#workers.values()].flatMap((w) => w.issues),
    ];
  }

  #sample(s: TrackSample): void {
    if (this.#strained(s.room, s.peer)) return; // its issue is sfu_overload
    if (s.role === 'producer') {
      const last = this.#producers.get(s.trackId);
      if (last) this.#prior.set(s.trackId, last);
      this.#producers.set(s.trackId, s);
      if (s.paused) return;
      this.#judge(`uplink_loss/${s.trackId}`, {
        bad: s.lossFraction >= DIAGNOSIS_RULES.lossStart,
        good: s.lossFraction < DIAGNOSIS_RULES.lossEnd,
        issue: () => this.#trackIssue('uplink_loss', s),
      });
      this.#uplinkLayers(s);
      if (s.kind === 'audio') markSince(this.#lossFreeSince, s, s.lossFraction < DIAGNOSIS_RULES.lossEnd);
      if (s.kind === 'audio' && s.jitterMs !== undefined) {
        markSince(this.#steadySince, s, s.jitterMs < DIAGNOSIS_RULES.jitterEndMs);
        this.#judge(`uplink_jitter/${s.trackId}`, {
          bad: s.jitterMs >= DIAGNOSIS_RULES.jitterStartMs,
          good: s.jitterMs < DIAGNOSIS_RULES.jitterEndMs,
          issue: () => this.#trackIssue('uplink_jitter', s, { jitter_ms: Math.round(s.jitterMs!) }),
        });
      }
      return;
    }
    this.#roundTrip(s);
    // A consumer: what the SFU sent to one subscriber, against what it received from the publisher.
    const sent = this.#sent.get(s.trackId) ?? { packets: 0, samples: 0 };
    this.#sent.set(s.trackId, { packets: sent.packets + s.packets, samples: sent.samples + 1 });
    const upstream = this.#producers.get(s.producerId);
    if (s.paused || !upstream || upstream.paused) return;
    // Loss the publisher's uplink already had reaches every subscriber: it is not this subscriber's downlink.
    // mediasoup counts a producer's loss when it sends its own receiver report, every 0.5–1.5 s for video, so one
    // sample can miss a loss that the subscriber's report (every second) still carries: clean twice running. On audio,
    // the subscriber's report can be 7.5 s old (see `receiverReportAgeMs`): clean for that long.
    const prior = this.#prior.get(s.producerId);
    const upstreamLoss = Math.max(upstream.lossFraction, prior?.lossFraction ?? 0);
    const upstreamClean =
      upstreamLoss < DIAGNOSIS_RULES.lossEnd && (s.kind !== 'audio' || this.#heldFor(this.#lossFreeSince, s));
    this.#judge(`downlink_loss/${s.trackId}`, {
      bad: upstreamClean && s.lossFraction >= DIAGNOSIS_RULES.lossStart,
      good: s.lossFraction < DIAGNOSIS_RULES.lossEnd,
      issue: () => this.#trackIssue('downlink_loss', s, { producer_loss_pct: pct(upstreamLoss) }),
    });
    if (s.layers && upstream.activeStreams) {
      const top = upstream.activeStreams - 1;
      const wanted = Math.min(top, s.layers.preferred ?? top);
      const current = s.layers.current ?? -1;
      // After the publisher's own trouble (its path cut, its uplink narrowed) the SFU climbs back to the top layer
      // over seconds, for every subscriber at once: that is the publisher's issue, not this subscriber's downlink.
      const publisherTrouble = this.#upstreamIssue(
        s.room,
        upstream.peer,
        s.ts - DIAGNOSIS_RULES.congestionSamples * 2 * this.options.intervalMs,
      );
      this.#judge(`downlink_congestion/${s.trackId}`, {
        bad: current < wanted && !publisherTrouble,
        good: current >= wanted,
        needed: DIAGNOSIS_RULES.congestionSamples,
        issue: () =>
          this.#trackIssue('downlink_congestion', s, { layer: current, sender_top_layer: top, wanted_layer: wanted }),
      });
    }
    // What the subscriber reports is the jitter of the whole path from the publisher: theirs only when the SFU has
    // received the track steadily for longer than the subscriber's report can be old. Else the report can still carry
    // the publisher's own jitter, gone from the SFU's ingress since.
    const steadySince = this.#steadySince.get(s.producerId);
    if (s.kind === 'audio' && s.jitterMs !== undefined)
      this.#judge(`downlink_jitter/${s.trackId}`, {
        bad: this.#heldFor(this.#steadySince, s) && s.jitterMs >= DIAGNOSIS_RULES.jitterStartMs,
        good: s.jitterMs < DIAGNOSIS_RULES.jitterEndMs,
        issue: () =>
          this.#trackIssue('downlink_jitter', s, {
            jitter_ms: Math.round(s.jitterMs!),
            producer_jitter_ms: Math.round(upstream.jitterMs ?? 0),
            producer_steady_ms: s.ts - steadySince!,
          }),
      });
    // A simulcast consumer held below its lowest layer (the subscriber's bandwidth affords none) sends nothing as well:
    // that is its downlink congestion, judged above, not a second issue.
    const noLayer = s.layers !== undefined && (s.layers.current ?? -1) < 0;
    this.#judge(`one_way_media/${s.trackId}`, {
      bad: upstream.packets > 0 && s.packets === 0 && !noLayer,
      good: s.packets > 0,
      needed: DIAGNOSIS_RULES.oneWaySamples,
      issue: () => this.#trackIssue('one_way_media', s, { producer_packets: upstream.packets }),
    });
  }

  /**
   * A participant whose round trip to the SFU is too long for conversation, judged on one of their consumers (each
   * measures the same path): one issue per participant, whatever they receive. A round trip does not say which way
   * the delay is, so the issue is of both directions, and everyone who receives the participant suffers it too. A
   * participant who receives nothing is not judged (mediasoup measures a round trip only from a subscriber's receiver
   * reports).
   */
  #roundTrip(s: TrackSample): void {
    if (s.rttMs === undefined) return;
    const probe = this.#rttTrack.get(s.peer.id);
    if (probe !== undefined && probe !== s.trackId && s.peer.consumers.has(probe)) return;
    this.#rttTrack.set(s.peer.id, s.trackId);
    this.#judge(`high_rtt/${s.peer.id}`, {
      bad: s.rttMs >= DIAGNOSIS_RULES.rttStartMs,
      good: s.rttMs < DIAGNOSIS_RULES.rttEndMs,
      issue: () => ({
        ...this.#trackIssue('high_rtt', s, { rtt_ms: Math.round(s.rttMs!) }),
        direction: 'both',
        trackId: '',
        mediaKind: '',
        // The delay is in what they hear and see, and in what everyone hears and sees of them.
        affected: [
          s.peer,
          ...[...s.peer.producers.keys()].flatMap((id) => subscribersOf(s.room, id)).filter((p) => p !== s.peer),
        ].filter((p, i, all) => all.indexOf(p) === i),
      }),
    });
  }

  /**
   * A simulcast video publisher whose layers at the SFU's ingress fall below the most it has sent: its uplink has
   * become too narrow for them. A publisher sending nothing at all is not judged here (paused, or gone: other rules).
   */
  #uplinkLayers(s: TrackSample): void {
    const layers = s.activeStreams ?? 0;
    if (s.kind !== 'video' || layers === 0) return;
    const run = this.#layerRun.get(s.trackId);
    const held = run?.layers === layers ? run.samples + 1 : 1;
    this.#layerRun.set(s.trackId, { layers, samples: held });
    const fullest = this.#fullest.get(s.trackId);
    const steady = held >= DIAGNOSIS_RULES.uplinkCongestionSamples;
    if (
      steady &&
      (!fullest || layers > fullest.layers || (layers === fullest.layers && s.bitrateBps > fullest.bitrateBps))
    )
      this.#fullest.set(s.trackId, { layers, bitrateBps: s.bitrateBps });
    const most = this.#fullest.get(s.trackId);
    if (!most || most.layers < 2) return; // one stream: a layer count says nothing
    this.#judge(`uplink_congestion/${s.trackId}`, {
      bad: layers < most.layers,
      good: layers >= most.layers,
      needed: DIAGNOSIS_RULES.uplinkCongestionSamples,
      issue: () =>
        this.#trackIssue('uplink_congestion', s, {
          layers,
          sender_top_layers: most.layers,
          full_bitrate_kbps: Math.round(most.bitrateBps / 1000),
        }),
    });
  }

  /** What the participant's browser says: its encoder's limits, its frozen videos, its route (relay or not). */
  #clientStats(room: Room, peer: Peer, report: ClientStatsReport): void {
    const ts = Date.now();
    const base = { room, peer, startedAt: ts, mediaKind: 'video' };
    const limited = new Map<string, ClientTrackStats>();
    const strained = this.#strained(room, peer);
    for (const t of report.tracks) {
      if (t.direction === 'inbound' && t.consumerId && !strained) this.#delivery(room, peer, t, t.consumerId, ts);
      if (t.kind !== 'video') continue;
      if (t.direction === 'outbound' && t.producerId) {
        // A simulcast track reports each layer: the track is limited when one of its layers says so.
        const seen = limited.get(t.producerId);
        if (!seen || (seen.qualityLimitationReason ?? 'none') === 'none') limited.set(t.producerId, t);
      } else if (t.direction === 'inbound' && t.consumerId) {
        const prev = this.#freezes.get(t.consumerId);
        const now = { count: t.freezeCount ?? 0, ms: t.totalFreezesDurationMs ?? 0 };
        this.#freezes.set(t.consumerId, now);
        if (!prev) continue;
        const consumerId = t.consumerId;
        const publisher = room.ownerOf(peer.consumers.get(consumerId)?.producerId ?? '');
        const freeze = {
          ts,
          frozenMs: Math.max(0, now.ms - prev.ms),
          count: now.count - prev.count,
          fps: t.framesPerSecond,
        };
        const frozen = freeze.count > 0 && freeze.frozenMs >= DIAGNOSIS_RULES.freezeMs;
        const cause = () => this.#upstreamIssue(room, publisher, ts - freeze.frozenMs);
        const causeNow = frozen ? cause() : undefined;
        if (frozen && !causeNow) {
          // The viewer's report can come before what explains its freeze: the publisher's own report of its encoder,
          // or the SFU's samples of its uplink, each raised after `startSamples` of them. The freeze waits for those
          // once, then is judged with whatever cause there is by then.
          const waitMs =
            DIAGNOSIS_RULES.startSamples * Math.max(this.options.intervalMs, this.options.clientStatsIntervalMs);
          const later = () =>
            this.#active &&
            this.#freezes.has(consumerId) &&
            this.#judgeFreeze(room, peer, consumerId, publisher, { ...freeze, frozen, cause: cause() });
          setTimeout(later, waitMs).unref();
          continue;
        }
        this.#judgeFreeze(room, peer, consumerId, publisher, { ...freeze, frozen, cause: causeNow });
      }
    }
    for (const [producerId, t] of limited) {
      const reason = t.qualityLimitationReason ?? 'none';
      const encoder = this.#encoders.get(producerId) ?? { firstAt: ts, unlimited: false };
      if (reason === 'none') encoder.unlimited = true;
      this.#encoders.set(producerId, encoder);
      const rampingUp = !encoder.unlimited && ts - encoder.firstAt < DIAGNOSIS_RULES.encoderRampUpMs;
      this.#judge(`encoder_limited/${producerId}`, {
        bad: reason === 'cpu' || (reason === 'bandwidth' && !rampingUp),
        good: reason === 'none',
        issue: () => ({
          ...base,
          kind: 'encoder_limited',
          direction: 'uplink',
          trackId: producerId,
          affected: subscribersOf(room, producerId),
          evidence: {
            reason,
            fps: t.framesPerSecond ?? 0,
            width: t.frameWidth ?? 0,
            height: t.frameHeight ?? 0,
          },
        }),
      });
    }
    const route = report.candidatePair?.candidateType;
    if (route)
      this.#judge(`turn_relay/${peer.id}`, {
        bad: route === 'relay',
        good: route !== 'relay',
        needed: 1,
        ends: 1,
        issue: () => ({
          ...base,
          mediaKind: '',
          kind: 'turn_relay',
          direction: 'both',
          trackId: '',
          affected: [peer],
          evidence: { protocol: report.candidatePair?.protocol ?? '', rtt_ms: report.candidatePair?.rttMs ?? 0 },
        }),
      });
  }

  /**
   * One-way media the SFU cannot see: it sends a track to a subscriber whose browser reports receiving none of it.
   * A network that drops everything towards one subscriber leaves the SFU's figures clean (the subscriber's
   * receiver reports count loss only up to the last packet that arrived), so the browser's count is the evidence.
   */
  #delivery(room: Room, peer: Peer, t: ClientTrackStats, consumerId: string, ts: number): void {
    const prev = this.#delivered.get(consumerId);
    const sent = this.#sent.get(consumerId) ?? { packets: 0, samples: 0 };
    const now = { received: t.packets, sent: sent.packets, samples: sent.samples };
    if (prev && now.samples === prev.samples && now.received === prev.received) {
      // No SFU sample since the last report (the report came before the collector's next tick) and nothing received:
      // nothing to judge yet. The window stays open until a sample comes; a report judged "not bad" here would
      // reset the run of bad ones.
      return;
    }
    this.#delivered.set(consumerId, now);
    if (!prev) return;
    const sentSince = now.sent - prev.sent;
    const received = Math.max(0, now.received - prev.received);
    const publisher = room.ownerOf(peer.consumers.get(consumerId)?.producerId ?? '');
    this.#judge(`one_way_media:delivery/${consumerId}`, {
      bad: received === 0 && sentSince >= DIAGNOSIS_RULES.oneWaySentPackets,
      good: received > 0,
      needed: DIAGNOSIS_RULES.oneWayReports,
      issue: () => ({
        room,
        peer,
        startedAt: ts,
        kind: 'one_way_media',
        direction: 'downlink',
        trackId: consumerId,
        mediaKind: t.kind,
        affected: [peer],
        evidence: {
          sfu_sent_packets: sentSince,
          received_packets: received,
          ...(publisher ? { publisher: this.keys.participant(publisher) } : {}),
        },
      }),
    });
  }

  /**
   * A viewer's freeze, judged by its caller (`frozen`), and put down to `cause`: the issue of the publisher's side or
   * of the server that covered the time the video froze, if any.
   */
  #judgeFreeze(
    room: Room,
    peer: Peer,
    consumerId: string,
    publisher: Peer | undefined,
    freeze: { ts: number; frozenMs: number; count: number; fps?: number; frozen: boolean; cause?: QualityIssue },
  ): void {
    const { ts, frozenMs, cause } = freeze;
    this.#judge(`video_frozen/${consumerId}`, {
      bad: freeze.frozen,
      good: freeze.count === 0,
      needed: 1,
      // The viewer sees the freeze whoever caused it: the cause's side, or else the viewer's own downlink.
      issue: () => ({
        room,
        peer: cause ? cause.peer : peer,
        startedAt: ts,
        mediaKind: 'video',
        kind: 'video_frozen',
        direction: cause ? cause.direction : 'downlink',
        trackId: consumerId,
        affected: [peer],
        evidence: {
          freezes: freeze.count,
          frozen_ms: Math.round(frozenMs),
          fps: freeze.fps ?? 0,
          ...(publisher ? { publisher: this.keys.participant(publisher) } : {}),
          ...(cause ? { cause: cause.kind, cause_id: cause.id } : {}),
        },
      }),
    });
  }

  /** A strained worker loses and delays packets itself: loss on its tracks is its issue, not a network's. */
  #strained(room: Room, peer: Peer): boolean {
    return this.#workers.get(room.slotOf(peer).worker.pid)?.strained ?? false;
  }

  /**
   * After an ICE restart, whether media comes back: the transport connected and receiving again within
   * `iceRestartRecoverMs`, or an `ice_restart_failed` issue that ends when it does.
   */
  async #watchIceRestart(room: Room, peer: Peer, t: ms.WebRtcTransport): Promise<void> {
    const key = `ice_restart_failed/${t.id}`;
    const read = async () => (await t.getStats().catch(() => []))[0];
    const first = await read();
    if (!first) return;
    const restartedAt = Date.now();
    let received = first.bytesReceived;
    const check = async () => {
      if (t.closed || !this.#active) return;
      const now = await read();
      if (!now) return;
      const flowing = now.bytesReceived > received && (now.iceState === 'connected' || now.iceState === 'completed');
      received = now.bytesReceived;
      this.#judge(key, {
        bad: !flowing,
        good: flowing,
        needed: 1,
        ends: 1,
        issue: () => ({
          kind: 'ice_restart_failed',
          room,
          peer,
          direction: 'both',
          trackId: '',
          mediaKind: '',
          startedAt: Date.now(),
          affected: [peer],
          evidence: { ice_state: now.iceState, since_restart_ms: Date.now() - restartedAt },
        }),
      });
      // Watched until media flows again; a restart that recovered in time leaves no issue.
      if (this.#state.get(key)?.issue) setTimeout(check, this.options.intervalMs).unref();
      else this.#state.delete(key);
    };
    t.observer.once('close', () => this.#endTrack(t.id, 'transport closed'));
    setTimeout(check, DIAGNOSIS_RULES.iceRestartRecoverMs).unref();
  }

  /**
   * Whether the producer a subscriber's sample is judged against has been in the state `since` keeps (clean, steady)
   * for as long as the subscriber's report can be old: only then is what the report says the subscriber's own path.
   */
  #heldFor(since: Map<string, number>, s: TrackSample): boolean {
    const from = since.get(s.producerId);
    return from !== undefined && s.ts - from >= DIAGNOSIS_RULES.receiverReportAgeMs;
  }

  /** An issue of the publisher's side or of the server, open or ended after `since`, in the same call. */
  #upstreamIssue(room: Room, publisher: Peer | undefined, since: number): QualityIssue | undefined {
    const candidates = [...this.openIssues(), ...this.#recent];
    return candidates.find(
      (i) =>
        i.room === room &&
        (i.endedAt ?? Number.POSITIVE_INFINITY) >= since &&
        (i.direction === 'server' ||
          (publisher !== undefined && i.peer === publisher && (i.direction === 'uplink' || i.direction === 'both'))),
    );
  }

  /** An issue of one track, with the SFU's figures for it as evidence. */
  #trackIssue(kind: IssueKind, s: TrackSample, extra: Evidence = {}): IssueDraft {
    return {
      kind,
      room: s.room,
      peer: s.peer,
      direction: s.role === 'producer' ? 'uplink' : 'downlink',
      trackId: s.trackId,
      mediaKind: s.kind,
      startedAt: s.ts,
      affected: s.role === 'producer' ? subscribersOf(s.room, s.trackId) : [s.peer],
      evidence: {
        loss_pct: pct(s.lossFraction),
        packets: s.packets,
        bitrate_kbps: Math.round(s.bitrateBps / 1000),
        score: s.score,
        interval_ms: s.intervalMs,
        ...extra,
      },
    };
  }

  /**
   * One detector's verdict on one observation: counts bad and good observations in a row, and starts the issue
   * after `needed` bad ones, ends it after `ends` good ones.
   */
  #judge(
    key: string,
    v: { bad: boolean; good: boolean; needed?: number; ends?: number; issue: () => IssueDraft },
  ): void {
    const t = this.#state.get(key) ?? { bad: 0, good: 0 };
    this.#state.set(key, t);
    t.bad = v.bad ? t.bad + 1 : 0;
    t.good = v.good ? t.good + 1 : 0;
    if (!t.issue && t.bad >= (v.needed ?? DIAGNOSIS_RULES.startSamples)) {
      const draft = v.issue();
      t.issue = { id: `${draft.room.callId}/${++this.#seq}`, ...draft };
      this.#record('quality.issue', t.issue, '');
      this.observer.emit('issue', t.issue);
    } else if (t.issue && t.good >= (v.ends ?? DIAGNOSIS_RULES.endSamples)) {
      this.#end(key, t, 'recovered');
    }
  }

  #workerSample({ slot, ts, cpu = 0, latencyMs, loopBusyMs }: WorkerHealthSample): void {
    const pid = slot.worker.pid;
    const w = this.#workers.get(pid) ?? { bad: 0, good: 0, strained: false, issues: [] };
    this.#workers.set(pid, w);
    // What the gateway's own busy event loop added to the answer's wait is not the worker's lateness.
    const late = Math.max(0, latencyMs - loopBusyMs);
    const bad = late >= DIAGNOSIS_RULES.workerLatencyStartMs || cpu >= DIAGNOSIS_RULES.workerCpuStart;
    const good = late < DIAGNOSIS_RULES.workerLatencyEndMs && cpu < DIAGNOSIS_RULES.workerCpuEnd;
    w.bad = bad ? w.bad + 1 : 0;
    w.good = good ? w.good + 1 : 0;
    if (bad) w.strained = true;
    if (!w.issues.length && w.bad >= DIAGNOSIS_RULES.startSamples) {
      // One issue per call on the worker: each call's diagnosis tells its own participants what happened.
      for (const room of this.sfu.rooms.values()) {
        const affected = [...room.peers.values()].filter((p) => !p.remote && room.slotOf(p) === slot);
        if (!affected.length) continue;
        const issue: QualityIssue = {
          id: `${room.callId}/${++this.#seq}`,
          kind: 'sfu_overload',
          room,
          direction: 'server',
          trackId: '',
          worker: slot.index,
          mediaKind: '',
          startedAt: ts,
          affected,
          evidence: {
            cpu_pct: Math.round(cpu * 100),
            latency_ms: Math.round(latencyMs),
            loop_busy_ms: Math.round(loopBusyMs),
          },
        };
        w.issues.push(issue);
        this.#record('quality.issue', issue, '');
        this.observer.emit('issue', issue);
      }
    } else if (w.good >= DIAGNOSIS_RULES.endSamples) {
      w.strained = false;
      for (const issue of w.issues.splice(0)) {
        this.#record('quality.resolved', issue, 'recovered');
        this.observer.emit('resolved', issue);
      }
    }
  }

  #endTrack(trackId: string, reason: string): void {
    for (const [key, t] of this.#state) {
      if (!key.endsWith(`/${trackId}`)) continue;
      if (t.issue) this.#end(key, t, reason);
      this.#state.delete(key);
    }
  }

  #end(key: string, t: Tracked, reason: string): void {
    const issue = t.issue!;
    t.issue = undefined;
    t.bad = 0;
    this.#record('quality.resolved', issue, reason);
    this.observer.emit('resolved', issue);
    if (reason !== 'recovered') this.#state.delete(key);
  }

  #record(event: 'quality.issue' | 'quality.resolved', issue: QualityIssue, reason: string): void {
    const attrs: Record<string, string> = {
      issue_id: issue.id,
      issue: issue.kind,
      direction: issue.direction,
      kind: issue.mediaKind,
      affected: issue.affected.map((p) => this.keys.participant(p)).join(','),
    };
    for (const [k, v] of Object.entries(issue.evidence)) attrs[k] = String(v);
    if (event === 'quality.resolved') {
      const now = Date.now();
      issue.endedAt = now;
      this.#recent = [...this.#recent.filter((i) => i.endedAt! > now - 60_000), issue];
      attrs.duration_ms = String(now - issue.startedAt);
    }
    if (issue.worker !== undefined) attrs.worker = String(issue.worker);
    const objectId = issue.worker !== undefined ? `worker-${issue.worker}` : issue.trackId;
    this.events.record(issue.room, issue.peer, event, objectId, reason, attrs);
  }
}

const pct = (fraction: number) => Math.round(fraction * 1000) / 10;

/** Keeps, by track, the time of the first sample of a run in which `ok` held; a sample where it fails ends the run. */
function markSince(since: Map<string, number>, s: TrackSample, ok: boolean): void {
  if (!ok) since.delete(s.trackId);
  else if (!since.has(s.trackId)) since.set(s.trackId, s.ts);
}

/** The participants of the room who receive a producer (its consumers' owners). */
function subscribersOf(room: Room, producerId: string): Peer[] {
  return [...room.peers.values()].filter((p) => [...p.consumers.values()].some((c) => c.producerId === producerId));
}
