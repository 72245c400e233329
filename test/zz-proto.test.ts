import { test } from 'node:test';
import { startGateway } from './helpers/gateway.js';
test('proto', async () => {
  const gw = await startGateway();
  try {
    const c = gw.app.clickhouse.client;
    await c.command({ query: 'CREATE DATABASE IF NOT EXISTS otel' });
    await c.command({ query: `CREATE TABLE IF NOT EXISTS otel.t (ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)), ServiceName LowCardinality(String) CODEC(ZSTD(1)), MetricName String, Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)), TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)), Value Float64,
      Exemplars Nested (FilteredAttributes Map(LowCardinality(String), String), TimeUnix DateTime64(9), Value Float64, SpanId String, TraceId String) CODEC(ZSTD(1)),
      IsMonotonic Boolean CODEC(Delta, ZSTD(1)),
      INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1)
      ENGINE = MergeTree PARTITION BY toDate(TimeUnix) ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix)) SETTINGS index_granularity=8192, ttl_only_drop_parts = 1` }).catch((e) => console.log('DDL', e.message));
    const now = Date.now();
    await c.insert({ table: 'otel.t', format: 'JSONEachRow', values: [{ ServiceName: 's', MetricName: 'm', Attributes: { worker: '0' }, ResourceAttributes: {}, TimeUnix: (now / 1000).toFixed(3), Value: 1, IsMonotonic: true }] }).catch((e) => console.log('INS', e.message));
    console.log(now, await gw.query('SELECT TimeUnix, toUnixTimestamp64Milli(TimeUnix) AS ms, timezone() AS tz, Exemplars.TimeUnix FROM otel.t'));
  } finally { await gw.close(); }
});
