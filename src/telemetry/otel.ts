import { trace, type Tracer } from '@opentelemetry/api';
import type { FastifyServerOptions } from 'fastify';

/**
 * OpenTelemetry. The gateway only ever uses `@opentelemetry/api`; the SDK is loaded only when there is a reader:
 * OTLP export, which the standard OTEL_* variables ask for, or the Prometheus endpoint (VIGIE_METRICS_PORT).
 * Otherwise the API stays a no-op: no module load, no allocation per span.
 */
export function otlpConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporters = [env.OTEL_TRACES_EXPORTER, env.OTEL_METRICS_EXPORTER].filter(Boolean);
  if (exporters.length > 0 && exporters.every((e) => e === 'none')) return false;
  return Boolean(
    env.OTEL_EXPORTER_OTLP_ENDPOINT ||
      env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ||
      env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
  );
}

const serviceName = (env: NodeJS.ProcessEnv) => env.OTEL_SERVICE_NAME ?? 'vigie-gateway';

export interface OpenTelemetryOptions {
  /** The Prometheus scrape endpoint (Config['metrics']); no port, no endpoint. */
  metrics?: { port?: number; host: string };
  /** pino options of the metrics listener's own logger. */
  logger?: FastifyServerOptions['logger'];
}

export async function startOpenTelemetry(
  env: NodeJS.ProcessEnv = process.env,
  opts: OpenTelemetryOptions = {},
): Promise<{ shutdown: () => Promise<void>; metricsUrl?: string } | undefined> {
  const otlp = otlpConfigured(env);
  const port = opts.metrics?.port;
  if (!otlp && port === undefined) return undefined;
  const prometheus =
    port === undefined
      ? undefined
      : await (await import('./prometheus.js')).startPrometheusEndpoint({
          host: opts.metrics!.host,
          port,
          logger: opts.logger,
        });
  if (!otlp) {
    // Prometheus alone: a meter provider with its reader, and no tracing SDK (nothing would export the spans).
    const { metrics } = await import('@opentelemetry/api');
    const { metrics: sdkMetrics, resources } = await import('@opentelemetry/sdk-node');
    const resource = resources.resourceFromAttributes({ 'service.name': serviceName(env) });
    const provider = new sdkMetrics.MeterProvider({ resource, readers: [prometheus!.reader] });
    metrics.setGlobalMeterProvider(provider);
    return {
      metricsUrl: prometheus!.url,
      shutdown: async () => {
        await provider.shutdown();
        await prometheus!.close();
      },
    };
  }
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  // NodeSDK reads OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER, … itself. Given readers, it no longer
  // builds its OTLP metric reader from OTEL_METRICS_EXPORTER, so with Prometheus on that reader is built here.
  const metricReaders = prometheus ? [prometheus.reader, ...(await otlpMetricReaders(env))] : undefined;
  const sdk = new NodeSDK({ serviceName: serviceName(env), instrumentations: [], metricReaders });
  sdk.start();
  return {
    metricsUrl: prometheus?.url,
    shutdown: async () => {
      await sdk.shutdown();
      await prometheus?.close();
    },
  };
}

/**
 * What NodeSDK builds from OTEL_METRICS_EXPORTER (unset: otlp) for OTLP: a periodic reader
 * (OTEL_METRIC_EXPORT_INTERVAL) around the exporter of OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL. These exporters are
 * sdk-node's own dependencies.
 */
async function otlpMetricReaders(env: NodeJS.ProcessEnv) {
  const wanted = (env.OTEL_METRICS_EXPORTER ?? 'otlp').split(',').map((s) => s.trim());
  if (!wanted.includes('otlp') || wanted.includes('none')) return [];
  const protocol = env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  const { OTLPMetricExporter } =
    protocol === 'grpc'
      ? await import('@opentelemetry/exporter-metrics-otlp-grpc')
      : protocol === 'http/json'
        ? await import('@opentelemetry/exporter-metrics-otlp-http')
        : await import('@opentelemetry/exporter-metrics-otlp-proto');
  const { PeriodicExportingMetricReader } = (await import('@opentelemetry/sdk-node')).metrics;
  const interval = Number(env.OTEL_METRIC_EXPORT_INTERVAL) || undefined;
  return [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: interval })];
}

export function tracer(): Tracer {
  return trace.getTracer('vigie');
}

/** pino mixin: log lines written inside a span carry its trace and span ids. */
export function traceMixin(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
