import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import type { QualityIssue } from '../src/diagnosis/index.js';
import {
  GLOBEX_VIEWER_KEY,
  ROOMS_ONLY_KEY,
  TENANT_ADMIN_KEY,
  VIEWER_KEY,
  startGateway,
  type TestGateway,
} from './helpers/gateway.js';
import { waitFor } from './helpers/browser.js';
import { lossyPublisher, lossySubscriber } from './helpers/lossyMedia.js';
import { recordFromFirstFiles } from './helpers/recording.js';

/**
 * The call diagnosis through the REST API, on real media (ffmpeg behind a dropping UDP relay, a subscriber that
 * reports in RTCP), real ClickHouse (chdb) and a real recording: `GET /v1/calls/{callId}/diagnosis` names whose
 * network failed, when, who suffered, with a verdict per participant; it is tenant-scoped and audited; the
 * recording's metadata carries the issue with offsets from the start of its file.
 */
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ telemetry: { statsIntervalMs: 1000 }, writer: { flushIntervalMs: 200 } });
});
afterAll(() => gw?.close());

const api = (key: { key: string }, method: string, url: string, payload?: object) =>
  gw.app.inject({ method: method as 'GET', url, headers: { 'x-api-key': key.key }, ...(payload ? { payload } : {}) });

/** What the first test leaves for the others: the call, its people, and when the loss began and ended. */
const call = {} as {
  callId: string;
  alice: string;
  bob: string;
  issueId: string;
  lossOn: number;
  raisedSeen: number;
  lossOff: number;
  resolvedSeen: number;
};

test("the diagnosis names Alice's uplink loss, the subscriber it hurt, when, and a verdict per participant", async () => {
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'diag-api');
  call.callId = room.callId;
  const raised: QualityIssue[] = [];
  const resolved: QualityIssue[] = [];
  gw.app.diagnosis.observer.on('issue', (i) => i.room === room && raised.push(i));
  gw.app.diagnosis.observer.on('resolved', (i) => i.room === room && resolved.push(i));
  // As signaling does before a join: the pseudonyms are ready when the participants' rows are written.
  for (const identity of ['bot:alice', 'bob']) await gw.app.telemetry!.keys.pseudonymizer.pseudonym('acme', identity);
  const alice = await lossyPublisher(room, 'alice');
  const bob = await lossySubscriber(room, alice.bot.producer.id, 'bob');
  call.alice = gw.app.telemetry!.keys.participant(alice.peer);
  call.bob = gw.app.telemetry!.keys.participant(bob.peer);
  await waitFor(
    'media to flow to the subscriber',
    async () => bob.receiver.received(),
    (n) => n > 50,
  );
  // Recorded from before the loss to after it, so that the issue lies inside the file.
  const started = await api(TENANT_ADMIN_KEY, 'POST', '/v1/rooms/diag-api/recording', { action: 'start' });
  assert.equal(started.statusCode, 200, started.body);
  await recordFromFirstFiles(gw.app.config.dataDir, 1, 2000);

  call.lossOn = Date.now();
  alice.loss.dropEvery = 8; // 12.5% of Alice's packets lost on the way to the SFU
  const issue = await waitFor('an uplink issue', async () => raised.find((i) => i.kind === 'uplink_loss'), Boolean);
  call.raisedSeen = Date.now();
  call.issueId = issue!.id;
  call.lossOff = Date.now();
  alice.loss.dropEvery = undefined;
  await waitFor('the issue to end', async () => resolved.find((i) => i.id === issue!.id), Boolean);
  call.resolvedSeen = Date.now();
  await new Promise((r) => setTimeout(r, 2000));
  const stopped = await api(TENANT_ADMIN_KEY, 'POST', '/v1/rooms/diag-api/recording', { action: 'stop' });
  assert.equal(stopped.statusCode, 200, stopped.body);
  assert.ok(await gw.app.recording!.service.drain());

  const res = await api(ROOMS_ONLY_KEY, 'GET', `/v1/calls/${call.callId}/diagnosis`);
  assert.equal(res.statusCode, 200, res.body);
  const d = res.json();
  assert.equal(d.callId, call.callId);
  assert.equal(d.room, 'diag-api');
  assert.deepEqual(
    d.issues.map((i: { issue: string; participant: string; direction: string; kind: string }) => [
      i.issue,
      i.participant,
      i.direction,
      i.kind,
    ]),
    [['uplink_loss', call.alice, 'uplink', 'video']],
    "one issue: Alice's uplink, on her video",
  );
  const [found] = d.issues;
  assert.equal(found.issueId, call.issueId);
  assert.equal(found.name, 'alice', JSON.stringify(d));
  assert.deepEqual(found.affected, [{ participant: call.bob, name: 'bob' }], 'Bob, who watched her, suffered');
  assert.ok(found.evidence.loss_pct >= 5, `the evidence is the loss that triggered it: ${JSON.stringify(found)}`);
  assert.equal(typeof found.evidence.packets, 'number');
  const start = Date.parse(found.startedAt);
  const end = Date.parse(found.endedAt);
  assert.ok(call.lossOn <= start && start <= call.raisedSeen, `began once the loss did: ${found.startedAt}`);
  assert.ok(call.lossOff <= end && end <= call.resolvedSeen, `ended once the loss did: ${found.endedAt}`);
  assert.equal(found.resolution, 'recovered');

  const byName = new Map(d.participants.map((x: { name: string }) => [x.name, x]));
  assert.deepEqual([...byName.keys()].sort(), ['alice', 'bob']);
  const a = byName.get('alice') as Record<string, any>;
  const b = byName.get('bob') as Record<string, any>;
  assert.equal(a.participant, call.alice);
  assert.equal(a.identity, 'bot:alice');
  assert.deepEqual(a.peerIds, [alice.peer.id]);
  const clock = (iso: string) => iso.slice(11, 19);
  assert.equal(
    a.verdict,
    `alice's uplink lost ${found.evidence.loss_pct}% of video packets from ${clock(found.startedAt)} to ` +
      `${clock(found.endedAt)} UTC; everyone who received it was affected (bob).`,
  );
  assert.equal(
    b.verdict,
    `bob's own network was fine; bob suffered from alice's uplink loss from ${clock(found.startedAt)} to ` +
      `${clock(found.endedAt)} UTC.`,
  );
  // The join funnel is the join_funnel table's, where this deployment records it (src/telemetry).
  const [funnelTable] = await gw.query<{ n: string }>(
    `SELECT count() AS n FROM system.tables WHERE database = 'vigie' AND name = 'join_funnel'`,
  );
  for (const x of [a, b])
    assert.ok(Number(funnelTable!.n) ? Array.isArray(x.joinFunnel) : x.joinFunnel === null, JSON.stringify(x));
});

test("a subscriber's downlink loss is hers alone: her verdict says so, the others have none", async () => {
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'diag-api-down');
  const resolved: QualityIssue[] = [];
  gw.app.diagnosis.observer.on('resolved', (i) => i.room === room && resolved.push(i));
  for (const identity of ['bot:dan', 'erin', 'carol'])
    await gw.app.telemetry!.keys.pseudonymizer.pseudonym('acme', identity);
  const dan = await lossyPublisher(room, 'dan');
  const erin = await lossySubscriber(room, dan.bot.producer.id, 'erin');
  const carol = await lossySubscriber(room, dan.bot.producer.id, 'carol');
  await waitFor(
    'media to flow to both',
    async () => Math.min(erin.receiver.received(), carol.receiver.received()),
    (n) => n > 50,
  );
  carol.loss.dropEvery = 8;
  const issue = await waitFor(
    'an issue',
    async () => gw.app.diagnosis.openIssues().find((i) => i.room === room),
    Boolean,
  );
  // Read while it lasts: a call in progress is diagnosed up to now.
  const open = (await api(ROOMS_ONLY_KEY, 'GET', `/v1/calls/${room.callId}/diagnosis`)).json();
  assert.deepEqual(
    open.issues.map((i: { issue: string; name: string; endedAt: string | null }) => [i.issue, i.name, i.endedAt]),
    [['downlink_loss', 'carol', null]],
    JSON.stringify(open),
  );
  carol.loss.dropEvery = undefined;
  await waitFor('the issue to end', async () => resolved.find((i) => i.id === issue!.id), Boolean);
  const d = (await api(ROOMS_ONLY_KEY, 'GET', `/v1/calls/${room.callId}/diagnosis`)).json();
  const [found] = d.issues;
  assert.equal(found.direction, 'downlink');
  assert.deepEqual(found.affected, [{ participant: gw.app.telemetry!.keys.participant(carol.peer), name: 'carol' }]);
  const verdicts = Object.fromEntries(
    d.participants.map((x: { name: string; verdict: string }) => [x.name, x.verdict]),
  );
  const clock = (iso: string) => iso.slice(11, 19);
  assert.deepEqual(verdicts, {
    dan: 'No issue was detected for dan.',
    erin: 'No issue was detected for erin.',
    carol:
      `carol's downlink lost ${found.evidence.loss_pct}% of the video packets sent to them from ` +
      `${clock(found.startedAt)} to ${clock(found.endedAt)} UTC; only carol was affected.`,
  });
});

test("another tenant's key gets the 404 of a call that does not exist, and a key without rooms:read a 403", async () => {
  const unknown = await api(ROOMS_ONLY_KEY, 'GET', '/v1/calls/00000000-0000-4000-8000-000000000000/diagnosis');
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.json().error.code, 'NOT_FOUND');
  const other = await api(GLOBEX_VIEWER_KEY, 'GET', `/v1/calls/${call.callId}/diagnosis`);
  assert.equal(other.statusCode, 404, other.body);
  assert.deepEqual(other.json(), unknown.json(), 'nothing tells that the call exists elsewhere');
  const viewer = await api(VIEWER_KEY, 'GET', `/v1/calls/${call.callId}/diagnosis`);
  assert.equal(viewer.statusCode, 403);
  assert.equal(viewer.json().error.code, 'FORBIDDEN');
  const bad = await api(ROOMS_ONLY_KEY, 'GET', `/v1/calls/${'x'.repeat(65)}/diagnosis`);
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error.code, 'INVALID_REQUEST');
});

test('every read of a diagnosis, allowed or refused, is in the access log and the audit chain', async () => {
  const access = await gw.query<{ tenant: string; actor: string; result: string }>(
    `SELECT tenant, actor, result FROM vigie.access_log WHERE action = 'call.diagnosis' AND target = {t:String}
     ORDER BY ts`,
    { t: `call:${call.callId}` },
  );
  assert.deepEqual(
    access.map((r) => [r.tenant, r.actor, r.result]),
    [
      ['acme', 'key:acmero1', 'ok'],
      ['globex', 'key:globexv1', 'NOT_FOUND'],
      ['acme', 'key:acmeview1', 'FORBIDDEN'],
    ],
  );
  const chain = await gw.query<{ tenant: string; result: string }>(
    `SELECT tenant, result FROM vigie.audit_log WHERE action = 'call.diagnosis' AND target = {t:String} ORDER BY ts`,
    { t: `call:${call.callId}` },
  );
  assert.deepEqual(
    chain.map((r) => [r.tenant, r.result]),
    [
      ['acme', 'ok'],
      ['globex', 'NOT_FOUND'],
      ['acme', 'FORBIDDEN'],
    ],
  );
});

test("the recording's metadata lists the issue that overlaps it, with offsets from the start of the file", async () => {
  const list = await api(VIEWER_KEY, 'GET', '/v1/recordings?room=diag-api');
  assert.equal(list.statusCode, 200, list.body);
  const [rec] = list.json().recordings;
  assert.ok(rec, 'the call was recorded');
  const one = await api(VIEWER_KEY, 'GET', `/v1/recordings/${rec.id}`);
  assert.equal(one.statusCode, 200, one.body);
  const meta = one.json();
  const diagnosis = (await api(ROOMS_ONLY_KEY, 'GET', `/v1/calls/${call.callId}/diagnosis`)).json();
  const issue = diagnosis.issues[0];
  const fileStart = Date.parse(meta.startedAt);
  assert.deepEqual(meta.qualityIssues, [
    {
      issueId: call.issueId,
      issue: 'uplink_loss',
      direction: 'uplink',
      kind: 'video',
      participant: call.alice,
      startOffsetMs: Date.parse(issue.startedAt) - fileStart,
      endOffsetMs: Date.parse(issue.endedAt) - fileStart,
      startedAt: issue.startedAt,
      endedAt: issue.endedAt,
      evidence: issue.evidence,
    },
  ]);
  const [q] = meta.qualityIssues;
  assert.ok(
    q.startOffsetMs > 0 && q.startOffsetMs < q.endOffsetMs && q.endOffsetMs < meta.durationS * 1000,
    `the issue lies inside the ${meta.durationS}s file: ${JSON.stringify(q)}`,
  );
});
