import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { types as ms } from 'mediasoup';
import type { QualityIssue } from '../src/diagnosis/index.js';
import { createMediaNamespace, type MediaNamespace } from './helpers/netns.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';

/**
 * ICE restarts that do not recover. The worker runs in its own network namespace, where nftables can cut one
 * participant's path (and only it) while the SFU restarts that participant's ICE.
 */
let ns: MediaNamespace;
let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
beforeAll(async () => {
  ns = createMediaNamespace();
  gw = await startGateway({
    media: { workers: 1, listenIp: ns.mediaIp, workerBin: ns.workerBin },
    telemetry: { statsIntervalMs: 1000, clientStatsIntervalMs: 1000 },
    writer: { flushIntervalMs: 200 },
  });
  browser = await launchBrowser();
});
afterAll(async () => {
  try {
    await browser?.close();
    await gw?.close();
  } finally {
    ns?.close();
  }
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nft = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns.name, 'nft', ...args], { stdio: 'pipe' });

/**
 * Drops, inside the worker's namespace, the packets that arrive on (`in`: dport) or leave from (`out`: sport) the
 * ports of one WebRTC transport: UDP and TCP, every candidate it offers. A cut of its UDP port alone is not one: the
 * browser's own ICE restart finds the TCP candidate, and media flows again (CI run 27 saw a restart recover so).
 * Returns what lifts the cut; it is lifted when the test ends anyway.
 */
function cut(hook: 'in' | 'out', transport: ms.WebRtcTransport): () => void {
  const ports = [...new Set(transport.iceCandidates.map((c) => c.port))];
  let lifted = false;
  const lift = () => {
    if (lifted) return;
    lifted = true;
    nft('delete', 'table', 'inet', 'vigie');
  };
  nft('add', 'table', 'inet', 'vigie');
  onTestFinished(lift);
  const hookName = hook === 'in' ? 'input' : 'output';
  nft('add', 'chain', 'inet', 'vigie', hook, `{ type filter hook ${hookName} priority 0; }`);
  const side = hook === 'in' ? 'dport' : 'sport';
  nft('add', 'rule', 'inet', 'vigie', hook, `meta l4proto { tcp, udp } th ${side} { ${ports.join(', ')} } drop`);
  return lift;
}

/** Alice and Bob in a call; Alice's send transport, which the test restarts. */
async function call(room: string) {
  for (const name of ['alice', 'bob']) {
    const page = await browser.context.newPage();
    onTestFinished(() => page.close());
    await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room, identity: name, name })}`);
    await waitFor(
      'media',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 10 || name === 'alice',
    );
  }
  const r = gw.app.sfu.getRoom('acme', room)!;
  const alice = r.findPeerByIdentity('alice')!;
  const send = [...alice.transports.values()].find((t) => t.appData.direction === 'send') as ms.WebRtcTransport;
  await waitFor('Alice to be connected', async () => send.iceSelectedTuple, Boolean);
  const raised: QualityIssue[] = [];
  const resolved: QualityIssue[] = [];
  const onIssue = (i: QualityIssue) => i.room === r && raised.push(i);
  const onResolved = (i: QualityIssue) => i.room === r && resolved.push(i);
  gw.app.diagnosis.observer.on('issue', onIssue).on('resolved', onResolved);
  onTestFinished(() => {
    gw.app.diagnosis.observer.off('issue', onIssue).off('resolved', onResolved);
  });
  return { room: r, alice, send, raised, resolved };
}

test('an ICE restart after which media flows leaves no issue', async () => {
  const { room, alice, send, raised } = await call('ice-ok');
  await room.restartIce(alice, send.id);
  await sleep(14_000);
  assert.deepEqual(
    raised.map((i) => i.kind),
    [],
  );
});

test("an ICE restart after which nothing arrives is the participant's issue, until media comes back", async () => {
  const { room, alice, send, raised, resolved } = await call('ice-cut');
  // Alice's path to the SFU is cut inside the namespace: her packets no longer reach the worker.
  const lift = cut('in', send);
  await room.restartIce(alice, send.id);
  const issue = await waitFor(
    'a failed restart',
    async () => raised.find((i) => i.kind === 'ice_restart_failed'),
    Boolean,
  );
  assert.equal(issue!.peer, alice);
  assert.equal(issue!.direction, 'both');
  assert.ok(Number(issue!.evidence.since_restart_ms) >= 10_000, JSON.stringify(issue!.evidence));
  lift();
  await waitFor('media to come back', async () => resolved.find((i) => i.id === issue!.id), Boolean, 30_000);
  // Bob's view of Alice froze meanwhile. Whether his browser counts it as a freeze depends on the frame rate Alice's
  // encoder had fallen to (Chromium counts from three frame intervals), so it is not awaited: if it is reported, it
  // must be put down to Alice's side, with the issue that caused it.
  await new Promise((r) => setTimeout(r, 3000));
  const freeze = raised.find((i) => i.kind === 'video_frozen');
  const causes = raised.filter((i) => i.peer === alice).map((i) => i.id);
  if (freeze) assert.ok(causes.includes(String(freeze.evidence.cause_id)), JSON.stringify(freeze.evidence));
  // Whatever else the cut showed (her encoder, starved of bandwidth, may say so too), all of it is on Alice's side.
  assert.deepEqual(
    raised.filter((i) => i.peer !== alice).map((i) => `${i.kind} ${i.peer?.identity ?? 'server'}`),
    [],
  );
});

test("a network that swallows all the SFU sends one subscriber is one-way media on that subscriber's downlink", async () => {
  const { room, alice, raised, resolved } = await call('one-way-net');
  const bob = room.findPeerByIdentity('bob')!;
  const recv = [...bob.transports.values()].find((t) => t.appData.direction === 'recv') as ms.WebRtcTransport;
  await waitFor("Bob's receive path", async () => recv.iceSelectedTuple, Boolean);
  // Everything the worker sends Bob is dropped as it leaves the namespace. His receiver reports then show no loss
  // (nothing arrives past the last packet they count), so the SFU's figures stay clean: only his browser can tell.
  const lift = cut('out', recv);
  const issue = await waitFor('one-way media', async () => raised.find((i) => i.kind === 'one_way_media'), Boolean);
  lift();
  assert.equal(issue!.peer, bob);
  assert.equal(issue!.direction, 'downlink');
  assert.deepEqual(issue!.affected, [bob]);
  assert.equal(issue!.evidence.received_packets, 0);
  assert.ok(Number(issue!.evidence.sfu_sent_packets) >= 10, JSON.stringify(issue!.evidence));
  assert.equal(issue!.evidence.publisher, gw.app.telemetry!.keys.participant(alice));
  await waitFor('media to come back', async () => resolved.find((i) => i.id === issue!.id), Boolean, 30_000);
  // Whatever else the blackout showed (Bob's video froze), none of it is put on Alice or the server.
  assert.deepEqual(
    raised.filter((i) => i.peer !== bob).map((i) => `${i.kind} ${i.peer?.identity ?? 'server'}`),
    [],
  );
});
