import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startGateway } from './helpers/gateway.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

test('production mode (CLICKHOUSE_URL) with the server unreachable: calls go on and every row is spooled', async () => {
  const port = await closedPort();
  const gw = await startGateway({ clickhouse: { url: `http://127.0.0.1:${port}`, requestTimeoutMs: 2000 }, telemetry: { statsIntervalMs: 1000 }, writer: { flushIntervalMs: 200 } });
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
    assert.ok(w.counters.rowsSpooled >= gw.app.telemetry!.collector.samplesTaken.track_stats, `spooled ${w.counters.rowsSpooled}`);
    assert.ok(w.spoolBytes > 0);
    assert.match(gw.logs(), /ClickHouse migrations failed; retrying/);
  } finally {
    await gw.close();
  }
});
