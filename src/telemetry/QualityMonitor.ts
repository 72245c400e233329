import { EventEmitter } from 'node:events';
import type { Peer, Room } from '../media/index.js';
import type { AudioSample, StatsCollector } from './StatsCollector.js';

export interface QualityAlert {
  room: Room;
  peer: Peer;
  trackId: string;
  direction: 'inbound' | 'outbound';
  mos: number;
  belowForSeconds: number;
  threshold: number;
}

/**
 * Raises one alert when a participant's audio MOS stays below the threshold
 * for the configured time, and re-arms once it recovers.
 */
export class QualityMonitor {
  readonly observer = new EventEmitter<{ alert: [alert: QualityAlert] }>();
  readonly #state = new Map<string, { lowSince?: number; alerted: boolean }>();

  constructor(
    collector: StatsCollector,
    private readonly threshold: number,
    private readonly seconds: number,
  ) {
    collector.observer.on('audiosample', (s) => this.#onSample(s));
  }

  #onSample({ room, peer, trackId, direction, mos, ts }: AudioSample): void {
    const key = `${peer.id}/${trackId}`;
    let st = this.#state.get(key);
    if (!st) {
      st = { alerted: false };
      this.#state.set(key, st);
    }
    if (mos >= this.threshold) {
      st.lowSince = undefined;
      st.alerted = false;
      return;
    }
    st.lowSince ??= ts;
    const below = (ts - st.lowSince) / 1000;
    if (!st.alerted && below >= this.seconds) {
      st.alerted = true;
      this.observer.emit('alert', {
        room,
        peer,
        trackId,
        direction,
        mos,
        belowForSeconds: below,
        threshold: this.threshold,
      });
    }
  }
}
