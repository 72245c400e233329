/**
 * A room beyond one worker's budget, with three Vigie nodes as separate processes (test/helpers/cluster.ts:
 * compiled gateways, one PostgreSQL server, one ClickHouse endpoint over HTTP, radosgw S3): each node has two
 * mediasoup workers and a router consumer budget of four. Two Chromium participants fill the room's first router (each
 * receives the other's camera and microphone: four consumers); the third is served by a router on the other worker,
 * linked by pipeToRouter, and every participant receives every other one's video and audio.
 *
 * Seen from outside the node: the `producer.created` and `consumer.created` rows the node writes to ClickHouse name
 * the worker and router each track is on.
 */
import assert from 'node:assert/strict';
import { createClient } from '@clickhouse/client';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, test } from 'vitest';
import { generateApiKey } from '../src/auth/index.js';
import { joinThroughPage, launchBrowser, waitFor } from './helpers/browser.js';
import { type Cluster, type ClusterNode, clusterTenant, startCluster } from './helpers/cluster.js';

const MINT = generateApiKey('acme01');
const ROOM = 'beyond-one-worker';
/** Two participants who receive each other's camera and microphone carry exactly this many consumers. */
const BUDGET = 4;

let cluster: Cluster;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
const pages: Page[] = [];

beforeAll(async () => {
  cluster = await startCluster({
    tenants: [clusterTenant(MINT, [], 'whsec_unused_0123456789abcdef')],
    env: { VIGIE_MEDIA_WORKERS: '2', VIGIE_MEDIA_ROUTER_CONSUMER_BUDGET: String(BUDGET) },
  });
  browser = await launchBrowser();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
}, 120_000);

/** Opens the join link of `identity`, minted on `node`, in a new page; the SDK follows a redirect to the owner. */
async function join(node: ClusterNode, identity: string): Promise<void> {
  const minted = await fetch(`${node.url}/v1/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': MINT.key },
    body: JSON.stringify({ identity, room: ROOM }),
  });
  assert.equal(minted.status, 200, await minted.clone().text());
  const { token } = (await minted.json()) as { token: string };
  const page = await browser.context.newPage();
  pages.push(page);
  assert.equal((await joinThroughPage(page, `${node.url}/join?token=${token}`, { name: identity }))?.status(), 200);
}

interface Seen {
  peerId?: string;
  callId?: string;
  /** By the peer id of the sender: video frames decoded and audio packets received. */
  from: Record<string, { frames: number; audioPackets: number }>;
}

/** What a page has received from each other participant, from its consumers' getStats(). */
const seenBy = (page: Page): Promise<Seen> =>
  page.evaluate(async () => {
    const call = (window as any).vigieCall;
    const from: Record<string, { frames: number; audioPackets: number }> = {};
    for (const consumer of call?.consumers.values() ?? []) {
      from[consumer.appData.peerId] ??= { frames: 0, audioPackets: 0 };
      const of = from[consumer.appData.peerId]!;
      for (const r of (await consumer.getStats()).values()) {
        if (r.type !== 'inbound-rtp') continue;
        if (r.kind === 'video') of.frames += r.framesDecoded ?? 0;
        else if (r.kind === 'audio') of.audioPackets += r.packetsReceived ?? 0;
      }
    }
    return { peerId: call?.info?.peerId, callId: call?.info?.callId, from };
  });

/** Every page in one call, decoding video and receiving audio from every other page. */
function everyoneReceivesEveryone(what: string): Promise<Seen[]> {
  return waitFor(
    what,
    () => Promise.all(pages.map(seenBy)),
    (all) =>
      all.every(
        (me) =>
          me.callId !== undefined &&
          me.callId === all[0]!.callId &&
          all.every(
            (other) =>
              other === me ||
              (other.peerId !== undefined &&
                (me.from[other.peerId]?.frames ?? 0) > 10 &&
                (me.from[other.peerId]?.audioPackets ?? 0) > 10),
          ),
      ),
    120_000,
  );
}

interface TrackRow {
  peer_id: string;
  node: string;
  event: 'producer.created' | 'consumer.created';
  worker: string;
  router: string;
  n: string;
}

/** The tracks the call's participants sent and received, by participant and by the worker and router they are on. */
async function tracksInClickHouse(callId: string): Promise<TrackRow[]> {
  const ch = createClient({ url: cluster.clickhouseUrl });
  try {
    const result = await ch.query({
      query: `SELECT peer_id, node, event, attrs['worker'] AS worker, attrs['router'] AS router, count() AS n
                FROM vigie.call_events
               WHERE tenant = 'acme' AND call_id = {call:String} AND event IN ('producer.created', 'consumer.created')
               GROUP BY peer_id, node, event, worker, router`,
      query_params: { call: callId },
      format: 'JSONEachRow',
    });
    return await result.json<TrackRow>();
  } finally {
    await ch.close();
  }
}

test("a room beyond one worker's consumer budget: consumers on two workers, media flowing to all", async () => {
  // Each joins through another node; the SDKs follow the redirects to the one that serves the room.
  const [one, two, three] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  await join(one, 'alice');
  await join(two, 'bob');
  // Alice and Bob receive each other: the first router carries its budget, and a newcomer needs another.
  await everyoneReceivesEveryone('alice and bob to receive each other');
  await join(three, 'carol');
  const seen = await everyoneReceivesEveryone('each of the three to receive the two others');
  const [alice, bob, carol] = seen.map((s) => s.peerId!) as [string, string, string];
  const callId = seen[0]!.callId!;

  // Two tracks sent and four received by each of the three participants.
  const rows = await waitFor(
    "every participant's producers and consumers in ClickHouse",
    () => tracksInClickHouse(callId),
    (rs) =>
      [alice, bob, carol].every((p) => {
        const count = (event: string) =>
          rs.filter((r) => r.peer_id === p && r.event === event).reduce((n, r) => n + Number(r.n), 0);
        return count('producer.created') >= 2 && count('consumer.created') >= 4;
      }),
    60_000,
  );
  const nodes = new Set(rows.map((r) => r.node));
  assert.equal(nodes.size, 1, `one node serves the room: ${[...nodes]}`);
  const owner = cluster.nodes.find((n) => nodes.has(n.id));
  assert.ok(owner, `served by a node of the cluster: ${[...nodes]}`);
  /** The one worker and router all of a participant's tracks are on. */
  const placeOf = (peer: string) => {
    const places = new Set(rows.filter((r) => r.peer_id === peer).map((r) => `${r.worker}/${r.router}`));
    assert.equal(places.size, 1, `${peer}: all its tracks on one worker and router: ${[...places]}`);
    const [worker, router] = [...places][0]!.split('/') as [string, string];
    assert.match(worker, /^\d+$/, `${peer}: the worker is named`);
    assert.ok(router, `${peer}: the router is named`);
    return { worker, router };
  };
  const first = placeOf(alice);
  assert.deepEqual(placeOf(bob), first, 'alice and bob share the first router');
  const second = placeOf(carol);
  assert.notEqual(second.worker, first.worker, 'carol is served on the other worker');
  assert.notEqual(second.router, first.router, 'by another router of the same room');
  const consumersOn = (worker: string) =>
    rows.filter((r) => r.event === 'consumer.created' && r.worker === worker).reduce((n, r) => n + Number(r.n), 0);
  assert.ok(consumersOn(first.worker) >= 8, `alice's and bob's consumers on worker ${first.worker}`);
  assert.ok(consumersOn(second.worker) >= 4, `carol's consumers on worker ${second.worker}`);
  // The node says so too.
  assert.match(owner.output(), /room spread to another worker/);
});
