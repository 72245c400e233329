import { onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateApiKey } from '../src/auth/index.js';
import { loadConfig } from '../src/config/index.js';
import { prepareDemo } from '../src/demo/index.js';
import { TenantRegistry } from '../src/tenants/index.js';
import { openDatabase } from '../src/store/index.js';
import type { Logger } from '../src/logging.js';
import { pino } from 'pino';
import type { Page } from 'playwright-core';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import { spawnCompiled } from './helpers/compiledGateway.js';

const silentLog = pino({ level: 'silent' }) as unknown as Logger;

// What `npm start` runs after its setup: the compiled gateway (setup.sh builds dist/server when the sources changed).
test('npm start on an empty data dir: the printed demo link, opened in two Chromium pages, holds a call with video and audio both ways', async () => {
  assert.ok(existsSync('dist/server/main.js'), 'dist/server/main.js is missing: scripts/setup.sh compiles it');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-start-'));
  onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
  const { gateway, output } = spawnCompiled(dataDir);
  onTestFinished(() => {
    if (gateway.exitCode === null) gateway.kill('SIGKILL');
  });

  const linkLine = /Demo join link \(each page that opens it joins the demo room as a new guest\): (\S+)/;
  const printed = await waitFor(
    'the demo link',
    async () => output.text,
    (o) => linkLine.test(o) || gateway.exitCode !== null,
    60_000,
  );
  assert.equal(gateway.exitCode, null, `the gateway exited: ${printed}`);
  const link = linkLine.exec(printed)![1]!;
  const key = /Demo API key for tenant "demo" .*: (\S+)/.exec(printed)![1]!;
  const base = new URL(link).origin;
  assert.doesNotMatch(printed, /token=|eyJ/, 'no join token is printed: the link mints one per visit');

  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const rooms = await fetch(`${base}/v1/rooms`, { headers: { 'x-api-key': key } });
  assert.equal(rooms.status, 200, 'the printed demo key works');
  assert.equal(
    (await fetch(`${base}/demo/not-the-secret`, { redirect: 'manual' })).status,
    404,
    'only the printed link mints guests',
  );

  const browser = await launchBrowser();
  onTestFinished(() => browser.close());
  const pages: Page[] = [];
  const consoleErrors: string[] = [];
  for (const name of ['first', 'second']) {
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => consoleErrors.push(`[${name}] page error: ${e.message}`));
    page.on(
      'console',
      (m) => m.type() === 'error' && consoleErrors.push(`[${name}] ${m.text()} (${m.location().url})`),
    );
    const res = await joinThroughPage(page, link);
    assert.equal(res?.status(), 200, `${name} page loads the join page`);
    assert.equal(new URL(page.url()).pathname, '/join');
    pages.push(page);
  }
  for (const [i, page] of pages.entries()) {
    const first = await waitFor(
      `page ${i} to receive the other's audio and video`,
      () => receivedMedia(page),
      (m) => m.videoTracks === 1 && m.audioTracks === 1 && m.framesDecoded > 5 && m.totalSamplesReceived > 0,
      30_000,
    );
    // Still flowing: later counters are higher, however long the wait took.
    const later = await waitFor(
      `page ${i}'s media to keep flowing`,
      () => receivedMedia(page),
      (m) => m.framesDecoded > first.framesDecoded + 10 && m.totalSamplesReceived > first.totalSamplesReceived + 4800,
    );
    assert.equal(later.videoTracks, 1);
  }
  const status = await pages[0]!.locator('#status').textContent();
  assert.doesNotMatch(status ?? '', /Could not join/);
  const names = await waitFor(
    'both guests listed',
    async () => pages[0]!.locator('#participants li').allTextContents(),
    (n) => n.length === 2,
  );
  assert.equal(new Set(names.map((n) => n.replace(' (you)', ''))).size, 2, `two distinct guests: ${names.join(', ')}`);
  assert.equal(output.text.split(key).length - 1, 1, 'the key is printed once, and never logged');
  // What a new user who opens the console sees: nothing wrong (not even a missing favicon).
  assert.deepEqual(consoleErrors, []);

  gateway.kill('SIGTERM');
  const [code] = await once(gateway, 'exit');
  assert.equal(code, 0, output.text.slice(-2000));
});

test('in production (NODE_ENV=production, as in the Docker image) the compiled gateway creates no demo tenant and prints no credential', async () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-start-prod-'));
  onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
  const { gateway, output } = spawnCompiled(dataDir, { NODE_ENV: 'production' });
  onTestFinished(() => {
    if (gateway.exitCode === null) gateway.kill('SIGKILL');
  });
  const printed = await waitFor(
    'the banner',
    async () => output.text,
    (o) => /Vigie is running at/.test(o) || gateway.exitCode !== null,
    60_000,
  );
  assert.equal(gateway.exitCode, null, printed);
  assert.doesNotMatch(printed, /API key|Demo|token|eyJ/i);
  assert.equal(existsSync(path.join(dataDir, 'demo-tenant.json')), false, 'no demo tenant is created in production');
  gateway.kill('SIGTERM');
  await once(gateway, 'exit');
});

test('tenants from every source are built by one schema (a demo tenant file from an older version, tenants passed in code); no demo with configured tenants', async () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-demo-'));
  try {
    const config = loadConfig({ VIGIE_DATA_DIR: dataDir });
    // What earlier versions wrote: no webhooks, no allowedLocations, no retentionPolicy.
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      path.join(dataDir, 'demo-tenant.json'),
      JSON.stringify({
        id: 'demo',
        name: 'Demo tenant',
        embedOrigins: [],
        apiKeys: [{ id: 'abcd1234', hash: generateApiKey().hash, scopes: ['admin'] }],
      }),
    );
    const demo = prepareDemo(config, {});
    assert.ok(demo, 'the demo applies with no tenant outside production');
    assert.equal(demo.createdApiKey, undefined, 'an existing demo tenant keeps its key');
    assert.deepEqual(config.tenants[0]!.webhooks, []);
    assert.deepEqual(config.tenants[0]!.allowedLocations, ['FR']);
    assert.equal(
      prepareDemo(loadConfig({ VIGIE_DATA_DIR: dataDir }), { NODE_ENV: 'production' }),
      undefined,
      'no demo in production',
    );
    const withTenant = loadConfig({ VIGIE_DATA_DIR: dataDir }, { tenants: [{ id: 'acme' }] });
    assert.equal(prepareDemo(withTenant, {}), undefined, 'no demo when tenants are configured');
    assert.equal(withTenant.tenants.length, 1);

    const db = await openDatabase({ dataDir: path.join(dataDir, 'postgres') });
    const registry = await TenantRegistry.open({ db, fileTenants: [{ id: 'bare' } as never], log: silentLog });
    assert.deepEqual(registry.require('bare').webhooks, []);
    assert.deepEqual(registry.require('bare').apiKeys, []);
    await registry.close();
    await db.close();
    assert.equal(
      readFileSync(path.join(dataDir, 'demo-tenant.json'), 'utf8').includes('webhooks'),
      false,
      'the file itself is not rewritten',
    );
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
