/**
 * The webhook outbox shared by several nodes: dispatchers on their own
 * connections to one PostgreSQL (a real server, and the embedded PGlite)
 * drain it to real HTTP receivers, each delivery exactly once and in enqueue
 * order per endpoint; a dispatcher that dies with a delivery claimed leaves it
 * to another once its lease expires. No gateway here: the classes are built
 * several times, as several nodes would build them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, onTestFinished, test } from 'vitest';
import { type Config, ConfigError, loadConfig } from '../src/config/index.js';
import type { Logger } from '../src/logging.js';
import { type Database, migrateStore, openDatabase } from '../src/store/index.js';
import { TenantRegistry } from '../src/tenants/index.js';
import { DeliveryQueue } from '../src/webhooks/DeliveryQueue.js';
import { STORE_MIGRATIONS } from '../src/webhooks/schema.js';
import { WebhookDispatcher } from '../src/webhooks/WebhookDispatcher.js';
import { waitFor } from './helpers/browser.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';
import { startWebhookReceiver } from './helpers/webhookReceiver.js';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) as unknown as Logger;
const SECRET = 'whsec_0123456789abcdefghijklmnop';
const OPTIONS: Config['webhooks'] = {
  allowPrivateTargets: true,
  allowHttp: true,
  timeoutMs: 1000,
  maxAttempts: 12,
  backoffBaseMs: 20,
  disableAfterFailures: 10_000,
  replayWindowSeconds: 300,
  leaseMs: 2000,
  pollMs: 50,
};

type Receiver = Awaited<ReturnType<typeof startWebhookReceiver>>;

interface Node {
  db: Database;
  dispatcher: WebhookDispatcher;
  /** The attempts this node made (its `webhook_attempts` rows). */
  attempts: Array<{ delivery_id: string; outcome: string }>;
}

describe.each(['postgres', 'pglite'] as const)('webhook outbox on %s', (kind) => {
  let server: PostgresServer | undefined;
  let dir: string;
  let shared: Database | undefined;
  const receivers: Receiver[] = [];
  const nodes: Node[] = [];
  let tenants: TenantRegistry;
  let tenantsDb: Database | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-outbox-'));
    if (kind === 'postgres') server = await startPostgres();
    else shared = await openDatabase({ dataDir: dir });
    for (let i = 0; i < 2; i++) receivers.push(await startWebhookReceiver(() => SECRET));
    // The tenants' registry, with its own connection to the store (the file's tenant needs no row there).
    tenantsDb = shared ?? (await openDatabase({ url: server!.url, dataDir: dir }));
    tenants = await TenantRegistry.open({
      db: tenantsDb,
      fileTenants: [
        {
          id: 'acme',
          webhooks: receivers.map((r, i) => ({ id: `hook${i}`, url: r.url, secret: SECRET, events: ['*'] })),
        } as never,
      ],
      legacyFile: path.join(dir, 'tenants.json'),
      log,
    });
  });
  afterAll(async () => {
    for (const n of nodes) await n.dispatcher.close();
    await tenants?.close();
    if (tenantsDb !== shared) await tenantsDb?.close();
    // The dead node's connection is closed already.
    for (const n of nodes) if (n.db !== shared) await n.db.close().catch(() => undefined);
    await shared?.close();
    for (const r of receivers) await r.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A node: its own connection to the store (PGlite is one process: the same instance), its own node id. */
  async function startNode(id: string, start = true, options = OPTIONS): Promise<Node> {
    const db = shared ?? (await openDatabase({ url: server!.url, dataDir: dir }));
    await migrateStore(db, 'webhooks', STORE_MIGRATIONS, log);
    const attempts: Node['attempts'] = [];
    const sink = { write: (_t: string, row: unknown) => attempts.push(row as Node['attempts'][number]) };
    const dispatcher = new WebhookDispatcher(new DeliveryQueue(db, id, log), tenants, options, sink, log);
    if (start) await dispatcher.start(db);
    const node = { db, dispatcher, attempts };
    nodes.push(node);
    return node;
  }

  const outboxEmpty = (n: Node) =>
    waitFor(
      'the outbox drained',
      () => n.dispatcher.pendingCount(),
      (c) => c === 0,
      60_000,
    );

  test('three dispatchers drain one outbox: each delivery once, in enqueue order per endpoint', async () => {
    const three = [await startNode('node-a', false), await startNode('node-b', false), await startNode('node-c')];
    // Stopped after this test, even a failed one: the next tests count on their own nodes only.
    onTestFinished(async () => {
      for (const n of three) await n.dispatcher.close();
    });
    // Every 7th first attempt fails: the delivery stays its endpoint's head, and the ones behind it wait.
    for (const r of receivers) {
      let seen = 0;
      r.setResponder((_id, count) => (count === 1 && ++seen % 7 === 0 ? 503 : 200));
    }
    const N = 40;
    // Published from the three nodes in turn; each publish resolves once its rows are in the outbox.
    for (let i = 0; i < N; i++) {
      assert.equal(await three[i % 3]!.dispatcher.publish('acme', 'room.started', { room: 'drain', i }), 2);
      if (i === N / 2) for (const n of three.slice(0, 2)) await n.dispatcher.start(n.db);
    }
    await waitFor(
      'every event at both endpoints',
      async () => receivers.map((r) => r.delivered().length),
      (c) => c.every((n) => n >= N),
      60_000,
    );
    await outboxEmpty(three[0]!);
    for (const r of receivers) {
      const delivered = r.delivered();
      assert.deepEqual(
        delivered.map((d) => d.body.data.i),
        [...Array(N).keys()],
        'in enqueue order, each once',
      );
      assert.equal(new Set(delivered.map((d) => d.id)).size, N, 'one delivery id per event');
      assert.ok(
        r.received.some((d) => d.status === 503),
        'some first attempts failed, and were retried before the next',
      );
      assert.ok(
        delivered.every((d) => d.signatureValid),
        'signed',
      );
    }
    // On a server, nodes share the work. PGlite is one process (one node in production): which of the
    // dispatchers in it wins each claim does not matter there.
    if (kind === 'postgres') {
      const workers = three.filter((n) => n.attempts.some((a) => a.outcome === 'delivered'));
      assert.ok(workers.length >= 2, `more than one node delivered (${three.map((n) => n.attempts.length)})`);
    }
  });

  test('claims racing on separate connections never hand one delivery to two nodes', async () => {
    const dbs = await Promise.all(
      [0, 1, 2].map(async () => shared ?? (await openDatabase({ url: server!.url, dataDir: dir }))),
    );
    onTestFinished(async () => {
      await dbs[0]!.query("DELETE FROM webhook_outbox WHERE tenant = 'race'");
      for (const db of dbs) if (db !== shared) await db.close();
    });
    await migrateStore(dbs[0]!, 'webhooks', STORE_MIGRATIONS, log);
    const queues = dbs.map((db, i) => new DeliveryQueue(db, `race-${i}`, log));
    // One delivery per endpoint: every row is a head, so every row is claimable at once.
    const now = Date.now();
    await queues[0]!.enqueue(
      Array.from({ length: 300 }, (_, i) => ({
        id: `race-${i}`,
        tenant: 'race',
        endpointId: `ep-${i}`,
        event: 'room.started',
        body: '{}',
        createdAt: now,
        attempts: 0,
        nextAt: now,
      })),
    );
    const claimed: string[] = [];
    await Promise.all(
      queues.map(async (q) => {
        for (;;) {
          const batch = await q.claim(7, 60_000, []);
          if (batch.length === 0) return;
          claimed.push(...batch.map((d) => d.id));
        }
      }),
    );
    assert.equal(claimed.length, new Set(claimed).size, 'no delivery claimed twice');
    assert.equal(claimed.length, 300, 'every delivery claimed');
  });

  test('a delivery enqueued on one node wakes an idle dispatcher on another at once (LISTEN/NOTIFY), not at its next poll', async () => {
    for (const r of receivers) r.setResponder(() => 200);
    const publisher = await startNode('node-publisher', false);
    // Its poll would come long after this test's deadline: only the notification can wake it.
    const idle = await startNode('node-idle', true, { ...OPTIONS, pollMs: 60_000 });
    onTestFinished(() => idle.dispatcher.close());
    // Its first look at the outbox, made at start, is over once a later query answers (PGlite runs them in turn).
    await idle.dispatcher.pendingCount();
    const before = receivers[1]!.delivered().length;
    assert.equal(await publisher.dispatcher.publish('acme', 'room.ended', { room: 'wake' }), 2);
    await waitFor(
      'the idle node woken',
      async () => receivers[1]!.delivered().filter((d) => d.body.data.room === 'wake'),
      (d) => d.length === 1,
      15_000,
    );
    assert.ok(receivers[1]!.delivered().length > before);
    assert.ok(
      idle.attempts.some((a) => a.outcome === 'delivered'),
      'sent by the idle node',
    );
    await outboxEmpty(idle);
  });

  test('an idle node woken by notifications backs off its polling of the outbox, up to 8 times the poll interval', async () => {
    const quiet = await startNode('node-quiet', false);
    onTestFinished(() => quiet.dispatcher.close());
    await outboxEmpty(quiet);
    let claims = 0;
    const claim = quiet.dispatcher.queue.claim.bind(quiet.dispatcher.queue);
    quiet.dispatcher.queue.claim = (...args) => {
      claims++;
      return claim(...args);
    };
    await quiet.dispatcher.start(quiet.db);
    await new Promise((r) => setTimeout(r, 3000));
    // Every 50 ms, 60 looks in 3 s; backing off (50, 100, 200, then 400 ms) at most 11. A slow machine only makes
    // fewer.
    assert.ok(claims <= 11, `${claims} looks at an empty outbox in 3 s`);
    assert.ok(claims >= 1, 'it looked at start');
  });

  // A node of its own dies only on a server: PGlite is in-process, one node, and dies with its dispatchers.
  if (kind === 'postgres')
    test('a node that dies with a delivery in flight: another sends it again (same id) once the lease expires', async () => {
      const [r0] = receivers;
      for (const r of receivers) {
        r.setResponder(() => 200);
        r.received.length = 0;
      }
      // The first attempt of the first delivery gets no answer while its node lives.
      let unblock: (status: number) => void = () => undefined;
      const held = new Promise<number>((resolve) => (unblock = resolve));
      onTestFinished(() => unblock(503));
      let first = '';
      r0!.setResponder((id, count) => {
        if (first && id !== first) return 200;
        first = id;
        return count === 1 ? held : 200;
      });
      // Its attempt would outlast the time this test takes to kill it: nothing is recorded before it dies.
      const doomed = await startNode('node-doomed', true, { ...OPTIONS, timeoutMs: 10_000, leaseMs: 12_000 });
      onTestFinished(() => doomed.dispatcher.close());
      for (let i = 0; i < 5; i++) await doomed.dispatcher.publish('acme', 'room.started', { room: 'takeover', i });
      await waitFor(
        'the first delivery in flight',
        async () => first,
        (id) => id !== '',
      );
      const { rows } = await doomed.db.query<{ claimed_by: string }>(
        'SELECT claimed_by FROM webhook_outbox WHERE id = $1',
        [first],
      );
      assert.deepEqual(rows, [{ claimed_by: 'node-doomed' }], 'claimed by the node about to die');
      // The node dies: its connections to the store go with it, and it records nothing more.
      await doomed.db.close();
      const heir = await startNode('node-heir');
      // Stopped after this test: a node left polling would send the next test's deliveries under its own limits.
      onTestFinished(() => heir.dispatcher.close());
      const delivered = await waitFor(
        'every delivery to hook0, sent by the other node',
        async () => r0!.delivered().filter((d) => d.body.data.room === 'takeover'),
        (d) => d.length >= 5,
        60_000,
      );
      assert.deepEqual(
        delivered.map((d) => d.body.data.i),
        [0, 1, 2, 3, 4],
        'none lost, in order: the ones behind waited for the first',
      );
      assert.equal(delivered[0]!.id, first);
      assert.equal(new Set(delivered.map((d) => d.id)).size, 5, 'each delivered once');
      assert.ok(
        heir.attempts.some((a) => a.delivery_id === first && a.outcome === 'delivered'),
        'the other node sent the delivery the dead one held',
      );
      await outboxEmpty(heir);
      // The cut-off attempt and the resend carry the same id: receivers dedupe by it.
      unblock(503);
      await waitFor(
        'the held request answered',
        async () => r0!.received.filter((d) => d.id === first).map((d) => d.status),
        (s) => s.length === 2,
      );
    });

  test('the failures that disable an endpoint are counted by all nodes together, not per node', async () => {
    const r1 = receivers[1]!;
    r1.received.length = 0;
    r1.setResponder(() => 503);
    onTestFinished(async () => {
      r1.setResponder(() => 200);
      await tenants.setWebhookEnabled('acme', 'hook1', true);
    });
    // Backoff long enough that the last failure is recorded, and the endpoint disabled, before another attempt.
    const options = { ...OPTIONS, disableAfterFailures: 6, backoffBaseMs: 50 };
    // Only this test's nodes send: every other one was stopped by its own test.
    const first = await startNode('node-fails-first', true, options);
    await first.dispatcher.publish('acme', 'room.started', { room: 'failing' });
    await waitFor(
      'two failed attempts from the first node',
      async () => r1.received.length,
      (n) => n >= 2,
    );
    await first.dispatcher.close();
    const byFirst = r1.received.length;
    assert.ok(byFirst < 6, `the first node alone made ${byFirst} attempts`);
    await startNode('node-fails-next', true, options);
    await waitFor(
      'the endpoint disabled',
      async () => tenants.get('acme')?.webhooks.find((w) => w.id === 'hook1')?.enabled,
      (enabled) => enabled === false,
      60_000,
    );
    assert.equal(r1.received.length, 6, `6 failures in all (${byFirst} on the first node), whichever node made them`);
  });
});

test('a lease shorter than an attempt is refused at config load: the attempt would outlive it and be sent twice', () => {
  assert.throws(
    () => loadConfig({ VIGIE_WEBHOOK_LEASE_MS: '4000', VIGIE_WEBHOOK_TIMEOUT_MS: '5000' }),
    (e: ConfigError) =>
      e instanceof ConfigError && e.problems.some((p) => /VIGIE_WEBHOOK_LEASE_MS must exceed/.test(p)),
  );
  assert.equal(loadConfig({ VIGIE_WEBHOOK_LEASE_MS: '6000', VIGIE_WEBHOOK_TIMEOUT_MS: '5000' }).webhooks.leaseMs, 6000);
});
