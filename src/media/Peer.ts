import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import type { AccessClaims } from '../auth/index.js';

export type Notify = (method: string, data: Record<string, unknown>) => void;
export type TrackSource = 'camera' | 'mic' | 'screen' | 'screen-audio' | 'bot';

/** What a browser reports of its own getStats(), already validated. */
export interface ClientTrackStats {
  kind: 'audio' | 'video';
  direction: 'outbound' | 'inbound';
  producerId?: string;
  consumerId?: string;
  ssrc: number;
  bytes: number;
  packets: number;
  packetsLost: number;
  jitterMs?: number;
  jitterBufferDelayMs?: number;
  freezeCount?: number;
  totalFreezesDurationMs?: number;
  concealedSamples?: number;
  totalSamplesReceived?: number;
  framesDecoded?: number;
  framesPerSecond?: number;
  frameWidth?: number;
  frameHeight?: number;
  /** What limits the encoder of an outbound video (WebRTC stats `qualityLimitationReason`). */
  qualityLimitationReason?: 'none' | 'cpu' | 'bandwidth' | 'other';
  /** Outbound video: what the sender captures, and the factor this layer scales it down by. */
  captureFps?: number;
  captureWidth?: number;
  captureHeight?: number;
  scaleResolutionDownBy?: number;
}

export interface ClientStatsReport {
  tracks: ClientTrackStats[];
  candidatePair?: { candidateType?: string; protocol?: string; rttMs?: number; availableOutgoingBitrate?: number };
}

export interface PeerObserverEvents {
  newtransport: [transport: ms.WebRtcTransport | ms.PlainTransport];
  newproducer: [producer: ms.Producer];
  newconsumer: [consumer: ms.Consumer];
  icerestart: [transport: ms.WebRtcTransport];
  /** The participant's own view of its tracks; only tracks it owns are kept. */
  clientstats: [report: ClientStatsReport];
  /** The participant's browser decoded its first video frame or played its first audio of one of its consumers. */
  mediastarted: [kind: 'audio' | 'video', at: number];
  close: [reason: string];
}

/**
 * One participant in one room, as the media plane sees it: what it sends and
 * receives. How it talks to the gateway is not its concern; it is handed a
 * `notify` sink by whoever owns the connection.
 */
export class Peer {
  readonly id: string;
  readonly observer = new EventEmitter<PeerObserverEvents>();
  readonly transports = new Map<string, ms.WebRtcTransport | ms.PlainTransport>();
  readonly producers = new Map<string, ms.Producer>();
  readonly consumers = new Map<string, ms.Consumer>();
  readonly joinedAt = Date.now();
  /**
   * When this join began (the join request reached the gateway), and when its connection opened: the start of the
   * join funnel (src/telemetry/JoinFunnelRecorder.ts). The connection may have opened long before (a pre-join screen).
   */
  readonly joinStartedAt: number;
  readonly connectionOpenedAt: number;
  /** When the participant's access ends: its token's `exp`, moved on by each refreshed token. */
  expiresAt: number;
  #closed = false;

  /**
   * `remote`: a participant served by another node of a room that spans nodes (src/cascade), standing in here for
   * its tracks. It has the id it has on its own node; that node records it and writes its telemetry, this one does
   * not.
   */
  constructor(
    readonly claims: AccessClaims,
    private readonly notifySink: Notify,
    readonly remote?: { nodeId: string; id: string },
    timing?: { startedAt: number; connectionOpenedAt: number },
  ) {
    this.id = remote?.id ?? randomUUID();
    this.expiresAt = claims.expiresAt;
    this.joinStartedAt = timing?.startedAt ?? this.joinedAt;
    this.connectionOpenedAt = timing?.connectionOpenedAt ?? this.joinStartedAt;
  }

  get identity(): string {
    return this.claims.identity;
  }

  get displayName(): string {
    return this.claims.name ?? 'Guest';
  }

  get closed(): boolean {
    return this.#closed;
  }

  notify(method: string, data: Record<string, unknown>): void {
    if (!this.#closed) this.notifySink(method, data);
  }

  /** Public view sent to other participants; carries no identity, only the display name. */
  describe(): {
    peerId: string;
    name: string;
    producers: Array<{ producerId: string; kind: string; source: unknown; paused: boolean }>;
  } {
    return {
      peerId: this.id,
      name: this.displayName,
      producers: [...this.producers.values()].map((p) => ({
        producerId: p.id,
        kind: p.kind,
        source: p.appData.source,
        paused: p.paused,
      })),
    };
  }

  /** Keeps only the tracks this peer sends or receives, so no one reports on another's media. */
  reportClientStats(report: ClientStatsReport): number {
    const tracks = report.tracks.filter((t) =>
      t.direction === 'outbound'
        ? t.producerId !== undefined && this.producers.has(t.producerId)
        : t.consumerId !== undefined && this.consumers.has(t.consumerId),
    );
    this.observer.emit('clientstats', { ...report, tracks });
    return tracks.length;
  }

  /**
   * The browser saw the first media of one of its consumers (a decoded frame, played audio). A consumer it does not
   * own is not its to report: false, nothing emitted.
   */
  reportMediaStarted(consumerId: string): boolean {
    const consumer = this.consumers.get(consumerId);
    if (!consumer) return false;
    this.observer.emit('mediastarted', consumer.kind, Date.now());
    return true;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.transports.values()) t.close();
    this.transports.clear();
    this.producers.clear();
    this.consumers.clear();
    this.observer.emit('close', reason);
  }
}
