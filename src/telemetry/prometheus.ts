import Fastify, { type FastifyServerOptions } from 'fastify';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';

export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/**
 * The Prometheus exporter's text (the 0.0.4 exposition format) rewritten as OpenMetrics 1.0, which the exporter
 * does not write itself. Names and samples are the exporter's, so a series is named as it is at the collector;
 * only the metadata changes: a counter's family drops the `_total` its samples keep, `target_info` is an info
 * family, a `# UNIT` that is not the name's suffix (OpenMetrics requires it) is left out, comments and blank
 * lines (not allowed) go, `"` is escaped in help texts, and `# EOF` ends the exposition.
 */
export function toOpenMetrics(text: string): string {
  const out: string[] = [];
  const blocks = text.split(/\n(?=# HELP )/);
  for (const block of blocks) {
    const lines = block.split('\n').filter((l) => l !== '' && (!l.startsWith('#') || /^# (HELP|TYPE|UNIT) /.test(l)));
    const typeLine = lines.find((l) => l.startsWith('# TYPE '));
    if (!typeLine) continue;
    const [, , name, type] = typeLine.split(' ') as [string, string, string, string];
    let family = name;
    let familyType = type;
    if (type === 'counter' && name.endsWith('_total')) family = name.slice(0, -'_total'.length);
    if (type === 'gauge' && name === 'target_info') [family, familyType] = ['target', 'info'];
    for (const line of lines) {
      if (!line.startsWith('#')) out.push(line);
      else if (line.startsWith('# TYPE ')) out.push(`# TYPE ${family} ${familyType}`);
      else if (line.startsWith('# HELP '))
        out.push(`# HELP ${family} ${line.slice(`# HELP ${name} `.length).replace(/(?<!\\)"/g, '\\"')}`);
      else {
        const unit = line.slice(`# UNIT ${name} `.length);
        if (family.endsWith(`_${unit}`)) out.push(`# UNIT ${family} ${unit}`);
      }
    }
  }
  return `${out.join('\n')}\n# EOF\n`;
}

/**
 * `GET /metrics` for Prometheus, on a listener of its own (VIGIE_METRICS_HOST:VIGIE_METRICS_PORT), never on
 * the public port: operators expose it to their scraper only. `reader` joins the gateway's MeterProvider,
 * beside the OTLP reader when there is one, so both see the same instruments.
 */
export async function startPrometheusEndpoint(opts: {
  host: string;
  port: number;
  logger?: FastifyServerOptions['logger'];
}): Promise<{ reader: PrometheusExporter; url: string; close: () => Promise<void> }> {
  // preventServerStart: the exporter's own server answers text/plain 0.0.4; ours answers OpenMetrics.
  const reader = new PrometheusExporter({ preventServerStart: true });
  const serializer = new PrometheusSerializer();
  // A scrape every few seconds is not worth a log line (requests are logged at info); a failed one is, with its stack.
  const server = Fastify({ logger: opts.logger ? { ...(opts.logger as object), level: 'warn' } : false });
  server.setErrorHandler((err, req, reply) => {
    req.log.error({ err }, 'metrics scrape failed');
    return reply.code(500).send({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
  server.get('/metrics', async (_req, reply) => {
    const { resourceMetrics } = await reader.collect();
    return reply.type(OPENMETRICS_CONTENT_TYPE).send(toOpenMetrics(serializer.serialize(resourceMetrics)));
  });
  server.setNotFoundHandler((req, reply) =>
    reply.code(404).send({
      error: {
        code: 'NOT_FOUND',
        message: `no route ${req.method} ${req.url.split('?')[0]}; metrics are at GET /metrics`,
      },
    }),
  );
  await server.listen({ host: opts.host, port: opts.port });
  return {
    reader,
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}/metrics`,
    close: () => server.close(),
  };
}
