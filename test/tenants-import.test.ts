/**
 * A data dir made by the version before the control plane store: its
 * tenants.json (tenants changed through the admin API, and tombstones) is
 * imported into the embedded PostgreSQL at the first start, then renamed
 * tenants.json.imported; the next start reads the store only.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, test } from 'vitest';
import { generateApiKey } from '../src/auth/index.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { onPostgresServer } from './helpers/postgresSuite.js';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-tenants-import-'));
let gw: TestGateway | undefined;
afterAll(async () => {
  await gw?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('tenants.json from the previous version is imported at the first start, renamed, and kept across a restart', async () => {
  const key = generateApiKey('initech1');
  const webhookSecret = 'whsec_from-the-previous-version-0123456789';
  // What the previous version wrote (version 1): an API-created tenant, a changed file tenant, a removed one.
  const legacy = {
    version: 1,
    tenants: [
      {
        id: 'initech',
        name: 'Initech',
        apiKeys: [{ id: 'initech1', hash: key.hash, scopes: ['admin'], revoked: false }],
        webhooks: [
          { id: 'wh_0001', url: 'https://hooks.example.com/in', events: ['*'], secret: webhookSecret, enabled: true },
        ],
      },
      { id: 'acme', name: 'Acme as changed through the API', embedOrigins: [], apiKeys: [], webhooks: [] },
      { id: 'globex', removed: true },
    ],
  };
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'tenants.json');
  writeFileSync(file, JSON.stringify(legacy, null, 2), { mode: 0o600 });

  gw = await startGateway({ dataDir });
  const check = async () => {
    assert.equal(gw!.app.db.kind, onPostgresServer() ? 'postgres' : 'pglite');
    const res = await gw!.app.inject({ method: 'GET', url: '/v1/webhooks', headers: { 'x-api-key': key.key } });
    assert.equal(res.statusCode, 200, 'the imported key authenticates');
    assert.deepEqual(
      res.json().endpoints.map((e: { id: string }) => e.id),
      ['wh_0001'],
    );
    assert.equal(gw!.app.tenants.get('initech')!.webhooks[0]!.secret, webhookSecret);
    assert.equal(gw!.app.tenants.get('acme')?.name, 'Acme as changed through the API', 'the API change wins');
    assert.equal(gw!.app.tenants.has('globex'), false, 'the removed tenant stays removed');
    const { rows } = await gw!.app.db.query<{ id: string }>('SELECT id FROM tenants ORDER BY id');
    assert.deepEqual(
      rows.map((r) => r.id),
      ['acme', 'globex', 'initech'],
    );
  };
  await check();
  assert.equal(existsSync(file), false, 'renamed');
  assert.deepEqual(JSON.parse(readFileSync(`${file}.imported`, 'utf8')), legacy, 'kept as it was, never deleted');
  assert.equal(gw.logs().includes(webhookSecret), false, 'the import logs no secret');

  // Restart on the same data dir: the store has them, and the renamed file is not read again.
  await gw.close();
  gw = undefined;
  gw = await startGateway({ dataDir });
  await check();
  assert.equal(existsSync(file), false);
});
