import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLocalJWKSet } from 'jose';
import {
  exportAudit,
  identityColumns,
  legalBasis,
  loadSubprocessors,
  SUBJECT_TABLES,
  subprocessorReport,
  subprocessorReportMarkdown,
  verifyDigestSignature,
} from '../src/compliance/index.js';
import { loadConfig } from '../src/config/index.js';
import { Peer } from '../src/media/index.js';
import type { VigieError } from '../src/errors.js';
import {
  appendAuditEntries,
  DPO_KEY,
  dpoRequest,
  TENANT_ADMIN_KEY,
  VIEWER_KEY,
  startGateway,
  type TestGateway,
} from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import { recordFromFirstFiles } from './helpers/recording.js';

let gw: TestGateway;
beforeAll(async () => {
  // Browsers report their stats every second, so a short call has client_stats rows to export.
  gw = await startGateway({ writer: { flushIntervalMs: 100 }, telemetry: { clientStatsIntervalMs: 1000 } });
});
afterAll(() => gw?.close());

const dpo = (method: string, url: string, payload?: object) => dpoRequest(gw, method, url, payload);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const jwks = async () => createLocalJWKSet((await gw.app.inject('/.well-known/jwks.json')).json());
const ch = () => gw.app.clickhouse.client;

async function chain(tenant: string, n: number) {
  await appendAuditEntries(gw, tenant, n);
  await gw.app.compliance!.audit.checkpointAll();
}

test('tampering: an altered, a deleted and an inserted entry are each named by the verification', async () => {
  const audit = gw.app.compliance!.audit;
  for (const t of ['chain-a', 'chain-b', 'chain-c']) await chain(t, 12);
  for (const t of ['chain-a', 'chain-b', 'chain-c'])
    assert.deepEqual(await audit.verify(t), { ok: true, entries: 12, checkpoints: 1, anchored: 1, problems: [] });

  await ch().command({
    query: `ALTER TABLE vigie.audit_log UPDATE details = '{"i":999}' WHERE tenant = 'chain-a' AND seq = 7`,
    clickhouse_settings: { mutations_sync: '2' },
  });
  const altered = await audit.verify('chain-a');
  assert.deepEqual([altered.ok, altered.problem?.seq, altered.problem?.kind], [false, 7, 'altered']);

  await ch().command({
    query: `ALTER TABLE vigie.audit_log DELETE WHERE tenant = 'chain-b' AND seq = 5`,
    clickhouse_settings: { mutations_sync: '2' },
  });
  const deleted = await audit.verify('chain-b');
  assert.deepEqual([deleted.problem?.seq, deleted.problem?.kind], [5, 'deleted']);

  const [row] = await gw.query(`SELECT * FROM vigie.audit_log WHERE tenant = 'chain-c' AND seq = 3`);
  await ch().insert({
    table: 'vigie.audit_log',
    values: [{ ...row, actor: 'key:forger', hash: 'f'.repeat(64) }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: 'forged' },
  });
  const inserted = await audit.verify('chain-c');
  assert.equal(inserted.problem?.seq, 3);
  assert.ok(['inserted', 'altered'].includes(inserted.problem!.kind), JSON.stringify(inserted.problem));

  // Through the API and the CLI, for the DPO's own tenant.
  const verify = await dpo('GET', '/v1/compliance/audit/verify');
  assert.equal(verify.statusCode, 200);
  assert.equal(verify.json().ok, true);
  assert.equal(
    (
      await gw.app.inject({
        method: 'GET',
        url: '/v1/compliance/audit/verify',
        headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
      })
    ).statusCode,
    403,
    'DPO only',
  );
  const { stdout } = await promisify(execFile)(process.execPath, ['bin/vigie.mjs', 'audit', 'verify'], {
    env: { ...process.env, VIGIE_URL: gw.url, VIGIE_API_KEY: DPO_KEY.key },
  });
  assert.equal(JSON.parse(stdout).ok, true);
});

test('DPO exports (JSON Lines, CSV, HTML, PDF) verify against the published JWKS, and fail after one byte is changed', async () => {
  // Some access to personal data to export.
  await gw.app.inject({ method: 'GET', url: '/v1/recordings', headers: { 'x-api-key': VIEWER_KEY.key } });
  const from = new Date(Date.now() - 3600_000).toISOString();
  const to = new Date(Date.now() + 60_000).toISOString();
  const keys = await jwks();
  for (const format of ['jsonl', 'csv', 'html', 'pdf']) {
    const created = await dpo('POST', '/v1/compliance/exports', { from, to, format });
    assert.equal(created.statusCode, 201, created.body);
    const { jws, sha256: digest, download } = created.json();
    const file = (await dpo('GET', download)).rawPayload;
    assert.equal(sha256(file), digest);
    assert.ok(await verifyDigestSignature(jws, sha256(file), keys), `${format} verifies`);
    const tampered = Buffer.from(file);
    const mid = Math.floor(tampered.length / 2);
    tampered[mid] = tampered[mid]! ^ 0x01;
    assert.equal(
      await verifyDigestSignature(jws, sha256(tampered), keys),
      false,
      `${format}: one changed byte breaks it`,
    );
    if (format === 'jsonl') {
      const lines = file
        .toString()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.ok(
        lines.some(
          (l) => l.action === 'recordings.list' && l.actor === 'key:acmeview1' && /6\(1\)/.test(l.legal_basis),
        ),
        'who accessed what, with the legal basis',
      );
    }
    if (format === 'csv')
      assert.match(
        file.toString().split('\n')[0]!,
        /^seq,ts,actor,action,target,subject,result,source_ip,legal_basis,hash$/,
      );
    if (format === 'pdf') assert.equal(file.subarray(0, 5).toString(), '%PDF-');
  }
  const backwards = await dpo('POST', '/v1/compliance/exports', { from: to, to: from, format: 'csv' });
  assert.deepEqual([backwards.statusCode, backwards.json().error.code], [400, 'INVALID_REQUEST']);
  assert.match(backwards.json().error.message, /from must be before to/);

  // The CLI writes the export and its detached signature side by side.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-cli-'));
  const out = path.join(dir, 'audit.csv');
  await promisify(execFile)(
    process.execPath,
    ['bin/vigie.mjs', 'report', 'audit', '--from', from, '--to', to, '--format', 'csv', '--out', out],
    { env: { ...process.env, VIGIE_URL: gw.url, VIGIE_API_KEY: DPO_KEY.key } },
  );
  assert.ok(await verifyDigestSignature(readFileSync(`${out}.jws`, 'utf8').trim(), sha256(readFileSync(out)), keys));
});

test('audit exports: every format escapes hostile values, carries the legal basis of each rule, and pages through the whole period', async () => {
  const tenant = 'export-edge';
  const hostile = { actor: 'key:<script>alert(1)</script>', target: 'room:a "quoted", value\nnext & last' };
  const actions = ['dsar.erase', 'retention.delete', 'recording.legal_hold.set', 'recording.delete', 'recording.read'];
  for (const action of actions)
    await gw.app.compliance!.audit.append({ tenant, ...hostile, action, details: { why: 'test' } });
  await gw.app.compliance!.audit.flush();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-export-'));
  const period = {
    client: ch(),
    db: 'vigie',
    tenant,
    from: new Date(Date.now() - 3600_000),
    to: new Date(Date.now() + 60_000),
  };

  const jsonl = await exportAudit({ ...period, format: 'jsonl', file: path.join(dir, 'a.jsonl') });
  const lines = readFileSync(path.join(dir, 'a.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(jsonl.rows, actions.length);
  assert.deepEqual(
    lines.map((l) => [l.seq, l.action, l.actor, l.target, l.legal_basis]),
    actions.map((a, i) => [i + 1, a, hostile.actor, hostile.target, legalBasis(a)]),
    'the engine applies the same legal-basis rules as legalBasis()',
  );
  assert.deepEqual(JSON.parse(lines[0].details), { why: 'test' });
  assert.match(lines[0].ts, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/, 'UTC timestamp as text');

  await exportAudit({ ...period, format: 'csv', file: path.join(dir, 'a.csv') });
  const csv = readFileSync(path.join(dir, 'a.csv'), 'utf8');
  assert.ok(
    csv.includes(`,"room:a ""quoted"", value\nnext & last",`),
    'CSV quotes, doubles quotes, keeps the newline inside the field',
  );

  await exportAudit({ ...period, format: 'html', file: path.join(dir, 'a.html') });
  const page = readFileSync(path.join(dir, 'a.html'), 'utf8');
  assert.ok(!page.includes('<script>'), 'no markup from the data');
  assert.ok(page.includes('<td>key:&lt;script>alert(1)&lt;/script></td>') && page.includes('next &amp; last'));
  assert.equal(
    page.slice(page.indexOf('<table class="entries">')).match(/<tr><td>/g)?.length,
    actions.length,
    'one row per entry after the summary page',
  );

  // More than two pages, with a period that cuts the chain at both ends.
  await ch().command({
    query: `INSERT INTO vigie.audit_log SELECT 'export-pages', number + 1, fromUnixTimestamp64Milli(toInt64(1795000000000 + number * 1000)), 'key:p', 'recording.read', '', '', 'ok', '', '{}', '', '' FROM numbers(30000)`,
    clickhouse_settings: { insert_deduplication_token: 'export-pages' },
  });
  const cut = {
    ...period,
    tenant: 'export-pages',
    from: new Date(1795000000000 + 1000 * 1000),
    to: new Date(1795000000000 + 26_500 * 1000),
  };
  const paged = await exportAudit({ ...cut, format: 'jsonl', file: path.join(dir, 'p.jsonl') });
  const seqs = readFileSync(path.join(dir, 'p.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).seq);
  assert.equal(paged.rows, 25_500);
  assert.deepEqual(
    [seqs.length, seqs[0], seqs.at(-1), seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1)],
    [25_500, 1001, 26_500, true],
  );

  const empty = await exportAudit({ ...period, tenant: 'nobody', format: 'csv', file: path.join(dir, 'e.csv') });
  assert.equal(empty.rows, 0);
  assert.equal(
    readFileSync(path.join(dir, 'e.csv'), 'utf8'),
    'seq,ts,actor,action,target,subject,result,source_ip,legal_basis,hash\n',
  );

  // A period too long for a printable export is refused before any work, with a stable code.
  await assert.rejects(
    exportAudit({
      ...period,
      format: 'html',
      file: path.join(dir, 'big.html'),
      maxRows: 2,
      maxRowsReason: 'a PDF export',
    }),
    (e: VigieError) =>
      e.code === 'INVALID_REQUEST' && /holds 5 audit entries; a PDF export is limited to 2/.test(e.message),
  );
  assert.ok(!readdirSync(dir).includes('big.html'));

  // A failed export leaves no file behind to be mistaken for a complete one.
  await assert.rejects(exportAudit({ ...period, db: 'no_such_db', format: 'jsonl', file: path.join(dir, 'x.jsonl') }));
  assert.ok(!readdirSync(dir).includes('x.jsonl'));
});

test('the subprocessor register validates against its published schema', async () => {
  const { subprocessorsSchemaJson } = await import('../scripts/compliance-schema.js');
  assert.equal(
    readFileSync(new URL('../compliance/subprocessors.schema.json', import.meta.url), 'utf8'),
    subprocessorsSchemaJson(),
    'run: npx tsx scripts/compliance-schema.ts',
  );
  const bad = path.join(mkdtempSync(path.join(os.tmpdir(), 'vigie-sub-')), 'bad.yaml');
  writeFileSync(bad, 'controller: { name: x, country: FR }\nsubprocessors:\n  - { name: Acme, country: France }\n');
  assert.throws(
    () => loadSubprocessors(bad),
    (e: Error) =>
      /subprocessors\.0\.country: ISO 3166-1 alpha-2/.test(e.message) &&
      /subprocessors\.0\.legalEntity/.test(e.message),
  );
});

test('the subprocessor report flags an undeclared S3 endpoint and a location outside the EU', async () => {
  const register = loadSubprocessors(new URL('../compliance/subprocessors.yaml', import.meta.url).pathname);
  const clean = subprocessorReport(register, loadConfig({}), [], {});
  assert.equal(clean.ok, true, JSON.stringify(clean.findings));
  const declared = subprocessorReport(
    register,
    loadConfig({
      VIGIE_STORAGE_DRIVER: 's3',
      VIGIE_S3_ENDPOINT: 'https://s3.fr-par.scw.cloud',
      VIGIE_S3_ACCESS_KEY: 'abc',
      VIGIE_S3_SECRET_KEY: 'abcdefgh',
    }),
    [],
    {},
  );
  assert.equal(declared.findings[0]!.processor, 'Scaleway Object Storage');
  assert.deepEqual(declared.findings[0]!.flags, []);

  const cfg = loadConfig({
    VIGIE_STORAGE_DRIVER: 's3',
    VIGIE_S3_ENDPOINT: 'https://s3.us-east-1.amazonaws.com',
    VIGIE_S3_ACCESS_KEY: 'abc',
    VIGIE_S3_SECRET_KEY: 'abcdefgh',
    VIGIE_STORAGE_COUNTRY: 'US',
  });
  const report = subprocessorReport(register, cfg, [], {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.eu01.nr-data.net',
  });
  assert.equal(report.ok, false);
  const storage = report.findings.find((f) => f.component.startsWith('object storage'))!;
  assert.ok(
    storage.flags.some((f) => f.startsWith('UNDECLARED_PROCESSOR')),
    JSON.stringify(storage),
  );
  assert.ok(storage.flags.includes('OUTSIDE_EU: US'));
  assert.ok(
    report.findings
      .find((f) => f.component.startsWith('OpenTelemetry'))!
      .flags.some((f) => f.startsWith('UNDECLARED_PROCESSOR')),
  );
  assert.match(
    subprocessorReportMarkdown(report, register),
    /\| object storage \(recordings\) \| `https:\/\/s3\.us-east-1\.amazonaws\.com` \| \*\*undeclared\*\*/,
  );
  const viaApi = await dpo('GET', '/v1/compliance/reports/subprocessors?format=html');
  assert.match(viaApi.body, /<table>/);
  const ropa = await dpo('GET', '/v1/compliance/reports/ropa?format=md');
  assert.match(ropa.body, /\| Call recording \|.*default: 30 day\(s\), then delete \(governance lock\)/);
  // The record promises no more than the code does: no encryption at rest on the local store, erasure as it is done.
  assert.doesNotMatch(ropa.body, /server-side encryption/);
  assert.match(
    ropa.body,
    /\| Audit trail \|.*never altered, so its hash chain still verifies; erasure destroys the person's pseudonym salt/,
  );
  assert.match(ropa.body, /\| Access records \|.*default: 1 year\(s\), then delete/);
});

test('every table with an identity or pseudonym column is covered by data-subject requests', async () => {
  const cols = await identityColumns(ch(), 'vigie');
  assert.ok(cols.length >= 8);
  for (const { table, column } of cols) {
    assert.ok(
      SUBJECT_TABLES[table],
      `table ${table} has a ${column} column but is not covered by DSAR (src/compliance/dsar.ts)`,
    );
    if (column !== 'identity') assert.equal(SUBJECT_TABLES[table]!.column, column, table);
  }
});

test('DSAR after a browser call: access returns that participant only; erasure leaves no trace but what a legal hold keeps, and says so', async () => {
  const browser = await launchBrowser();
  const identities = ['alice.martin@example.fr', 'bruno.petit@example.fr'];
  const [alice, bruno] = await Promise.all(
    identities.map((i) => gw.app.telemetry!.keys.pseudonymizer.pseudonym('acme', i)),
  );
  try {
    const pages = [];
    for (const identity of identities) {
      const page = await browser.context.newPage();
      await joinThroughPage(
        page,
        `${gw.url}/join?token=${await gw.mint({ room: 'dsar', identity, name: identity.split('@')[0] })}`,
      );
      pages.push(page);
    }
    for (const page of pages)
      await waitFor(
        'media',
        () => receivedMedia(page),
        (m) => m.framesDecoded > 5,
      );
    // The access archive must hold her client_stats: the call lasts until each browser has reported (on a fast
    // machine the recording below can end before a browser's first report).
    await waitFor(
      'client_stats from both browsers',
      async () => {
        await gw.app.telemetry!.writer.flush();
        return gw.query<{ participant: string }>(
          `SELECT DISTINCT participant FROM vigie.client_stats WHERE room = 'dsar'`,
        );
      },
      (rows) => [alice, bruno].every((p) => rows.some((r) => r.participant === p)),
    );
    await gw.app.inject({
      method: 'POST',
      url: '/v1/rooms/dsar/recording',
      headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
      payload: { action: 'start' },
    });
    await recordFromFirstFiles(gw.app.config.dataDir, 2, 1000);
    await gw.app.inject({
      method: 'POST',
      url: '/v1/rooms/dsar/recording',
      headers: { 'x-api-key': TENANT_ADMIN_KEY.key },
      payload: { action: 'stop' },
    });
    assert.ok(await gw.app.recording!.service.drain());
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    await browser.close();
  }
  // The catalog is written once each upload ends: wait for both participants' recordings.
  const recs = await waitFor(
    "both participants' recordings in the catalog",
    () =>
      gw.query<{ id: string; participants: string[] }>(
        `SELECT id, participants FROM vigie.recordings FINAL WHERE room = 'dsar'`,
      ),
    (rows) => [alice, bruno].every((who) => rows.some((r) => r.participants.includes(who!))),
  );
  const held = recs.find((r) => r.participants.includes(alice!))!;
  assert.equal((await dpo('PUT', `/v1/recordings/${held.id}/legal-hold`, { on: true })).statusCode, 200);

  // Access.
  const access = await dpo('POST', '/v1/compliance/dsar/access', { identity: identities[0] });
  assert.equal(access.statusCode, 201, access.body);
  const { download, jws, sha256: digest, files } = access.json();
  const tar = (await dpo('GET', download)).rawPayload;
  assert.equal(sha256(tar), digest);
  assert.ok(await verifyDigestSignature(jws, digest, await jwks()), 'the archive is signed');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-dsar-'));
  writeFileSync(path.join(dir, 'a.tar'), tar);
  await promisify(execFile)('tar', ['-xf', 'a.tar'], { cwd: dir });
  const all = readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('');
  assert.ok(all.includes(alice!) && all.includes(identities[0]!), 'her pseudonym and identity are in it');
  assert.ok(!all.includes(bruno!) && !all.includes(identities[1]!), "nobody else's");
  for (const t of ['track_stats', 'client_stats', 'call_events', 'participants'])
    assert.ok(
      files.find((f: { file: string; rows: number }) => f.file === `${t}.jsonl`).rows > 0,
      `${t} rows exported`,
    );
  assert.ok(
    files.some((f: { file: string }) => f.file.startsWith('recordings/')),
    'her recording is in the archive',
  );

  // Erasure.
  const erased = await dpo('POST', '/v1/compliance/dsar/erasure', { identity: identities[0] });
  assert.equal(erased.statusCode, 200, erased.body);
  const result = erased.json();
  assert.ok(
    result.kept.some(
      (k: { what: string; reason: string }) => k.what === `recording ${held.id}` && /legal hold/.test(k.reason),
    ),
    JSON.stringify(result.kept),
  );
  assert.ok(result.erased.find((e: { table: string; rows: number }) => e.table === 'track_stats').rows > 0);
  // A scan of every table: the identity is nowhere; the pseudonym only where the result says it was kept.
  const tables = (
    await gw.query<{ name: string }>(
      `SELECT name FROM system.tables WHERE database = 'vigie' AND engine NOT IN ('View', 'MaterializedView')`,
    )
  ).map((t) => t.name);
  for (const t of tables) {
    const [hit] = await gw.query(
      `SELECT count() AS c FROM vigie.${t} WHERE position(toString(tuple(*)), {id:String}) > 0`,
      { id: identities[0] },
    );
    assert.equal(Number(hit.c), 0, `identity found in ${t}`);
    const [ps] = await gw.query(
      `SELECT count() AS c FROM vigie.${t} WHERE position(toString(tuple(*)), {p:String}) > 0`,
      { p: alice },
    );
    if (Number(ps.c) > 0) assert.ok(['recordings', 'audit_log', 'dsar_requests'].includes(t), `pseudonym left in ${t}`);
  }
  const [bRows] = await gw.query(`SELECT count() AS c FROM vigie.track_stats WHERE participant = {p:String}`, {
    p: bruno,
  });
  assert.ok(Number(bRows.c) > 0, "the other participant's data is untouched");
  // The requests are recorded on PostgreSQL, received then completed; ClickHouse has a copy of each status.
  const requests = await gw.app.compliance!.dsar.list('acme', 10);
  assert.deepEqual(requests.map((r) => [r.kind, r.status]).sort(), [
    ['access', 'completed'],
    ['erasure', 'completed'],
  ]);
  await gw.app.telemetry!.writer.flush();
  const copies = await gw.query<{ request_id: string; statuses: string[] }>(
    `SELECT request_id, arraySort(groupArray(status)) AS statuses FROM vigie.dsar_requests GROUP BY request_id`,
  );
  assert.deepEqual(
    copies.map((c) => [c.request_id, c.statuses]).sort(),
    requests.map((r) => [r.requestId, ['completed', 'received']]).sort(),
  );
});

test("DSAR: rows that name other participants (a quality issue's `affected`, a freeze's `publisher`) disclose none of them in an access export, and an erasure takes the subject out of other people's rows", async () => {
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'dsar-mentions');
  const keys = gw.app.telemetry!.keys;
  const identities = ['carol@example.fr', 'dave@example.fr'];
  // As the join hook does: each participant's pseudonym is ready before they enter the room.
  const [pc, pd] = (await Promise.all(identities.map((i) => keys.pseudonymizer.pseudonym('acme', i)))) as [
    string,
    string,
  ];
  const [carol, dave] = identities.map((identity) => {
    const peer = new Peer(
      {
        identity,
        name: identity,
        tenant: 'acme',
        room: room.id,
        grants: new Set(),
        expiresAt: Number.MAX_SAFE_INTEGER,
      },
      () => undefined,
    );
    room.addPeer(peer);
    return peer;
  }) as [Peer, Peer];
  // The rows as the diagnosis writes them (src/diagnosis/CallDiagnosis.ts, #record): Carol's encoder held back her
  // video, which Dave watched; then Dave saw it freeze, and his row names her as its publisher.
  const events = gw.app.telemetry!.events;
  events.record(room, carol, 'quality.issue', 'track-c', '', {
    issue: 'encoder_limited',
    direction: 'uplink',
    affected: `${pd},${pc}`,
  });
  events.record(room, dave, 'quality.issue', 'track-d', '', {
    issue: 'video_frozen',
    direction: 'downlink',
    affected: pd,
    publisher: pc,
  });
  room.close('test');

  const access = await dpo('POST', '/v1/compliance/dsar/access', { identity: 'carol@example.fr' });
  assert.equal(access.statusCode, 201, access.body);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-dsar-'));
  writeFileSync(path.join(dir, 'a.tar'), (await dpo('GET', access.json().download)).rawPayload);
  await promisify(execFile)('tar', ['-xf', 'a.tar'], { cwd: dir });
  const rows = readFileSync(path.join(dir, 'call_events.jsonl'), 'utf8');
  const issue = rows
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((r) => r.event === 'quality.issue');
  assert.equal(issue?.attrs.affected, `[another participant],${pc}`, 'her issue, with Dave unnamed');
  assert.ok(
    !readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((f) => f.isFile())
      .some((f) => readFileSync(path.join(f.parentPath, f.name)).includes(pd)),
    "Dave's pseudonym is nowhere",
  );

  const erased = await dpo('POST', '/v1/compliance/dsar/erasure', { identity: 'carol@example.fr' });
  assert.equal(erased.statusCode, 200, erased.body);
  assert.deepEqual(erased.json().mentionsRedacted, [{ table: 'call_events', rows: 1 }]);
  const left = await gw.query<{ participant: string; attrs: Record<string, string> }>(
    `SELECT participant, attrs FROM vigie.call_events WHERE room = 'dsar-mentions' AND event = 'quality.issue'`,
  );
  assert.deepEqual(left, [
    { participant: pd, attrs: { issue: 'video_frozen', direction: 'downlink', affected: pd, publisher: '[erased]' } },
  ]);
  const [mentions] = await gw.query<{ c: string }>(
    `SELECT count() AS c FROM vigie.call_events WHERE position(toString(tuple(*)), {p:String}) > 0`,
    { p: pc },
  );
  assert.equal(Number(mentions?.c), 0, "Carol's pseudonym is in no call event");
});
