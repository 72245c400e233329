import { test } from 'vitest';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TENANT_ADMIN_KEY, startGateway } from './helpers/gateway.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import { closedPort } from './helpers/ports.js';

test('production mode (CLICKHOUSE_URL) with the server unreachable: calls go on and every row is spooled', async () => {
  const port = await closedPort();
  const gw = await startGateway({
    clickhouse: { url: `http://127.0.0.1:${port}`, requestTimeoutMs: 2000 },
    telemetry: { statsIntervalMs: 1000 },
    writer: { flushIntervalMs: 200 },
  });
  try {
    const ready = (await gw.app.inject('/readyz')).json();
    assert.equal(ready.status, 'ready', 'media readiness does not depend on ClickHouse');
    assert.equal(ready.telemetry.schemaReady, false);
    const room = await gw.app.sfu.getOrCreateRoom('acme', 'no-clickhouse');
    const bot = await startFfmpegBot(room, { kind: 'audio', bitrateKbps: 32 });
    await new Promise((r) => setTimeout(r, 3500));
    await bot.stop();
    const w = gw.app.telemetry!.writer;
    await w.flush();
    assert.equal(w.counters.rowsWritten, 0);
    assert.equal(w.counters.rowsDropped, 0);
    assert.ok(
      w.counters.rowsSpooled >= gw.app.telemetry!.collector.samplesTaken.track_stats,
      `spooled ${w.counters.rowsSpooled}`,
    );
    assert.ok(w.spoolBytes > 0);
    assert.match(gw.logs(), /ClickHouse migrations failed; retrying/);
  } finally {
    await gw.close();
  }
});

test('production mode over HTTP: the ClickHouse process dies mid-run and comes back; rows equal samples, no duplicates', async () => {
  const { mkdtempSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { startChdbHttp } = await import('./helpers/chdbHttpServer.js');
  const server = await startChdbHttp(mkdtempSync(path.join(os.tmpdir(), 'vigie-ch-http-')));
  const gw = await startGateway({
    clickhouse: { url: server.url, requestTimeoutMs: 2000 },
    telemetry: { statsIntervalMs: 1000 },
    writer: { flushIntervalMs: 200 },
  });
  try {
    assert.equal(gw.app.clickhouse.schemaReady, true, 'migrations applied over HTTP');
    const room = await gw.app.sfu.getOrCreateRoom('acme', 'http-outage');
    const bot = await startFfmpegBot(room, { kind: 'audio', bitrateKbps: 32 });
    await new Promise((r) => setTimeout(r, 2500));
    await server.stop(); // connection refused from here on
    await new Promise((r) => setTimeout(r, 3000));
    const telemetry = gw.app.telemetry!;
    assert.ok(
      telemetry.writer.counters.insertErrors > 0 && telemetry.writer.spoolBytes > 0,
      'batches spooled during the outage',
    );
    await server.start();
    await new Promise((r) => setTimeout(r, 1500));
    await bot.stop();
    await telemetry.collector.stop();
    assert.ok(await telemetry.writer.drain(), 'spool replayed over HTTP');
    const samples = telemetry.collector.samplesTaken.track_stats;
    const [r] = await gw.query<{ n: string; distinct_samples: string }>(
      `SELECT count() AS n, uniqExact(track_id, ts) AS distinct_samples FROM vigie.track_stats`,
    );
    assert.ok(samples >= 6);
    assert.equal(Number(r!.n), samples);
    assert.equal(Number(r!.distinct_samples), samples);
  } finally {
    await gw.close();
    await server.stop();
  }
});

test('a read that needs ClickHouse while it is unreachable is a retryable 503 UNAVAILABLE, logged as such, not a 500', async () => {
  const { startChdbHttp } = await import('./helpers/chdbHttpServer.js');
  const chDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-ch-read-'));
  const server = await startChdbHttp(chDir);
  const gw = await startGateway({ clickhouse: { url: server.url, requestTimeoutMs: 2000 } });
  try {
    const diagnosis = () =>
      gw.app.inject({
        method: 'GET',
        url: '/v1/calls/call-during-outage/diagnosis',
        headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
      });
    assert.equal((await diagnosis()).json().error.code, 'NOT_FOUND', 'the audit log is ready and the call unknown');
    await server.stop(); // connection refused from here on; audited reads go on through the control plane
    const res = await diagnosis();
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.json().error.code, 'UNAVAILABLE');
    assert.match(res.json().error.message, /ClickHouse or the object store\) is unreachable; retry/);
    assert.match(gw.logs(), /component unreachable: answered 503/);
    assert.doesNotMatch(gw.logs(), /request failed/);
  } finally {
    await gw.close();
    await server.stop();
    rmSync(chDir, { recursive: true, force: true });
  }
});
