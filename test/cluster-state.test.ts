/**
 * Two nodes on one PostgreSQL server agree on the secrets they generate and
 * on who is who: a join token minted on one is accepted by the other, a person
 * has one pseudonym on both, and an erasure on one reaches the other. Both gateways run in this
 * process, on one ClickHouse endpoint (a separate process), each with its own
 * data directory, as two machines would.
 */
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compactVerify, jwtVerify } from 'jose';
import { afterAll, beforeAll, test } from 'vitest';
import { startChdbHttp } from './helpers/chdbHttpServer.js';
import { waitFor } from './helpers/browser.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { type PostgresServer, startPostgres } from './helpers/postgres.js';

let pg: PostgresServer;
let chdb: Awaited<ReturnType<typeof startChdbHttp>>;
let chdbDir: string;
const nodes: TestGateway[] = [];
const legacySecret = 'a-secret-the-previous-version-kept-in-its-data-dir';
const legacyMaster = 'the-pseudonym-master-secret-of-the-previous-version';
/** The previous version's salt file format, and its pseudonym formula, for a subject seen before the upgrade. */
const tenantKey = Buffer.from(hkdfSync('sha256', legacyMaster, 'vigie-pseudonym-v1', 'tenant:acme', 32));
const hmac = (text: string) => createHmac('sha256', tenantKey).update(text).digest('hex');
const OLD_SUBJECT = 'seen-before@example.fr';
const OLD_SALT = 'salt-of-a-subject-seen-before';
let upgraded: string;

beforeAll(async () => {
  pg = await startPostgres();
  chdbDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chdb-'));
  chdb = await startChdbHttp(chdbDir);
  // The first node upgrades a data dir of the previous version, whose HS256 secret was a file.
  upgraded = mkdtempSync(path.join(os.tmpdir(), 'vigie-test-'));
  mkdirSync(path.join(upgraded, 'secrets'));
  writeFileSync(path.join(upgraded, 'secrets', 'jwt-hs256.secret'), legacySecret, { mode: 0o600 });
  writeFileSync(path.join(upgraded, 'secrets', 'pseudonym-master.secret'), legacyMaster, { mode: 0o600 });
  writeFileSync(
    path.join(upgraded, 'secrets', 'subject-salts.jsonl'),
    `${JSON.stringify({ k: hmac(`salt-lookup\0${OLD_SUBJECT}`), s: OLD_SALT })}\n`,
  );
  for (const [i, dataDir] of [upgraded, undefined].entries()) {
    nodes.push(
      await startGateway({
        dataDir,
        // Two live nodes with one id is a configuration error the node registry refuses.
        node: { id: `node-${i + 1}` },
        database: { url: pg.url },
        clickhouse: { url: chdb.url },
        // No configured secret: each node takes the one the cluster generated.
        auth: { hs256Secret: undefined },
        telemetry: { pseudonymSecret: undefined },
      }),
    );
  }
});

afterAll(async () => {
  for (const n of nodes) await n.close();
  rmSync(upgraded, { recursive: true, force: true });
  await chdb?.stop();
  await pg?.stop();
  rmSync(chdbDir, { recursive: true, force: true });
});

test('a join token minted on one node is accepted by another', async () => {
  const [a, b] = nodes as [TestGateway, TestGateway];
  const token = await a.mint({ room: 'across', identity: 'alice' });
  const client = await b.connect();
  const joined = await client.request('join', { token });
  assert.equal(joined.room, 'across');
  assert.equal(joined.tenant, 'acme');
});

test("the cluster's HS256 secret is the one the upgraded data dir had: its tokens stay valid", async () => {
  const token = await nodes[1]!.mint({ room: 'across', identity: 'bob' });
  const { payload } = await jwtVerify(token, new TextEncoder().encode(legacySecret), { algorithms: ['HS256'] });
  assert.equal(payload.sub, 'bob');
});

test('a person has one pseudonym on every node, and the upgraded data dir kept theirs', async () => {
  const [a, b] = nodes.map((n) => n.app.telemetry!.keys.pseudonymizer);
  const [onA, onB] = await Promise.all([
    a!.pseudonym('acme', 'carol@example.fr'),
    b!.pseudonym('acme', 'carol@example.fr'),
  ]);
  assert.equal(onA, onB);
  assert.equal(await b!.existing('acme', OLD_SUBJECT), hmac(`${OLD_SALT}\0${OLD_SUBJECT}`).slice(0, 32));
  assert.equal(existsSync(path.join(upgraded, 'secrets', 'subject-salts.jsonl')), false, 'the old salt file is gone');
});

test('a participant who joins through another node is keyed by the same pseudonym', async () => {
  const [a, b] = nodes as [TestGateway, TestGateway];
  const expected = await a.app.telemetry!.keys.pseudonymizer.pseudonym('acme', 'dora@example.fr');
  const client = await b.connect();
  const joined = await client.request('join', { token: await a.mint({ room: 'keyed', identity: 'dora@example.fr' }) });
  const peer = b.app.sfu.getRoom('acme', 'keyed')!.peers.get(joined.peerId)!;
  assert.equal(b.app.telemetry!.keys.participant(peer), expected);
});

test("an erasure on one node destroys the subject's salt for every node", async () => {
  const [a, b] = nodes.map((n) => n.app.telemetry!.keys.pseudonymizer);
  const before = await b!.pseudonym('acme', 'erin@example.fr');
  assert.equal(b!.cached('acme', 'erin@example.fr'), before, 'node B holds the salt in its cache');
  assert.equal(await a!.forget('acme', 'erin@example.fr'), true);
  await waitFor(
    "node B's cache to drop the salt",
    async () => b!.cached('acme', 'erin@example.fr'),
    (v) => v === undefined,
  );
  assert.equal(await b!.existing('acme', 'erin@example.fr'), undefined);
  assert.notEqual(await b!.pseudonym('acme', 'erin@example.fr'), before);
});

test("each node signs with its own key, and every node's JWKS verifies the others' signatures", async () => {
  const [a, b] = nodes.map((n) => n.app.compliance!.signer);
  assert.notEqual(a!.kid, b!.kid, 'private keys never leave their node');
  const jwks = (await nodes[0]!.app.inject('/.well-known/jwks.json')).json() as { keys: Array<{ kid: string }> };
  assert.ok(
    jwks.keys.some((k) => k.kid === b!.kid),
    `node A's JWKS lists node B's key: ${jwks.keys.map((k) => k.kid)}`,
  );
  const jws = await b!.sign({ checkpoint: 'signed on node B' });
  const { payload } = await compactVerify(jws, a!.verificationKeys, { algorithms: ['ES256'] });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(payload)), { checkpoint: 'signed on node B' });
});
