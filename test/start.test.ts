import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './helpers/browser.js';

// What `npm start` runs after its setup: the compiled gateway (setup.sh builds dist/server when the sources changed).
test('the compiled gateway starts with embedded defaults: demo key and join link printed, pages and SDK served, clean stop', async (t) => {
  assert.ok(existsSync('dist/server/main.js'), 'dist/server/main.js is missing: scripts/setup.sh compiles it');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-start-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const gateway = spawn(process.execPath, ['--enable-source-maps', 'dist/server/main.js'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, VIGIE_PORT: '0', VIGIE_DATA_DIR: dataDir, VIGIE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  gateway.stdout!.on('data', (d) => (out += d));
  gateway.stderr!.on('data', (d) => (out += d));
  t.after(() => gateway.exitCode === null && gateway.kill('SIGKILL'));

  const printed = await waitFor('the join link', async () => out, (o) => /Demo join page \(valid 12 h\): (\S+)/.test(o) || gateway.exitCode !== null, 60_000);
  assert.equal(gateway.exitCode, null, `the gateway exited: ${printed}`);
  const join = /Demo join page \(valid 12 h\): (\S+)/.exec(printed)![1]!;
  const key = /Demo API key for tenant "demo" .*: (\S+)/.exec(printed)![1]!;
  const base = new URL(join).origin;

  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const page = await fetch(join);
  assert.equal(page.status, 200);
  const html = await page.text();
  const sdk = /src="([^"]*vigie-sdk[^"]*\.js)"/.exec(html)?.[1];
  assert.ok(sdk, 'the join page loads the SDK bundle');
  const bundle = await fetch(new URL(sdk!, base));
  assert.equal(bundle.status, 200, 'the SDK bundle is served from dist/public');
  assert.ok((await bundle.text()).length > 10_000);
  const rooms = await fetch(`${base}/v1/rooms`, { headers: { 'x-api-key': key } });
  assert.equal(rooms.status, 200, 'the printed demo key works');
  assert.equal(out.split(key).length - 1, 1, 'the key is printed once, and never logged');

  gateway.kill('SIGTERM');
  const [code] = await once(gateway, 'exit');
  assert.equal(code, 0, out.slice(-2000));
});
