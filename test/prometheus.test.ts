import { afterAll, beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import os from 'node:os';
import { WebSocket } from 'ws';
import { loadConfig } from '../src/config/index.js';
import { SignalingClient } from '../src/sdk/SignalingClient.js';
import { waitFor } from './helpers/browser.js';
import { startCompiledGateway, type CompiledGateway } from './helpers/compiledGateway.js';
import { closedPort } from './helpers/ports.js';

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
/** The collector's names (src/telemetry/gatewayMetrics.ts), as Prometheus spells them: dots become underscores. */
const FAMILIES: Array<[string, string]> = [
  ['vigie_rooms', 'gauge'],
  ['vigie_peers', 'gauge'],
  ['vigie_producers', 'gauge'],
  ['vigie_consumers', 'gauge'],
  ['vigie_worker_cpu', 'counter'],
  ['vigie_writer_queue_depth', 'gauge'],
  ['vigie_spool_bytes', 'gauge'],
  ['vigie_rows_written', 'counter'],
  ['vigie_rows_dropped', 'counter'],
  ['vigie_clickhouse_insert_latency', 'histogram'],
];

async function scrape(url: string) {
  const res = await fetch(url, {
    headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' },
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

/** The rules of the OpenMetrics text format a Prometheus scrape checks, on the lines this exposition can have. */
function assertOpenMetrics(text: string): Map<string, string> {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  assert.equal(lines.pop(), '# EOF', 'ends with # EOF');
  const families = new Map<string, string>();
  let family = '';
  for (const line of lines) {
    assert.notEqual(line, '', 'no blank line');
    const meta = /^# (HELP|TYPE|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (name !== family) {
        assert.ok(!families.has(name), `${name}: one block per family`);
        family = name;
      }
      if (kind === 'TYPE') families.set(name, rest);
      if (kind === 'UNIT') assert.ok(name.endsWith(`_${rest}`), `${line}: a unit is the name's suffix`);
      continue;
    }
    assert.ok(!line.startsWith('#'), `${line}: no other comment`);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(sample, `${line}: a sample`);
    const type = families.get(family);
    const suffixes =
      type === 'counter'
        ? ['_total', '_created']
        : type === 'histogram'
          ? ['_bucket', '_count', '_sum', '_created']
          : type === 'info'
            ? ['_info']
            : [''];
    assert.ok(
      suffixes.some((s) => sample[1] === family + s),
      `${line}: a sample of ${family} (${type})`,
    );
    assert.ok(!Number.isNaN(Number(sample[3]!.replace(/^\+Inf$/, 'Infinity'))), `${line}: a number`);
  }
  return families;
}

describe('Prometheus /metrics on its own listener (the compiled gateway)', () => {
  let gw: CompiledGateway;
  let metricsPort: number;
  let client: SignalingClient;
  beforeAll(async () => {
    metricsPort = await closedPort();
    gw = await startCompiledGateway({
      env: { VIGIE_METRICS_PORT: String(metricsPort), VIGIE_MEDIA_WORKERS: '2', VIGIE_WRITER_FLUSH_MS: '100' },
    });
    // One participant in a room, so that the gauges have something to count.
    const minted = await fetch(`${gw.base}/v1/tokens`, {
      method: 'POST',
      headers: { 'x-api-key': gw.demoKey, 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'scraped', identity: 'ada' }),
    });
    assert.equal(minted.status, 200);
    client = new SignalingClient(new WebSocket(`${gw.base.replace(/^http/, 'ws')}/ws`) as never);
    await client.opened;
    await client.request('join', { token: ((await minted.json()) as { token: string }).token });
  });
  afterAll(async () => {
    client?.close();
    if (gw) assert.equal(await gw.stop(), 0, gw.output().slice(-2000));
  });

  test("a scrape is OpenMetrics, ends with # EOF, and has every gateway metric under the collector's name", async () => {
    assert.match(
      gw.output(),
      new RegExp(
        `Prometheus metrics \\(OpenMetrics\\), on their own listener: http://127\\.0\\.0\\.1:${metricsPort}/metrics`,
      ),
    );
    // The insert-latency histogram appears with the first ClickHouse insert (the join's rows).
    const { status, type, text } = await waitFor(
      'a scrape with the insert latency',
      () => scrape(`http://127.0.0.1:${metricsPort}/metrics`),
      (s) => s.text.includes('vigie_clickhouse_insert_latency_bucket'),
      30_000,
    );
    assert.equal(status, 200);
    assert.equal(type, OPENMETRICS);
    const families = assertOpenMetrics(text);
    for (const [name, kind] of FAMILIES) assert.equal(families.get(name), kind, `${name} is a ${kind}: ${text}`);
    assert.match(text, /^vigie_rooms\{[^}]*\} 1$/m);
    assert.match(text, /^vigie_peers\{[^}]*\} 1$/m);
    assert.match(text, /^vigie_worker_cpu_total\{worker="1",[^}]*\} \S+$/m, 'one series per worker');
    assert.match(text, /^vigie_clickhouse_insert_latency_bucket\{[^}]*le="\+Inf"[^}]*\} [1-9]/m);
    assert.match(text, /^target_info\{[^}]*service_name="vigie-gateway"/m);
  });

  test('not on the public port, not on other addresses by default, and a wrong path gets the stable error shape', async () => {
    const onPublic = await fetch(`${gw.base}/metrics`);
    assert.equal(onPublic.status, 404);
    assert.equal(((await onPublic.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    const wrong = await fetch(`http://127.0.0.1:${metricsPort}/metrics/../admin`);
    assert.equal(wrong.status, 404);
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    // Bound to loopback by default (VIGIE_METRICS_HOST): the machine's own network address does not answer.
    const external = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal);
    assert.ok(external, 'this machine has a non-loopback IPv4 address');
    await assert.rejects(fetch(`http://${external!.address}:${metricsPort}/metrics`), /fetch failed/);
    // And off unless asked for.
    assert.equal(loadConfig({}).metrics.port, undefined);
  });
});

test('with OTLP export on as well, the collector and Prometheus get the same metrics', async () => {
  const posts: string[] = [];
  const collector = createServer((req, res) => {
    posts.push(req.url!);
    req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  const metricsPort = await closedPort();
  const gw = await startCompiledGateway({
    env: {
      VIGIE_METRICS_PORT: String(metricsPort),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as { port: number }).port}`,
      OTEL_METRIC_EXPORT_INTERVAL: '500',
    },
  });
  try {
    await waitFor(
      'a metrics export to the collector',
      async () => posts,
      (p) => p.includes('/v1/metrics'),
      30_000,
    );
    const { type, text } = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(type, OPENMETRICS);
    const families = assertOpenMetrics(text);
    for (const [name, kind] of FAMILIES.filter(([n]) => n !== 'vigie_clickhouse_insert_latency'))
      assert.equal(families.get(name), kind, name);
  } finally {
    assert.equal(await gw.stop(), 0, gw.output().slice(-2000));
    collector.close();
  }
});
