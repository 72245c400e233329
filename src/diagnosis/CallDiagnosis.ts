import { EventEmitter } from 'node:events';
import type { Peer, Room, Sfu } from '../media/index.js';
import type { CallEventRecorder } from '../telemetry/CallEventRecorder.js';
import type { CallKeys } from '../telemetry/rows.js';
import type { StatsCollector, TrackSample } from '../telemetry/StatsCollector.js';
import { watchMediaPlane } from '../telemetry/watchMediaPlane.js';

/** What a detector found wrong. */
export type IssueKind = 'uplink_loss' | 'downlink_loss' | 'one_way_media';

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
} as const;

export interface QualityIssue {
  id: string;
  kind: IssueKind;
  /** Whose network or client it is: the publisher for an uplink issue, the subscriber for a downlink one. */
  room: Room;
  peer: Peer;
  direction: 'uplink' | 'downlink';
  /** The track that showed it (a producer for uplink issues, a consumer for downlink ones). */
  trackId: string;
  mediaKind: string;
  startedAt: number;
  /** The participants who suffered from it: the publisher's subscribers, or the one subscriber. */
  affected: Peer[];
  /** The figures that triggered it. */
  evidence: Record<string, number>;
}

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
  #seq = 0;
  #unwatch?: () => void;
  readonly #onSample = (s: TrackSample) => this.#sample(s);

  constructor(
    private readonly sfu: Sfu,
    private readonly collector: StatsCollector,
    private readonly events: CallEventRecorder,
    private readonly keys: CallKeys,
  ) {}

  start(): void {
    this.collector.observer.on('tracksample', this.#onSample);
    this.#unwatch = watchMediaPlane(this.sfu, {
      producerCreated: (_room, _peer, p) =>
        p.observer.once('close', () => {
          this.#producers.delete(p.id);
          this.#endTrack(p.id, 'track closed');
        }),
      consumerCreated: (_room, _peer, c) => c.observer.once('close', () => this.#endTrack(c.id, 'track closed')),
    });
  }

  stop(): void {
    this.collector.observer.off('tracksample', this.#onSample);
    this.#unwatch?.();
  }

  /** The issues open now. */
  openIssues(): QualityIssue[] {
    return [...this.#state.values()].flatMap((t) => (t.issue ? [t.issue] : []));
  }

  #sample(s: TrackSample): void {
    if (s.role === 'producer') {
      this.#producers.set(s.trackId, s);
      if (s.paused) return;
      this.#judge(
        'uplink_loss',
        s,
        s.lossFraction >= DIAGNOSIS_RULES.lossStart,
        s.lossFraction < DIAGNOSIS_RULES.lossEnd,
      );
      return;
    }
    // A consumer: what the SFU sent to one subscriber, against what it received from the publisher.
    const upstream = this.#producers.get(s.producerId);
    if (s.paused || !upstream || upstream.paused) return;
    // Loss the publisher's uplink already had reaches every subscriber: it is not this subscriber's downlink.
    const upstreamClean = upstream.lossFraction < DIAGNOSIS_RULES.lossEnd;
    this.#judge(
      'downlink_loss',
      s,
      upstreamClean && s.lossFraction >= DIAGNOSIS_RULES.lossStart,
      s.lossFraction < DIAGNOSIS_RULES.lossEnd,
      { producer_loss_pct: pct(upstream.lossFraction) },
    );
    this.#judge('one_way_media', s, upstream.packets > 0 && s.packets === 0, s.packets > 0, {
      producer_packets: upstream.packets,
    });
  }

  /** One detector's verdict on one sample: counts bad and good samples in a row, and starts or ends the issue. */
  #judge(kind: IssueKind, s: TrackSample, bad: boolean, good: boolean, extra: Record<string, number> = {}): void {
    const key = `${kind}/${s.trackId}`;
    const t = this.#state.get(key) ?? { bad: 0, good: 0 };
    this.#state.set(key, t);
    t.bad = bad ? t.bad + 1 : 0;
    t.good = good ? t.good + 1 : 0;
    const needed = kind === 'one_way_media' ? DIAGNOSIS_RULES.oneWaySamples : DIAGNOSIS_RULES.startSamples;
    if (!t.issue && t.bad >= needed) {
      t.issue = {
        id: `${s.room.callId}/${++this.#seq}`,
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
      this.#record('quality.issue', t.issue, '');
      this.observer.emit('issue', t.issue);
    } else if (t.issue && t.good >= DIAGNOSIS_RULES.endSamples) {
      this.#end(key, t, 'recovered');
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
    if (event === 'quality.resolved') attrs.duration_ms = String(Date.now() - issue.startedAt);
    this.events.record(issue.room, issue.peer, event, issue.trackId, reason, attrs);
  }
}

const pct = (fraction: number) => Math.round(fraction * 1000) / 10;

/** The participants of the room who receive a producer (its consumers' owners). */
function subscribersOf(room: Room, producerId: string): Peer[] {
  return [...room.peers.values()].filter((p) => [...p.consumers.values()].some((c) => c.producerId === producerId));
}
