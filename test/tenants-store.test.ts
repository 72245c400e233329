/**
 * Tenants, API keys and webhook endpoints on the control plane's PostgreSQL,
 * as two nodes see them: two TenantRegistry instances, each on its own
 * connection to the same store (on a real PostgreSQL 15 server, and on PGlite,
 * where the second "node" shares the one in-process engine).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { generateApiKey } from '../src/auth/index.js';
import type { TenantConfig } from '../src/config/index.js';
import type { Logger } from '../src/logging.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { TenantRegistry } from '../src/tenants/index.js';
import { waitFor } from './helpers/browser.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';
import { capturedLogger } from './helpers/unit.js';

const silent = pino({ level: 'silent' }) as unknown as Logger;
const FILE_KEY = generateApiKey('filekey1');
const FILE_TENANTS = [
  { id: 'acme', name: 'Acme', apiKeys: [{ id: 'filekey1', hash: FILE_KEY.hash, scopes: ['admin'] }] },
  { id: 'globex', name: 'Globex from the file' },
] as unknown as TenantConfig[];

/** Whether `registry` accepts `key`, or why not. */
function authResult(registry: TenantRegistry, key: string): string {
  try {
    return `ok:${registry.authenticate(key).tenant}`;
  } catch (err) {
    return (err as Error).message;
  }
}

describe.each(['postgres', 'pglite'] as const)('tenants on %s, seen by two nodes', (kind) => {
  let server: PostgresServer | undefined;
  let dir: string;
  let dbA: Database;
  let dbB: Database;
  let a: TenantRegistry;
  let b: TenantRegistry;
  /** Tenants for which node B emitted `changed`. */
  const changedOnB: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-tenants-'));
    if (kind === 'postgres') server = await startPostgres();
    dbA = await openDatabase({ url: server?.url, dataDir: dir });
    dbB = server ? await openDatabase({ url: server.url, dataDir: dir }) : dbA;
    a = await TenantRegistry.open({ db: dbA, fileTenants: FILE_TENANTS, log: silent });
    b = await TenantRegistry.open({ db: dbB, fileTenants: FILE_TENANTS, log: silent });
    b.observer.on('changed', (id) => changedOnB.push(id));
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    if (dbB !== dbA) await dbB?.close();
    await dbA?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a key created on one node authenticates on the other; revoked there, it stops authenticating', async () => {
    assert.equal(authResult(b, FILE_KEY.key), 'ok:acme', "the file's key works before any change");
    const created = await a.createApiKey('acme', ['rooms:read']);
    assert.equal(authResult(a, created.key), 'ok:acme', 'at once on the node that made it');
    await waitFor(
      'the key on node B',
      async () => authResult(b, created.key),
      (r) => r === 'ok:acme',
    );
    assert.ok(changedOnB.includes('acme'), 'node B emitted changed for the remote change');
    assert.equal(authResult(b, FILE_KEY.key), 'ok:acme', "the file's keys are kept by the first API change");

    await a.revokeApiKey('acme', created.id);
    await waitFor(
      'the revocation on node B',
      async () => authResult(b, created.key),
      (r) => r === 'API key revoked',
    );
    assert.equal(authResult(a, created.key), 'API key revoked');
  });

  test('tenant settings, creation, webhook endpoints and removal reach the other node', async () => {
    await b.upsert('acme', { name: 'Acme Corp' });
    await waitFor(
      'the new name on node A',
      async () => a.get('acme')?.name,
      (n) => n === 'Acme Corp',
    );

    await a.upsert('initech', { name: 'Initech', allowedLocations: ['FR'] });
    const seen = await waitFor('initech on node B', async () => b.get('initech'), Boolean);
    assert.deepEqual(seen!.allowedLocations, ['FR']);
    assert.deepEqual(seen!.apiKeys, [], 'built by the schema that fills the defaults');

    const endpoint = await a.addWebhook('initech', { url: 'https://hooks.example.com/in' });
    const onB = await waitFor('the endpoint on node B', async () => b.get('initech')?.webhooks[0], Boolean);
    assert.equal(onB!.secret, endpoint.secret, 'the signing secret is shared by every node');
    await b.setWebhookEnabled('initech', endpoint.id, false);
    await waitFor(
      'disabled on node A',
      async () => a.get('initech')?.webhooks[0]?.enabled,
      (e) => e === false,
    );
    await b.removeWebhook('initech', endpoint.id);
    await waitFor(
      'removed on node A',
      async () => a.get('initech')?.webhooks.length,
      (n) => n === 0,
    );

    await a.remove('initech');
    await waitFor(
      'initech gone on node B',
      async () => b.has('initech'),
      (has) => !has,
    );
    await assert.rejects(b.remove('initech'), (e: { code?: string }) => e.code === 'NOT_FOUND');
    await assert.rejects(
      b.createApiKey('nobody', ['admin']),
      (e: { code?: string }) => e.code === 'NOT_FOUND',
      'a change of an unknown tenant is refused, not written',
    );
    const { rows } = await dbA.query('SELECT id FROM tenants WHERE id = $1', ['nobody']);
    assert.equal(rows.length, 0);
  });

  test('keys created at the same time on both nodes are all kept (each change is made on the stored state)', async () => {
    const made = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).createApiKey('globex', ['rooms:read'])),
    );
    for (const node of [a, b])
      await waitFor(
        'every key on both nodes',
        async () => made.map((k) => authResult(node, k.key)),
        (r) => r.every((x) => x === 'ok:globex'),
      );
    assert.equal(a.get('globex')!.apiKeys.length, 6);
    assert.equal(a.get('globex')!.name, 'Globex from the file', 'the first change started from the file copy');
  });

  test('a tenant removed through the API does not come back from the config file, nor does a changed one revert', async () => {
    await a.remove('globex');
    await waitFor(
      'globex gone on node B',
      async () => b.has('globex'),
      (has) => !has,
    );
    const edited = [
      { ...FILE_TENANTS[0], name: 'Acme as the file now says' },
      { id: 'globex', name: 'Globex again' },
      { id: 'hooli', name: 'Hooli, only in the file' },
    ] as unknown as TenantConfig[];
    const c = await TenantRegistry.open({ db: dbB, fileTenants: edited, log: silent });
    try {
      assert.equal(c.has('globex'), false, 'the tombstone wins over the file');
      assert.equal(c.get('acme')?.name, 'Acme Corp', 'the API change wins over the file');
      assert.equal(c.get('hooli')?.name, 'Hooli, only in the file', 'a tenant the API never touched follows the file');
    } finally {
      await c.close();
    }
  });

  test('tenants.json of the previous version is imported once, renamed, and never overrides the store', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-tenants-legacy-'));
    const file = path.join(dataDir, 'tenants.json');
    const legacyKey = generateApiKey('legacy01');
    const legacy = {
      version: 1,
      tenants: [
        { id: 'umbrella', name: 'Umbrella', apiKeys: [{ id: 'legacy01', hash: legacyKey.hash, scopes: ['admin'] }] },
        { id: 'hooli', removed: true },
        { id: 'acme', name: 'Acme as an old file had it' },
      ],
    };
    writeFileSync(file, JSON.stringify(legacy), { mode: 0o600 });
    const { log, messages } = capturedLogger();
    const c = await TenantRegistry.open({
      db: dbA,
      fileTenants: [{ id: 'hooli' } as TenantConfig],
      legacyFile: file,
      log,
    });
    try {
      assert.equal(authResult(c, legacyKey.key), 'ok:umbrella');
      assert.equal(c.has('hooli'), false, 'a tombstone is imported too');
      assert.equal(c.get('acme')?.name, 'Acme Corp', 'what the store has already wins');
      assert.equal(existsSync(file), false);
      assert.deepEqual(JSON.parse(readFileSync(`${file}.imported`, 'utf8')), legacy, 'renamed, never rewritten');
      assert.ok(messages().includes('tenants.json imported into the store'));
      await waitFor(
        'umbrella on node B',
        async () => authResult(b, legacyKey.key),
        (r) => r === 'ok:umbrella',
      );
    } finally {
      await c.close();
    }
    // A second start (e.g. after a crash before the rename, with the file back): nothing changes.
    await a.upsert('umbrella', { name: 'Umbrella renamed' });
    writeFileSync(file, JSON.stringify(legacy));
    const d = await TenantRegistry.open({ db: dbA, fileTenants: [], legacyFile: file, log: silent });
    try {
      assert.equal(d.get('umbrella')?.name, 'Umbrella renamed');
      assert.ok(existsSync(`${file}.imported`) && !existsSync(file));
    } finally {
      await d.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
