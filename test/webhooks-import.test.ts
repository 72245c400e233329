/**
 * Upgrading a data dir from the version that kept pending webhook deliveries
 * in an fsynced journal (DATA_DIR/webhooks/deliveries.jsonl): the first start
 * moves them into the PostgreSQL outbox with their ids, attempts and order,
 * and deletes the journal (its bodies name people).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, test } from 'vitest';
import { waitFor } from './helpers/browser.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startWebhookReceiver } from './helpers/webhookReceiver.js';

const SECRET = 'whsec_0123456789abcdefghijklmnop';
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-webhooks-import-'));
const journal = path.join(dataDir, 'webhooks', 'deliveries.jsonl');
let journalText: string;
let gw: TestGateway;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;

const delivery = (id: string, n: number) => ({
  id,
  tenant: 'acme',
  endpointId: 'hook1',
  event: 'room.started',
  body: JSON.stringify({ id, event: 'room.started', tenant: 'acme', data: { room: 'upgraded', n } }),
  createdAt: Date.now() - 60_000,
  attempts: 0,
  nextAt: Date.now() - 60_000,
});

beforeAll(async () => {
  receiver = await startWebhookReceiver(() => SECRET);
  // Held back until the test has looked at the outbox.
  receiver.setResponder(() => 503);
  // The journal as the previous version wrote it: two delivered or given up, two pending (one already tried twice).
  mkdirSync(path.dirname(journal), { recursive: true });
  const lines = [
    { op: 'enqueue', d: delivery('dlv_old-1', 1) },
    { op: 'enqueue', d: delivery('dlv_old-2', 2) },
    { op: 'attempt', id: 'dlv_old-1', attempts: 2, nextAt: Date.now() - 1000 },
    { op: 'done', id: 'dlv_old-2' },
    { op: 'enqueue', d: delivery('dlv_old-3', 3) },
    { op: 'enqueue', d: delivery('dlv_old-4', 4) },
    { op: 'dead', id: 'dlv_old-4', reason: 'gave up after 12 attempts' },
  ];
  journalText = `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;
  writeFileSync(journal, journalText);
  gw = await startGateway({
    dataDir,
    acmeWebhooks: [{ id: 'hook1', url: receiver.url, secret: SECRET, events: ['*'] }],
    webhooks: { allowPrivateTargets: true, allowHttp: true, backoffBaseMs: 50, pollMs: 50 },
    writer: { flushIntervalMs: 100 },
  });
});
afterAll(async () => {
  await gw?.close();
  await receiver?.close();
});

test('the journal of the previous version is imported into the outbox on first start, then deleted', async () => {
  assert.ok(!existsSync(journal), 'the journal is gone: its bodies live in the outbox now');
  assert.ok(!existsSync(`${journal}.imported`), "and no copy is set aside, out of erasure's reach");
  const { rows } = await gw.app.db.query<{ id: string }>('SELECT id FROM webhook_outbox ORDER BY seq');
  assert.deepEqual(
    rows.map((r) => r.id),
    ['dlv_old-1', 'dlv_old-3'],
    'the pending deliveries, in their order, with their ids',
  );
  // Importing again (a start that died before the deletion) adds nothing.
  writeFileSync(journal, journalText);
  await gw.app.webhooks.queue.importJournal(journal);
  assert.equal(await gw.app.webhooks.pendingCount(), 2);
  assert.ok(!existsSync(journal));

  receiver.setResponder(() => 200);
  const delivered = await waitFor(
    'the imported deliveries sent',
    async () => receiver.delivered(),
    (d) => d.length >= 2,
    30_000,
  );
  assert.deepEqual(
    delivered.map((d) => d.id),
    ['dlv_old-1', 'dlv_old-3'],
    'in order, same ids, once each',
  );
  assert.deepEqual(
    delivered.map((d) => d.body.data.n),
    [1, 3],
  );
  assert.ok(delivered.every((d) => d.signatureValid));
  await waitFor(
    'the outbox empty',
    () => gw.app.webhooks.pendingCount(),
    (n) => n === 0,
  );
  // The attempts made before the upgrade count: the first one after it is the delivery's third.
  const attempts = await waitFor(
    'attempts of the imported delivery in ClickHouse',
    () =>
      gw.query<{ attempt: number; outcome: string }>(
        `SELECT attempt, outcome FROM vigie.webhook_attempts WHERE delivery_id = 'dlv_old-1' ORDER BY attempt`,
      ),
    (r) => r.some((a) => a.outcome === 'delivered'),
  );
  assert.equal(Number(attempts[0]!.attempt), 3);
});
