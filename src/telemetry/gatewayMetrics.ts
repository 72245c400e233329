import { metrics } from '@opentelemetry/api';
import type { Sfu } from '../media/index.js';
import type { ClickHouseWriter } from './ClickHouseWriter.js';

/**
 * Gateway metrics on the OpenTelemetry API. Gauges are observed only when a
 * reader collects, so with no SDK they cost nothing.
 */
export function registerGatewayMetrics(sfu: Sfu, writer?: ClickHouseWriter): void {
  const meter = metrics.getMeter('vigie');
  const count = (pick: (s: { rooms: number; peers: number; producers: number; consumers: number }) => number) => () => {
    const s = { rooms: 0, peers: 0, producers: 0, consumers: 0 };
    for (const room of sfu.rooms.values()) {
      s.rooms++;
      for (const p of room.peers.values()) {
        s.peers++;
        s.producers += p.producers.size;
        s.consumers += p.consumers.size;
      }
    }
    return pick(s);
  };
  for (const [name, pick, description] of [
    ['vigie.rooms', (s: { rooms: number }) => s.rooms, 'rooms open on this gateway'],
    ['vigie.peers', (s: { peers: number }) => s.peers, 'participants joined'],
    ['vigie.producers', (s: { producers: number }) => s.producers, 'tracks sent by participants'],
    ['vigie.consumers', (s: { consumers: number }) => s.consumers, 'tracks received by participants'],
  ] as const) {
    const read = count(pick as never);
    meter.createObservableGauge(name, { description }).addCallback((r) => r.observe(read()));
  }
  meter
    .createObservableCounter('vigie.worker.cpu', {
      unit: 's',
      description: 'CPU time of each mediasoup worker (user + system)',
    })
    .addCallback(async (r) => {
      for (const slot of sfu.pool.slots) {
        if (slot.worker.died || slot.worker.closed) continue;
        const u = await slot.worker.getResourceUsage().catch(() => undefined);
        if (u) r.observe((u.ru_utime + u.ru_stime) / 1000, { worker: slot.index });
      }
    });
  if (!writer) return;
  meter
    .createObservableGauge('vigie.writer.queue_depth', { description: 'rows held in memory by the ClickHouse writer' })
    .addCallback((r) => r.observe(writer.queuedRows));
  meter
    .createObservableGauge('vigie.spool.bytes', {
      unit: 'By',
      description: 'disk used by the spool of rows ClickHouse has not taken yet',
    })
    .addCallback((r) => r.observe(writer.spoolBytes));
  meter
    .createObservableCounter('vigie.rows.written', { description: 'rows inserted into ClickHouse' })
    .addCallback((r) => r.observe(writer.counters.rowsWritten));
  meter
    .createObservableCounter('vigie.rows.dropped', { description: 'rows given up: they will never reach ClickHouse' })
    .addCallback((r) => r.observe(writer.counters.rowsDropped));
  const latency = meter.createHistogram('vigie.clickhouse.insert_latency', {
    unit: 'ms',
    description: 'duration of each ClickHouse insert',
  });
  writer.onInsert = (ms, _rows, ok) => latency.record(ms, { ok });
}
