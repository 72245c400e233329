/**
 * Call diagnosis: detectors that run on the stats the telemetry collects and
 * say what went wrong in a call, whose network it was and who suffered from
 * it, as `quality.issue` / `quality.resolved` call events (and, through the
 * webhooks, `quality.issue` notifications).
 *
 * Needs `sfu` and `telemetry`; decorates `diagnosis`.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { CallDiagnosis } from './CallDiagnosis.js';
import { WorkerHealth } from './WorkerHealth.js';

export { CallDiagnosis, DIAGNOSIS_RULES, type IssueKind, type QualityIssue } from './CallDiagnosis.js';

declare module 'fastify' {
  interface FastifyInstance {
    diagnosis: CallDiagnosis;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const telemetry = app.telemetry;
    if (!telemetry) throw new Error('call diagnosis needs the telemetry plugin');
    // A probe is one cheap request per worker, and workers are few: probed at the finest pace the tracks are, an
    // overload is seen within seconds, and no loss it causes meanwhile is blamed on a participant's network.
    const workers = new WorkerHealth(app.sfu, telemetry.collector.finestIntervalMs);
    const diagnosis = new CallDiagnosis(app.sfu, telemetry.collector, workers, telemetry.events, telemetry.keys, {
      intervalMs: app.config.telemetry.statsIntervalMs,
      clientStatsIntervalMs: app.config.telemetry.clientStatsIntervalMs,
    });
    // Without telemetry there are no samples to judge: the detectors run only when stats are collected.
    if (app.config.telemetry.enabled) {
      workers.start();
      diagnosis.start();
    }
    app.decorate('diagnosis', diagnosis);
    app.addHook('onClose', async () => {
      workers.stop();
      diagnosis.stop();
    });
  },
  { name: 'vigie-diagnosis', dependencies: ['vigie-core', 'vigie-telemetry'] },
);
