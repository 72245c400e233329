/**
 * Telemetry: per-track and per-transport stats, call events and client stats
 * into ClickHouse, quality scores, and OpenTelemetry metrics.
 *
 * Needs `sfu`, `config` and `clickhouse`; decorates `telemetry`. It watches the
 * media plane through its observers and never reaches into signaling: client
 * stats arrive as a Peer observer event.
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { sharedSecret } from '../store/index.js';
import { CallEventRecorder } from './CallEventRecorder.js';
import { ClickHouseWriter } from './ClickHouseWriter.js';
import { registerGatewayMetrics } from './gatewayMetrics.js';
import { Pseudonymizer } from './Pseudonymizer.js';
import { JoinFunnelRecorder } from './JoinFunnelRecorder.js';
import { CallKeys } from './rows.js';
import { Spool } from './Spool.js';
import { StatsCollector } from './StatsCollector.js';
import { QualityMonitor } from './QualityMonitor.js';

export { ClickHouseWriter } from './ClickHouseWriter.js';
export { Spool } from './Spool.js';
export { Pseudonymizer } from './Pseudonymizer.js';
export { StatsCollector } from './StatsCollector.js';
export { CallEventRecorder } from './CallEventRecorder.js';
export { JoinFunnelRecorder, FUNNEL_STEPS, type FunnelStep, type JoinOutcome } from './JoinFunnelRecorder.js';
export { QualityMonitor, type QualityAlert } from './QualityMonitor.js';
export { estimateMos, videoQualityScore } from './quality.js';
export { startOpenTelemetry, traceMixin, tracer, otlpConfigured } from './otel.js';

export interface Telemetry {
  writer: ClickHouseWriter;
  collector: StatsCollector;
  events: CallEventRecorder;
  funnel: JoinFunnelRecorder;
  quality: QualityMonitor;
  keys: CallKeys;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Always set; with VIGIE_TELEMETRY=false its collector and call-event recorder are not started. */
    telemetry?: Telemetry;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const { config } = app;
    const log = app.log.child({ component: 'telemetry' });
    const spool = new Spool(
      path.join(config.dataDir, 'spool'),
      config.writer.spoolMaxBytes,
      config.writer.spoolFullPolicy,
      log,
    );
    await spool.open();
    const writer = new ClickHouseWriter(
      app.clickhouse.client,
      spool,
      {
        database: app.clickhouse.database,
        ...config.writer,
        flushIntervalMsByTable: { client_stats: config.writer.clientStatsFlushIntervalMs },
      },
      log,
    );
    writer.start();
    const secret =
      config.telemetry.pseudonymSecret ?? (await sharedSecret(app.db, 'pseudonym-master.secret', config.dataDir));
    const pseudonymizer = new Pseudonymizer(secret, app.db);
    await pseudonymizer.start(path.join(config.dataDir, 'secrets', 'subject-salts.jsonl'), log);
    const keys = new CallKeys(pseudonymizer, log, config.node.id);
    // Before a participant enters a room, their salt is in this node's cache: rows can be keyed without waiting.
    app.sfu.addJoinHook(async (claims) => void (await pseudonymizer.pseudonym(claims.tenant, claims.identity)));
    const collector = new StatsCollector(
      app.sfu,
      writer,
      keys,
      {
        intervalMs: config.telemetry.statsIntervalMs,
        concurrency: config.telemetry.statsConcurrency,
        focusIntervalMs: config.telemetry.focusIntervalMs,
      },
      log,
    );
    const events = new CallEventRecorder(app.sfu, writer, keys);
    const funnel = new JoinFunnelRecorder(app.sfu, writer, keys, config.telemetry.joinFunnelTimeoutMs, log);
    // VIGIE_TELEMETRY=false stops the collection of stats and call events, and only that: the writer
    // and the pseudonyms still serve the recording catalog, access records and data-subject requests.
    if (config.telemetry.enabled) {
      collector.start();
      events.start();
      funnel.start();
    } else {
      app.log.info('telemetry disabled (VIGIE_TELEMETRY=false): no stats or call events are collected');
    }
    registerGatewayMetrics(app.sfu, writer);
    const quality = new QualityMonitor(collector, config.quality.alertMos, config.quality.alertSeconds);
    app.decorate('telemetry', { writer, collector, events, funnel, quality, keys });
    // Runs before the SFU closes (hooks run in reverse), so final events are written.
    app.addHook('onClose', async () => {
      await collector.stop();
      events.stop();
      funnel.stop();
      await writer.close();
      pseudonymizer.stop();
    });
  },
  { name: 'vigie-telemetry', dependencies: ['vigie-store', 'vigie-core', 'vigie-clickhouse'] },
);
