/**
 * The node registry on both engines: the embedded PGlite (one process) and a
 * real PostgreSQL 15 server, where each registry below has its own connection
 * as separate nodes would.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, onTestFinished, test } from 'vitest';
import { ConfigError } from '../src/config/index.js';
import type { Logger } from '../src/logging.js';
import {
  decideJoin,
  type NodeLoad,
  NodeRegistry,
  type NodeRegistryOptions,
  STORE_MIGRATIONS,
} from '../src/nodes/index.js';
import { type Database, migrateStore, openDatabase } from '../src/store/index.js';
import { waitFor } from './helpers/browser.js';
import { IDLE, registryOptions, startRegistryNode } from './helpers/nodes.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

const log = pino({ level: 'silent' }) as unknown as Logger;

describe.each(['pglite', 'postgres'] as const)('node registry on %s', (kind) => {
  let server: PostgresServer | undefined;
  let dir: string;
  let db: Database;
  /** Another node's connection (PGlite is one process: the same instance). */
  const connect = async () => (server ? openDatabase({ url: server.url, dataDir: dir }) : db);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-nodes-'));
    if (kind === 'postgres') server = await startPostgres();
    db = await openDatabase({ url: server?.url, dataDir: dir });
    await migrateStore(db, 'nodes', STORE_MIGRATIONS, log);
  });
  afterAll(async () => {
    await db?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A started registry on its own connection, stopped when the test ends. */
  async function node(id: string, o: Partial<NodeRegistryOptions> & { load?: () => Promise<NodeLoad> } = {}) {
    const conn = await connect();
    const registry = new NodeRegistry(conn, registryOptions(id, o), log);
    await registry.start();
    onTestFinished(async () => {
      await registry.stop();
      if (conn !== db) await conn.close();
    });
    return registry;
  }

  test('a heartbeat asked for while one runs publishes what changed before it was asked (the public URL)', async () => {
    // The likely cause of a CI failure (cascade.test): a gateway learns its URL once it listens, then asks for a
    // heartbeat; the timer's beat, running meanwhile, had read the old URL, and the call only joined it: another node
    // dialled the old URL until the next beat. Here the URL changes, and a beat is asked for, just after a running
    // beat has read it.
    let url = 'http://before-listen.test';
    let asked: Promise<void> | undefined;
    let armed = false; // not while the node registers
    const r = await node('n-url', {
      heartbeatSeconds: 3600,
      publicUrl: () => {
        const read = url;
        if (armed && !asked) {
          url = 'http://listening.test';
          asked = r.heartbeat();
        }
        return read;
      },
    });
    armed = true;
    await r.heartbeat();
    assert.ok(asked, 'a beat was asked for while one ran');
    await asked;
    const me = (await r.list()).find((n) => n.id === 'n-url');
    assert.equal(me?.publicUrl, 'http://listening.test', 'the heartbeat asked for after the change published it');
  });

  test('a node registers, heartbeats its load, and is shown stopped after it stops', async () => {
    let load = IDLE;
    const r = await node('n-load', { load: async () => load });
    const [me] = (await r.list()).filter((n) => n.id === 'n-load');
    assert.equal(me?.alive, true);
    assert.equal(me?.publicUrl, 'http://n-load.test');
    assert.equal(me?.region, 'eu');
    assert.deepEqual(me?.load, IDLE);
    load = { workers: 2, rooms: 1, peers: 3, consumers: 6, cpu: 0.25 };
    const seen = await waitFor(
      'the new load in the registry',
      async () => (await r.list()).find((n) => n.id === 'n-load'),
      (n) => n?.load.consumers === 6,
    );
    assert.deepEqual(seen?.load, load);
    assert.ok(Date.parse(seen!.heartbeatAt) >= Date.parse(me!.heartbeatAt));
    await r.stop();
    const after = (await r.list()).find((n) => n.id === 'n-load');
    assert.equal(after?.alive, false, 'a stopped node is not alive');
    assert.ok(after?.stoppedAt);
  });

  test('a second live node with the same id is refused with a clear message; the id is free once it stops', async () => {
    const first = await node('n-dup');
    const conn = await connect();
    onTestFinished(async () => {
      if (conn !== db) await conn.close();
    });
    const opts = registryOptions('n-dup', { publicUrl: () => 'http://other.test' });
    const second = new NodeRegistry(conn, opts, log);
    await assert.rejects(second.start(), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /VIGIE_NODE_ID: another live node already runs as "n-dup" \(http:\/\/n-dup\.test/);
      return true;
    });
    // The refused node changed nothing: the first one is still the registered one.
    const row = (await first.liveNodes()).find((n) => n.id === 'n-dup');
    assert.equal(row?.publicUrl, 'http://n-dup.test');
    await first.stop();
    const third = new NodeRegistry(conn, opts, log);
    await third.start();
    onTestFinished(() => third.stop());
    assert.equal((await third.liveNodes()).find((n) => n.id === 'n-dup')?.publicUrl, 'http://other.test');
  });

  test('rows of nodes silent for a week are forgotten when a node starts', async () => {
    const old = await node('n-old');
    await old.stop();
    await db.query("UPDATE nodes SET heartbeat_at = now() - interval '8 days' WHERE id = 'n-old'");
    const recent = await node('n-recent');
    await recent.stop();
    await db.query("UPDATE nodes SET heartbeat_at = now() - interval '6 days' WHERE id = 'n-recent'");
    const r = await node('n-new');
    const ids = (await r.list()).map((n) => n.id);
    assert.ok(!ids.includes('n-old'), ids.join());
    assert.ok(ids.includes('n-recent'), ids.join());
  });

  test('draining and missed heartbeats are published, and placement passes over those nodes', async () => {
    const busy = { workers: 2, rooms: 2, peers: 8, consumers: 40, cpu: 0.5 };
    const light = { workers: 2, rooms: 1, peers: 2, consumers: 4, cpu: 0.1 };
    // The reader counts a node beating for half its dead-after time (15 s), and alive for 30 s; p-idle beats once, as
    // it starts.
    const a = await node('p-busy', { load: async () => busy, heartbeatSeconds: 2, deadAfterSeconds: 30 });
    const b = await node('p-light', { load: async () => light });
    const c = await node('p-idle', { load: async () => IDLE, heartbeatSeconds: 3600 });
    // Other tests' nodes may still be listed: placement is decided among this test's.
    const ours = async () => (await a.liveNodes()).filter((n) => n.id.startsWith('p-'));
    const placed = async () => {
      const d = decideJoin({ self: 'p-busy', draining: false, openHere: false, live: await ours() });
      return d.kind === 'redirect' ? d.node.id : 'p-busy';
    };
    assert.equal(await placed(), 'p-idle');
    // A node silent that long (killed, say) is still alive, but gets no new room.
    await db.query("UPDATE nodes SET heartbeat_at = now() - interval '20 seconds' WHERE id = 'p-idle'");
    const silent = (await ours()).find((n) => n.id === 'p-idle')!;
    assert.deepEqual([silent.alive, silent.beating], [true, false]);
    assert.equal(await placed(), 'p-light');
    await b.markDraining();
    assert.equal((await a.list()).find((n) => n.id === 'p-light')?.draining, true);
    assert.equal(await placed(), 'p-busy', 'a draining node takes no new rooms');
    await c.stop();
    assert.equal(
      (await ours()).find((n) => n.id === 'p-idle'),
      undefined,
      'a stopped node is not live',
    );
  });
});

describe('node registry on a PostgreSQL server: node death', () => {
  let server: PostgresServer;
  let observer: Database;
  beforeAll(async () => {
    server = await startPostgres();
    observer = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
    await migrateStore(observer, 'nodes', STORE_MIGRATIONS, log);
  });
  afterAll(async () => {
    await observer?.close();
    await server?.stop();
  });

  test('a node killed with SIGKILL is shown dead, and its id can start again at once', async () => {
    const crashy = await startRegistryNode(server.url, 'crashy');
    const opts = registryOptions('crashy', { publicUrl: () => 'http://crashy-restarted.test' });
    const watcher = new NodeRegistry(observer, { ...opts, id: 'watcher' }, log);
    assert.equal((await watcher.liveNodes()).find((n) => n.id === 'crashy')?.alive, true);
    // While it lives, its id is taken.
    await assert.rejects(new NodeRegistry(observer, opts, log).start(), ConfigError);
    crashy.kill('SIGKILL');
    const dead = await waitFor(
      'the killed node to be shown dead',
      async () => (await watcher.list()).find((n) => n.id === 'crashy'),
      (n) => n?.alive === false,
    );
    assert.equal(dead?.stoppedAt, null, 'it died; it did not stop');
    assert.deepEqual(
      (await watcher.liveNodes()).map((n) => n.id),
      [],
    );
    // Its restart (an orchestrator's) is not refused: the killed process's identity lock died with its connection.
    const conn = await openDatabase({ url: server.url, dataDir: '/nonexistent' });
    const restarted = new NodeRegistry(conn, opts, log);
    await restarted.start();
    const back = (await watcher.liveNodes()).find((n) => n.id === 'crashy');
    assert.equal(back?.publicUrl, 'http://crashy-restarted.test');
    await restarted.stop();
    await conn.close();
  });
});
