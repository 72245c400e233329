import { EventEmitter } from 'node:events';
import type { Peer, Room, Sfu } from '../media/index.js';
import type { CallEventRecorder } from '../telemetry/CallEventRecorder.js';
import type { CallKeys } from '../telemetry/rows.js';
import type { StatsCollector, TrackSample } from '../telemetry/StatsCollector.js';
import { watchMediaPlane } from '../telemetry/watchMediaPlane.js';
import type { WorkerHealth, WorkerHealthSample } from './WorkerHealth.js';

/** What a detector found wrong. */
export type IssueKind = 'uplink_loss' | 'downlink_loss' | 'one_way_media' | 'sfu_overload';

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
   * A worker is strained when it answers a request on its channel this late (ms), or uses this share of its core;
   * healthy again below the second pair. While strained, loss on its tracks is not blamed on anyone's network.
   */
  workerLatencyStartMs: 250,
  workerCpuStart: 0.85,
  workerLatencyEndMs: 100,
  workerCpuEnd: 0.7,
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
  direction: 'uplink' | 'downlink' | 'server';
  /** The track that showed it (a producer for uplink issues, a consumer for downlink ones); '' for the server. */
  trackId: string;
  /** The worker (its index on this node) of a server issue. */
  worker?: number;
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
  /** Each worker's run of strained and healthy samples, by process id, and the issues it caused, by room. */
  readonly #workers = new Map<number, { bad: number; good: number; strained: boolean; issues: QualityIssue[] }>();
  #seq = 0;
  #unwatch?: () => void;
  readonly #onSample = (s: TrackSample) => this.#sample(s);
  readonly #onWorker = (s: WorkerHealthSample) => this.#workerSample(s);

  constructor(
    private readonly sfu: Sfu,
    private readonly collector: StatsCollector,
    private readonly workers: WorkerHealth,
    private readonly events: CallEventRecorder,
    private readonly keys: CallKeys,
  ) {}

  start(): void {
    this.collector.observer.on('tracksample', this.#onSample);
    this.workers.observer.on('sample', this.#onWorker);
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
    this.workers.observer.off('sample', this.#onWorker);
    this.#unwatch?.();
  }

  /** The issues open now. */
  openIssues(): QualityIssue[] {
    return [...this.#state.values()].flatMap((t) => (t.issue ? [t.issue] : []));
  }

  #sample(s: TrackSample): void {
    // A strained worker loses and delays packets itself: that is its issue (sfu_overload), not a network's.
    if (this.#workers.get(s.room.slotOf(s.peer).worker.pid)?.strained) return;
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

  #workerSample({ slot, ts, cpu = 0, latencyMs }: WorkerHealthSample): void {
    const pid = slot.worker.pid;
    const w = this.#workers.get(pid) ?? { bad: 0, good: 0, strained: false, issues: [] };
    this.#workers.set(pid, w);
    const bad = latencyMs >= DIAGNOSIS_RULES.workerLatencyStartMs || cpu >= DIAGNOSIS_RULES.workerCpuStart;
    const good = latencyMs < DIAGNOSIS_RULES.workerLatencyEndMs && cpu < DIAGNOSIS_RULES.workerCpuEnd;
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
          evidence: { cpu_pct: Math.round(cpu * 100), latency_ms: Math.round(latencyMs) },
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
    if (event === 'quality.resolved') attrs.duration_ms = String(Date.now() - issue.startedAt);
    if (issue.worker !== undefined) attrs.worker = String(issue.worker);
    const objectId = issue.worker !== undefined ? `worker-${issue.worker}` : issue.trackId;
    this.events.record(issue.room, issue.peer, event, objectId, reason, attrs);
  }
}

const pct = (fraction: number) => Math.round(fraction * 1000) / 10;

/** The participants of the room who receive a producer (its consumers' owners). */
function subscribersOf(room: Room, producerId: string): Peer[] {
  return [...room.peers.values()].filter((p) => [...p.consumers.values()].some((c) => c.producerId === producerId));
}
