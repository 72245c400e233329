import { test } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { TENANT_ADMIN_KEY, startGateway } from './helpers/gateway.js';
import { startWebhookReceiver } from './helpers/webhookReceiver.js';
import { waitFor } from './helpers/browser.js';
import { isPrivateAddress } from '../src/webhooks/index.js';
import { ConfigError, loadConfig } from '../src/config/index.js';

test('SSRF: private, loopback and link-local targets are refused, at registration and at delivery', async () => {
  for (const a of [
    '127.0.0.1',
    '10.1.2.3',
    '172.20.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    'fe80::1',
    'fd00::1',
    '::ffff:127.0.0.1',
  ])
    assert.ok(isPrivateAddress(a), a);
  for (const a of ['8.8.8.8', '1.1.1.1', '2a00:1450:4007:80e::200e', '151.101.1.69'])
    assert.ok(!isPrivateAddress(a), a);

  const receiver = await startWebhookReceiver(() => undefined);
  // This endpoint arrives through the tenants file, as an operator mistake would: the dispatcher still refuses it.
  const gw = await startGateway({
    acmeWebhooks: [{ id: 'wh_loopback', url: receiver.url, events: ['*'], secret: 'x'.repeat(32), enabled: true }],
    webhooks: { allowPrivateTargets: false, allowHttp: true },
  });
  try {
    for (const url of [
      'http://127.0.0.1:9/hook',
      'http://localhost/hook',
      'http://10.0.0.5/',
      'http://[::1]:8080/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::ffff:127.0.0.1]/',
      'ftp://example.com/x',
      'http://user:pw@example.com/',
    ]) {
      const r = await gw.app.inject({
        method: 'POST',
        url: '/v1/webhooks',
        headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
        payload: { url },
      });
      assert.equal(r.statusCode, 400, `${url}: ${r.body}`);
      assert.equal(r.json().error.code, 'INVALID_REQUEST');
    }
    const c = await gw.connect();
    await c.request('join', { token: await gw.mint({ room: 'ssrf', identity: 'x' }) });
    const attempts = await waitFor(
      'refused attempts',
      () => gw.query(`SELECT outcome, error FROM vigie.webhook_attempts WHERE endpoint_id = 'wh_loopback'`),
      (r) => r.length >= 2,
    );
    assert.ok(
      attempts.every((a) => a.outcome === 'refused' && /private address/.test(a.error)),
      JSON.stringify(attempts),
    );
    assert.equal(receiver.received.length, 0, 'not one request reached the loopback target');
    assert.equal(await gw.app.webhooks.pendingCount(), 0, 'refused deliveries are not retried');
  } finally {
    await gw.close();
    await receiver.close();
  }
});

test('plain http is refused unless VIGIE_WEBHOOK_ALLOW_HTTP: at registration, at config load, and at delivery for an endpoint saved while it was allowed', async () => {
  assert.throws(
    () =>
      loadConfig(
        {},
        {
          tenants: [
            { id: 'acme', webhooks: [{ id: 'wh_plain', url: 'http://hooks.example.com/x', secret: 'x'.repeat(32) }] },
          ],
        },
      ),
    (e: ConfigError) =>
      e instanceof ConfigError && e.problems.some((p) => /tenants\.0\.webhooks\.0\.url: must be https/.test(p)),
  );
  assert.equal(
    loadConfig(
      { VIGIE_WEBHOOK_ALLOW_HTTP: 'true' },
      {
        tenants: [
          { id: 'acme', webhooks: [{ id: 'wh_plain', url: 'http://hooks.example.com/x', secret: 'x'.repeat(32) }] },
        ],
      },
    ).tenants[0]!.webhooks.length,
    1,
  );

  const receiver = await startWebhookReceiver(() => undefined);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-webhooks-http-'));
  // Private targets allowed throughout, so what is refused below is plain http, not the loopback address.
  let gw = await startGateway({ dataDir, webhooks: { allowPrivateTargets: true, allowHttp: true } });
  let endpointId: string;
  try {
    const created = await gw.app.inject({
      method: 'POST',
      url: '/v1/webhooks',
      headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
      payload: { url: receiver.url },
    });
    assert.equal(created.statusCode, 201, created.body);
    endpointId = created.json().id;
  } finally {
    await gw.close();
  }
  gw = await startGateway({ dataDir, webhooks: { allowPrivateTargets: true } });
  try {
    const r = await gw.app.inject({
      method: 'POST',
      url: '/v1/webhooks',
      headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
      payload: { url: 'http://hooks.example.com/x' },
    });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(r.json().error.code, 'INVALID_REQUEST');
    assert.match(r.json().error.message, /must be https/);
    const c = await gw.connect();
    await c.request('join', { token: await gw.mint({ room: 'plain-http', identity: 'x' }) });
    const attempts = await waitFor(
      'refused attempts',
      () =>
        gw.query(`SELECT outcome, error FROM vigie.webhook_attempts WHERE endpoint_id = {e:String}`, { e: endpointId }),
      (rows) => rows.length >= 2,
    );
    assert.ok(
      attempts.every((a) => a.outcome === 'refused' && /must be https/.test(a.error)),
      JSON.stringify(attempts),
    );
    assert.equal(receiver.received.length, 0, 'not one request went out over plain http');
    assert.equal(await gw.app.webhooks.pendingCount(), 0, 'refused deliveries are not retried');
  } finally {
    await gw.close();
    await receiver.close();
  }
});
