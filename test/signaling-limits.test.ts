import { onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { rawFrame, startGateway } from './helpers/gateway.js';

/**
 * Limits on signaling connections themselves, before any token is checked: a
 * gateway of its own, because one process holds one embedded ClickHouse.
 */

test('connections per address are capped, and a socket that does not join is closed', async () => {
  const capped = await startGateway({
    media: { workers: 1 },
    signaling: { maxConnectionsPerIp: 3, joinTimeoutMs: 3000 },
  });
  onTestFinished(() => capped.close());
  const open = async () => {
    const ws = new WebSocket(capped.wsUrl);
    // Settles either way, so that a connection never closed fails the test instead of hanging it.
    const closed = new Promise<{ code: number | 'still open'; at: number }>((resolve) => {
      ws.once('close', (code) => resolve({ code, at: Date.now() }));
      setTimeout(() => resolve({ code: 'still open', at: Date.now() }), 15_000).unref();
    });
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    return { ws, closed };
  };
  const opened = Date.now();
  const [a, b, c] = [await open(), await open(), await open()];
  const d = await open();
  assert.equal((await d.closed).code, 1013, 'the fourth connection from one address is refused: try again later');
  const joined = await rawFrame(
    a.ws,
    JSON.stringify({ id: 1, method: 'join', data: { token: await capped.mint({ room: 'cap', identity: 'joiner' }) } }),
  );
  assert.equal(joined.ok, true, JSON.stringify(joined));
  for (const idle of [b, c]) {
    const { code, at } = await idle.closed;
    assert.equal(code, 1008, 'a socket that never joins is closed');
    assert.ok(at - opened >= 2500, 'not before the join timeout');
  }
  assert.equal(a.ws.readyState, WebSocket.OPEN, 'the joined connection stays');
  // The closed ones no longer count against the address.
  const e = await open();
  assert.equal(
    (await rawFrame(e.ws, JSON.stringify({ id: 2, method: 'getRouterRtpCapabilities', data: {} }))).error.code,
    'UNAUTHORIZED',
  );
  for (const x of [a, e]) x.ws.close();
});
