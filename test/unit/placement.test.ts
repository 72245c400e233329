import assert from 'node:assert/strict';
import { describe, test } from 'vitest';
import { decideJoin, type JoinSituation, signalingUrlOf } from '../../src/nodes/placement.js';
import type { NodeInfo, NodeLoad } from '../../src/nodes/index.js';

// The placement rule on its own (src/nodes/placement.ts); test/nodes-routing.test.ts runs it on three real nodes.

const node = (id: string, load: Partial<NodeLoad> = {}, draining = false, beating = true): NodeInfo => ({
  id,
  publicUrl: `http://${id}.test:8080`,
  region: 'eu',
  startedAt: '',
  heartbeatAt: '',
  stoppedAt: null,
  alive: true,
  beating,
  draining,
  load: { workers: 2, rooms: 0, peers: 0, consumers: 0, cpu: 0, ...load },
});

const decide = (s: Partial<JoinSituation> & { live: NodeInfo[] }) =>
  decideJoin({ self: 'a', draining: false, openHere: false, ...s });
const target = (d: ReturnType<typeof decideJoin>) => (d.kind === 'redirect' ? d.node.id : 'here');

describe('decideJoin', () => {
  test('a new room goes to the node with the fewest consumers per worker, then peers, then worker CPU', () => {
    const live = [node('a', { consumers: 10 }), node('b', { consumers: 4 }), node('c', { consumers: 4, workers: 1 })];
    assert.equal(target(decide({ live })), 'b', 'b: 2 consumers per worker, c: 4, a: 5');
    assert.equal(target(decide({ live: [node('a', { peers: 3 }), node('b', { peers: 1 })] })), 'b');
    assert.equal(target(decide({ live: [node('a', { cpu: 0.5 }), node('b', { cpu: 0.2 })] })), 'b');
  });

  test('ties go to the node that received the join; idle noise in worker CPU is a tie', () => {
    assert.equal(target(decide({ live: [node('b'), node('a')] })), 'here');
    assert.equal(target(decide({ live: [node('a', { cpu: 0.04 }), node('b', { cpu: 0.01 })] })), 'here');
    assert.equal(
      target(decide({ self: 'c', live: [node('a', { peers: 1 }), node('b'), node('c', { peers: 1 })] })),
      'b',
    );
  });

  test('a room open or placed here is served here; one placed on another live node is served there', () => {
    const live = [node('a', { consumers: 100 }), node('b')];
    assert.equal(target(decide({ live, openHere: true })), 'here');
    assert.equal(target(decide({ live, owner: live[0] })), 'here');
    assert.equal(target(decide({ live: [node('a'), node('b', { consumers: 100 })], owner: node('b') })), 'b');
  });

  test('a draining node takes no new room and sends even the joins of its own rooms elsewhere', () => {
    const live = [node('a', {}, true), node('b', { consumers: 100 }), node('c', {}, true)];
    assert.equal(target(decide({ live, draining: true })), 'b');
    assert.equal(target(decide({ live, draining: true, openHere: true, owner: live[0] })), 'b');
    assert.equal(target(decide({ live: [node('a', {}, true)], draining: true })), 'here', 'no one to send it to');
    assert.equal(target(decide({ live: [node('a'), node('b', {}, true)] })), 'here', 'a draining node is skipped');
  });

  test('a node that missed a heartbeat gets no new room, but keeps the rooms placed on it until it is dead', () => {
    const silent = node('b', {}, false, false);
    const live = [node('a', { consumers: 100 }), silent, node('c', { consumers: 50 })];
    assert.equal(target(decide({ live })), 'c', 'the idle but silent node is passed over');
    assert.equal(target(decide({ live, owner: silent })), 'b', 'its own room is still sent to it');
    assert.equal(target(decide({ self: 'b', live })), 'here', 'a node always counts itself as beating');
  });

  test("a node's signaling URL comes from its public URL", () => {
    assert.equal(signalingUrlOf('http://10.0.0.2:8080'), 'ws://10.0.0.2:8080/ws');
    assert.equal(signalingUrlOf('https://sfu-2.example.com/vigie/'), 'wss://sfu-2.example.com/vigie/ws');
  });
});
