import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { metrics } from '@opentelemetry/api';
import { metrics as sdkMetrics, node, tracing } from '@opentelemetry/sdk-node';
import { otlpConfigured } from '../src/telemetry/index.js';
import { ACME_KEY, startGateway, type TestGateway } from './helpers/gateway.js';

// Providers registered before the gateway starts, as main.ts does with the OTLP SDK.
const spans = new tracing.InMemorySpanExporter();
new node.NodeTracerProvider({ spanProcessors: [new tracing.SimpleSpanProcessor(spans)] }).register();
class CollectOnDemand extends sdkMetrics.MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}
const reader = new CollectOnDemand();
metrics.setGlobalMeterProvider(new sdkMetrics.MeterProvider({ readers: [reader] }));

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ writer: { flushIntervalMs: 100 } });
});
afterAll(() => gw.close());

test('OTLP export is on only when the standard OTEL_* variables ask for it', () => {
  assert.equal(otlpConfigured({}), false);
  assert.equal(otlpConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  assert.equal(
    otlpConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }),
    false,
  );
  assert.equal(
    otlpConfigured({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
    }),
    false,
  );
});

test('one span per signaling request and per REST call, with tenant and room, never a token; logs carry the trace id', async () => {
  const token = await gw.mint({ room: 'traced', identity: 'tracy' });
  const c = await gw.connect();
  await c.request('join', { token });
  await c.request('createWebRtcTransport', { direction: 'recv' });
  await c
    .request('consume', { transportId: 'nope', producerId: 'x', rtpCapabilities: { codecs: [] } })
    .catch(() => undefined);
  const res = await fetch(`${gw.url}/v1/tokens`, {
    method: 'POST',
    headers: { 'x-api-key': ACME_KEY.key, 'content-type': 'application/json' },
    body: JSON.stringify({ room: 'traced', identity: 'x' }),
  });
  assert.equal(res.status, 200);

  const finished = spans.getFinishedSpans();
  const byName = (n: string) => finished.filter((s) => s.name === n);
  const join = byName('signaling join')[0]!;
  assert.ok(join, finished.map((s) => s.name).join(', '));
  assert.equal(join.attributes['vigie.tenant'], 'acme');
  assert.equal(join.attributes['vigie.room'], 'traced');
  assert.equal(byName('signaling createWebRtcTransport')[0]!.attributes['vigie.room'], 'traced');
  assert.equal(byName('signaling consume')[0]!.attributes['vigie.error_code'], 'NOT_FOUND');
  const rest = byName('POST /v1/tokens')[0]!;
  assert.equal(rest.attributes['vigie.tenant'], 'acme');
  assert.equal(rest.attributes['http.response.status_code'], 200);
  for (const s of finished) {
    for (const v of Object.values(s.attributes))
      assert.ok(!String(v).includes(token) && !String(v).includes(ACME_KEY.key), `${s.name} carries a secret`);
  }

  const lines = gw
    .logs()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const joinedLine = lines.find((l) => l.msg === 'peer joined');
  assert.equal(joinedLine.trace_id, join.spanContext().traceId);
  const mintedLine = lines.find((l) => l.msg === 'join token minted');
  assert.equal(mintedLine.trace_id, rest.spanContext().traceId);
});

test('gateway metrics: rooms, peers, tracks, worker CPU, writer queue, spool, insert latency, rows written and dropped', async () => {
  await gw.app.telemetry!.writer.flush();
  const { resourceMetrics } = await reader.collect();
  const found = new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.descriptor.name, m]));
  for (const name of [
    'vigie.rooms',
    'vigie.peers',
    'vigie.producers',
    'vigie.consumers',
    'vigie.worker.cpu',
    'vigie.writer.queue_depth',
    'vigie.spool.bytes',
    'vigie.clickhouse.insert_latency',
    'vigie.rows.written',
    'vigie.rows.dropped',
  ]) {
    assert.ok(found.has(name), `${name} in ${[...found.keys()].join(', ')}`);
  }
  const value = (name: string) => (found.get(name)!.dataPoints[0] as { value: number }).value;
  assert.equal(value('vigie.rooms'), 1);
  assert.equal(value('vigie.peers'), 1);
  assert.ok(value('vigie.rows.written') > 0);
  const cpu = found.get('vigie.worker.cpu')!.dataPoints;
  assert.equal(cpu.length, 2, 'one series per worker');
});
