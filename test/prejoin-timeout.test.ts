import assert from 'node:assert/strict';
import { afterAll, beforeAll, test } from 'vitest';
import { launchBrowser, waitFor } from './helpers/browser.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

// A gateway of its own: its join timeout is short, and the embedded ClickHouse allows one gateway per process.
let strict: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
beforeAll(async () => {
  strict = await startGateway({ signaling: { joinTimeoutMs: 500 } });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await strict?.close();
});

test('a pre-join screen left longer than the join timeout joins on a new socket', async () => {
  const page = await browser.context.newPage();
  try {
    const sockets: string[] = [];
    let closed = 0;
    page.on('websocket', (ws) => {
      sockets.push(ws.url());
      ws.on('close', () => closed++);
    });
    await page.goto(`${strict.url}/join?token=${await strict.mint({ room: 'slow', identity: 'hesitant' })}`);
    await page.waitForFunction(() => (window as any).vigieEvents?.some((e: { type: string }) => e.type === 'prejoin'));
    // The gateway closes a socket that has not joined in time (1008); the page keeps its pre-join screen.
    await waitFor(
      'the idle socket closed by the gateway',
      async () => closed,
      (n) => n === 1,
    );
    await page.click('#join-button');
    await waitFor(
      'joined',
      async () => strict.app.sfu.getRoom('acme', 'slow')?.peers.size ?? 0,
      (n) => n === 1,
    );
    assert.equal(sockets.length, 2, 'a second socket replaced the one the gateway closed');
  } finally {
    await page.close();
  }
});
