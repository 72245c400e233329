import { trace, type Tracer } from '@opentelemetry/api';

/**
 * OpenTelemetry. The gateway only ever uses `@opentelemetry/api`; the SDK is
 * loaded, and OTLP export started, only when the standard OTEL_* variables ask
 * for it. Otherwise the API stays a no-op: no module load, no allocation per span.
 */
export function otlpConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporters = [env.OTEL_TRACES_EXPORTER, env.OTEL_METRICS_EXPORTER].filter(Boolean);
  if (exporters.length > 0 && exporters.every((e) => e === 'none')) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT);
}

export async function startOpenTelemetry(env: NodeJS.ProcessEnv = process.env): Promise<{ shutdown: () => Promise<void> } | undefined> {
  if (!otlpConfigured(env)) return undefined;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  // NodeSDK reads OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER, … itself.
  const sdk = new NodeSDK({ serviceName: env.OTEL_SERVICE_NAME ?? 'vigie-gateway', instrumentations: [] });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
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
