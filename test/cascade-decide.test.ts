/** When a join that reaches this node for another node's room extends the room here (src/cascade/decide.ts). */
import assert from 'node:assert/strict';
import { test } from 'vitest';
import { shouldExtend } from '../src/cascade/index.js';
import type { NodeInfo } from '../src/nodes/index.js';

const self = { id: 'node-b', region: 'eu-east' };
const owner = (o: Partial<NodeInfo> & { consumers?: number } = {}): NodeInfo => ({
  id: 'node-a',
  publicUrl: 'http://127.0.0.1:1',
  region: 'eu-west',
  startedAt: '2026-01-01T00:00:00.000Z',
  heartbeatAt: '2026-01-01T00:00:00.000Z',
  stoppedAt: null,
  alive: true,
  beating: true,
  draining: false,
  load: { workers: 2, rooms: 1, peers: 10, consumers: o.consumers ?? 100, cpu: 0.2 },
  ...o,
});

test('a full owner is extended, whatever the regions; an owner below its capacity is not', () => {
  const input = { self, regionAffinity: false, consumerCapacity: 100 };
  assert.equal(shouldExtend({ ...input, owner: owner({ consumers: 100 }) }), 'owner-full');
  assert.equal(shouldExtend({ ...input, owner: owner({ consumers: 100, region: 'eu-east' }) }), 'owner-full');
  assert.equal(shouldExtend({ ...input, owner: owner({ consumers: 99 }) }), undefined);
  assert.equal(
    shouldExtend({ ...input, consumerCapacity: 0, owner: owner({ consumers: 10_000 }) }),
    undefined,
    '0: no limit',
  );
});

test('region affinity extends only across regions', () => {
  const input = { self, regionAffinity: true, consumerCapacity: 0 };
  assert.equal(shouldExtend({ ...input, owner: owner() }), 'region-affinity');
  assert.equal(shouldExtend({ ...input, owner: owner({ region: 'eu-east' }) }), undefined);
  assert.equal(shouldExtend({ ...input, regionAffinity: false, owner: owner() }), undefined);
});

test('no extension of a room this node holds, of a dead or draining owner, or of an unknown one', () => {
  const input = { self, regionAffinity: true, consumerCapacity: 1 };
  assert.equal(shouldExtend({ ...input, owner: owner({ id: 'node-b' }) }), undefined);
  assert.equal(shouldExtend({ ...input, owner: owner({ alive: false }) }), undefined);
  assert.equal(shouldExtend({ ...input, owner: owner({ draining: true }) }), undefined);
  assert.equal(shouldExtend({ ...input, owner: undefined }), undefined);
});
