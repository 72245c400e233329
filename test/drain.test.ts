import { onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { SignalingClient } from '../src/sdk/SignalingClient.js';
import { expectCode, nextNotification, startGateway } from './helpers/gateway.js';
import { waitFor } from './helpers/browser.js';
import { spawnCompiled } from './helpers/compiledGateway.js';

/** Graceful drain (SIGTERM): participants told, joins refused, exit when the rooms are empty or at the deadline. */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Resolves with `value` after `ms`, without keeping the test process alive. */
const after = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(r, ms, value).unref());

test('drain: participants are told and new joins refused; at the deadline the remaining ones are closed with 1012 (rejoin), not dropped for good', async () => {
  const gw = await startGateway({ media: { workers: 1 } });
  try {
    const leaver = await gw.connect();
    const stayer = await gw.connect();
    await leaver.request('join', { token: await gw.mint({ room: 'drain-a', identity: 'leaver' }) });
    await stayer.request('join', { token: await gw.mint({ room: 'drain-b', identity: 'stayer' }) });
    const told = [nextNotification(leaver, 'serverDraining'), nextNotification(stayer, 'serverDraining')];
    const stayerClosed = new Promise<{ code: number; reason: string }>((r) => stayer.on('close', r));
    let drained = false;
    const draining = gw.app.drainSignaling(4).then(() => (drained = true));
    for (const d of await Promise.all(told)) assert.deepEqual(d, { reason: 'server-shutdown', deadlineSeconds: 4 });
    const readyz = await gw.app.inject('/readyz');
    assert.deepEqual(
      [readyz.statusCode, readyz.json().status],
      [503, 'draining'],
      'a load balancer sends new calls elsewhere',
    );
    const late = await gw.connect();
    await expectCode(
      late.request('join', { token: await gw.mint({ room: 'drain-c', identity: 'late' }) }),
      'UNAVAILABLE',
    );
    await leaver.request('leave');
    await sleep(500);
    assert.equal(drained, false, 'a call is still going on: the drain waits for it');
    await draining;
    assert.deepEqual(await stayerClosed, { code: 1012, reason: 'server-shutdown' });
    assert.equal(gw.app.sfu.getRoom('acme', 'drain-b'), undefined);
  } finally {
    await gw.close();
  }
});

// What an orchestrator does: SIGTERM to the compiled gateway, as `npm start` runs it.
test('SIGTERM: the process waits for the call in progress, refuses joins meanwhile, and exits once the room is empty', async () => {
  assert.ok(existsSync('dist/server/main.js'), 'dist/server/main.js is missing: scripts/setup.sh compiles it');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-drain-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const secret = 'drain-test-secret-that-is-long-enough-0123';
  const configFile = path.join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ tenants: [{ id: 'acme' }] }));
  const { gateway, output } = spawnCompiled(path.join(dir, 'data'), {
    VIGIE_CONFIG_FILE: configFile,
    VIGIE_AUTH_HS256_SECRET: secret,
    VIGIE_MEDIA_WORKERS: '1',
    VIGIE_TELEMETRY: 'false',
    VIGIE_LOG_LEVEL: 'info',
    // Long: the exit must come from the room emptying, not from the deadline.
    VIGIE_DRAIN_DEADLINE_S: '600',
  });
  onTestFinished(() => {
    if (gateway.exitCode === null) gateway.kill('SIGKILL');
  });
  const printed = await waitFor(
    'the gateway to listen',
    async () => output.text,
    (o) => /Vigie is running at (\S+)/.test(o) || gateway.exitCode !== null,
    60_000,
  );
  assert.equal(gateway.exitCode, null, `the gateway exited: ${printed}`);
  const base = /Vigie is running at (\S+)/.exec(printed)![1]!;
  const wsUrl = `${base.replace(/^http/, 'ws')}/ws`;
  const token = (identity: string) =>
    new SignJWT({ tenant: 'acme', room: 'drain', grants: ['publish', 'subscribe'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('vigie')
      .setAudience('vigie')
      .setSubject(identity)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(secret));
  const connect = async () => {
    const c = new SignalingClient(new WebSocket(wsUrl) as never);
    await c.opened;
    return c;
  };

  const participant = await connect();
  await participant.request('join', { token: await token('alice') });
  const told = nextNotification(participant, 'serverDraining', 20_000);
  gateway.kill('SIGTERM');
  assert.equal(
    (await told.catch((e) => assert.fail(`${e.message}: ${output.text.slice(-3000)}`))).reason,
    'server-shutdown',
  );
  const late = await connect();
  await expectCode(late.request('join', { token: await token('bob') }), 'UNAVAILABLE');
  late.close();
  await sleep(1000);
  assert.equal(gateway.exitCode, null, 'still serving the call in progress');
  await participant.request('getRouterRtpCapabilities');

  const exited = once(gateway, 'exit');
  await participant.request('leave');
  participant.close();
  const [code] = await Promise.race([exited, after(60_000, ['did not exit within 60 s'])]);
  assert.equal(code, 0, output.text.slice(-2000));
});
