/**
 * Three Vigie nodes as separate processes (test/helpers/cluster.ts), two Chromium participants: joined through two
 * different nodes, they end up in one call on the node that serves the room; when that node is killed (SIGKILL),
 * their SDKs rejoin through another node and the call goes on there, and the webhook receivers get every event of
 * both calls exactly once by delivery id, in order per endpoint.
 */
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, test } from 'vitest';
import { generateApiKey } from '../src/auth/index.js';
import { type Database, openDatabase } from '../src/store/index.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import { type Cluster, type ClusterNode, clusterTenant, startCluster, WEBHOOK_ENV } from './helpers/cluster.js';
import {
  assertExactlyOnceInOrder,
  leftToResend,
  type Enqueued,
  logOutbox,
  slowReceivers,
} from './helpers/webhookLedger.js';

const MINT = generateApiKey('acme01');
const SECRET = 'whsec_cluster_0123456789abcdef';
const ROOM = 'across-nodes';

let cluster: Cluster;
let hooks: Awaited<ReturnType<typeof slowReceivers>>;
let db: Database;
let enqueued: () => Promise<Enqueued[]>;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
const pages: Page[] = [];

beforeAll(async () => {
  hooks = await slowReceivers(['hook-a', 'hook-b'], SECRET, 100);
  cluster = await startCluster({ tenants: [clusterTenant(MINT, hooks.receivers, SECRET)], env: WEBHOOK_ENV });
  db = await openDatabase({ url: cluster.pg.url, dataDir: '/nonexistent' });
  enqueued = await logOutbox(db);
  browser = await launchBrowser();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await db?.close();
  await cluster?.close();
  await hooks?.close();
}, 120_000);

/** The call a page is in (the id the server gave it at its last join), and what it has received so far. */
const callOf = (page: Page) => page.evaluate(() => (window as any).vigieCall?.info?.callId as string | undefined);
const eventsOf = (page: Page) => page.evaluate(() => (window as any).vigieEvents.map((e: any) => e.type) as string[]);
/** The node the room is placed on, from the room directory every node shares. */
const placement = async () =>
  (
    await db.query<{ node_id: string; call_id: string }>(
      'SELECT node_id, call_id FROM room_placements WHERE tenant = $1 AND room = $2',
      ['acme', ROOM],
    )
  ).rows;

async function mintOn(node: ClusterNode, identity: string): Promise<string> {
  const res = await fetch(`${node.url}/v1/tokens`, {
    method: 'POST',
    headers: { 'x-api-key': MINT.key, 'content-type': 'application/json' },
    body: JSON.stringify({ room: ROOM, identity, ttlSeconds: 3600 }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { token: string }).token;
}

/** Both pages in one call (the same call id), each decoding the other's video. */
async function inOneCall(what: string): Promise<string> {
  const seen = await waitFor(
    what,
    async () => ({
      calls: await Promise.all(pages.map(callOf)),
      frames: (await Promise.all(pages.map(receivedMedia))).map((m) => m.framesDecoded),
    }),
    (s) => s.calls[0] !== undefined && s.calls[0] === s.calls[1] && s.frames.every((f) => f > 10),
    90_000,
  );
  return seen.calls[0]!;
}

test('two Chromium participants who join through different nodes end up in one call and see each other', async () => {
  const [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
  for (const [node, identity] of [
    [a, 'alice'],
    [b, 'bob'],
  ] as const) {
    const page = await browser.context.newPage();
    pages.push(page);
    const res = await joinThroughPage(page, `${node.url}/join?token=${await mintOn(node, identity)}`, {
      name: identity,
    });
    assert.equal(res?.status(), 200);
  }
  const call = await inOneCall('both participants in one call, each seeing the other');
  const [placed] = await placement();
  assert.ok(placed, 'the room is placed');
  assert.ok(
    cluster.nodes.some((n) => n.id === placed.node_id),
    `placed on a node of the cluster: ${placed.node_id}`,
  );
  assert.equal(placed.call_id, call, 'the call the pages are in is the placed one');
});

test('SIGKILL the owning node: the participants are back in a call on another node, and the webhook receivers get every event exactly once, in order per endpoint', async () => {
  const [before] = await placement();
  assert.ok(before, 'the first test placed the room');
  const owner = cluster.nodes.find((n) => n.id === before.node_id)!;
  const oldCall = before.call_id;
  // The deliveries the owner is sending at this moment are held unanswered: it dies before it records them.
  const caught = hooks.holdFrom(owner.pid);
  await owner.kill();
  // What the kill left to be sent again: those, and whatever the owner still held claimed.
  const orphans = await leftToResend(db, owner.id, caught);
  hooks.release();

  const call = await inOneCall('both participants back in one call');
  assert.notEqual(call, oldCall, 'a new call, on another node');
  for (const page of pages) assert.ok((await eventsOf(page)).includes('reconnected'), 'the SDK rejoined by itself');
  const [after] = await placement();
  assert.ok(after && after.node_id !== owner.id, `placed again on a live node: ${after?.node_id}`);
  assert.ok(
    cluster.live().some((n) => n.id === after.node_id),
    `${after.node_id} is alive`,
  );
  assert.equal(after.call_id, call);

  const dataOf = (e: Enqueued) => (JSON.parse(e.body) as { data: Record<string, string> }).data;
  await waitFor(
    "every enqueued delivery at its endpoint, the new call's joins among them",
    async () => {
      const answered = new Set(hooks.arrivals.filter((x) => x.answered !== undefined).map((x) => x.id));
      const all = await enqueued();
      return {
        missing: all.filter((e) => !answered.has(e.id)).length,
        joined: all.filter((e) => e.event === 'participant.joined' && dataOf(e).callId === call).length,
      };
    },
    // Two participants, two endpoints.
    (s) => s.missing === 0 && s.joined === 4,
    90_000,
  );
  const all = await enqueued();
  for (const endpoint of ['hook-a', 'hook-b'])
    for (const c of [oldCall, call]) {
      const of = (event: string) =>
        all.filter((e) => e.endpoint_id === endpoint && e.event === event && dataOf(e).callId === c);
      assert.equal(of('room.started').length, 1, `${endpoint}: one room.started for call ${c}`);
      assert.deepEqual(
        of('participant.joined')
          .map((e) => dataOf(e).identity)
          .sort(),
        ['alice', 'bob'],
        `${endpoint}: alice and bob joined call ${c}, once each`,
      );
    }
  assertExactlyOnceInOrder(all, hooks.arrivals, orphans);
});
