import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { Page } from 'playwright-core';
import { turnCredentials } from '../src/auth/turnCredentials.js';
import { startCoturn, type Coturn } from './helpers/coturn.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';

const TURN_SECRET = 'turn-test-secret-0123456789abcdef';
let coturn: Coturn;
let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;

beforeAll(async () => {
  coturn = await startCoturn({ secret: TURN_SECRET, realm: 'vigie.test' });
  gw = await startGateway({
    ice: {
      turnUrls: [`${coturn.url}?transport=udp`],
      turnSecret: TURN_SECRET,
      stunUrls: [`stun:127.0.0.1:${coturn.port}`],
    },
  });
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await coturn?.stop();
});

interface UclientResult {
  code: number | null;
  output: string;
}

/** One TURN client-to-client allocation through coturn (relay to a loopback peer), with a timeout. */
function uclient(username: string, password: string): Promise<UclientResult> {
  const args = [
    '-y',
    '-n',
    '1',
    '-m',
    '1',
    '-l',
    '170',
    '-e',
    '127.0.0.1',
    '-u',
    username,
    '-w',
    password,
    '-p',
    String(coturn.port),
    '127.0.0.1',
  ];
  return new Promise((resolve, reject) => {
    execFile('turnutils_uclient', args, { timeout: 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT')
        return reject(new Error('turnutils_uclient is required (apt-get install coturn)'));
      if (err?.killed) return reject(new Error(`turnutils_uclient timed out:\n${stdout}${stderr}`));
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, output: stdout + stderr });
    });
  });
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** coturn (-v) logs one such line for every allocation it grants. */
const allocated = (username: string) =>
  new RegExp(`user <${escapeRegExp(username)}>: incoming packet ALLOCATE processed, success`);
const unauthorized = (username: string) =>
  new RegExp(`user <${escapeRegExp(username)}>: incoming packet message processed, error 401: Unauthorized`);
const waitForLog = (what: string, re: RegExp) =>
  waitFor(
    what,
    async () => re.test(coturn.logs()),
    (ok) => ok,
    10_000,
  );

test('the credentials in the join response allocate on coturn; expired or forged ones are refused', async () => {
  const client = await gw.connect();
  const joined = await client.request('join', { token: await gw.mint({ room: 'turn-cli', identity: 'cli' }) });
  const turn = (joined.iceServers as Array<{ urls: string[]; username?: string; credential?: string }>).find((s) =>
    s.urls.some((u) => u.startsWith('turn:')),
  );
  assert.ok(turn, `a TURN server is offered: ${JSON.stringify(joined.iceServers)}`);
  assert.deepEqual(turn.urls, [`${coturn.url}?transport=udp`]);
  assert.ok(turn.username && turn.credential);
  assert.deepEqual(
    joined.iceServers.find((s: { urls: string[] }) => s.urls.some((u) => u.startsWith('stun:'))),
    { urls: [`stun:127.0.0.1:${coturn.port}`] },
  );
  const [expiry, label] = turn.username.split(':');
  assert.equal(label, joined.peerId, 'the username is labelled with the peer id, not the identity');
  assert.ok(Number(expiry) > Date.now() / 1000, 'the credential expires in the future');

  const ok = await uclient(turn.username, turn.credential);
  assert.equal(ok.code, 0, `turnutils_uclient succeeds:\n${ok.output}`);
  assert.doesNotMatch(ok.output, /Cannot complete Allocation/);
  await waitForLog('coturn to log the granted allocation', allocated(turn.username));

  const expired = turnCredentials(TURN_SECRET, 'x', -60);
  const forged = turnCredentials('not-the-turn-secret-0123456789', 'forged', 600);
  for (const [what, cred] of [
    ['expired', expired],
    ['wrong secret', forged],
  ] as const) {
    const res = await uclient(cred.username, cred.credential);
    assert.notEqual(res.code, 0, `${what}: turnutils_uclient fails:\n${res.output}`);
    assert.match(res.output, /Cannot complete Allocation/, `${what}: no allocation`);
    await waitForLog(`coturn to answer 401 to the ${what} credential`, unauthorized(cred.username));
    assert.doesNotMatch(coturn.logs(), allocated(cred.username), `${what}: coturn granted no allocation`);
  }
});

async function openRelayPage(identity: string): Promise<Page> {
  const page = await browser!.context.newPage();
  page.on('pageerror', (e) => console.error(`[${identity}] page error:`, e.message));
  const token = await gw.mint({ room: 'turn-room', identity, name: identity });
  const res = await joinThroughPage(page, `${gw.url}/join?token=${token}&relay=1`);
  assert.equal(res?.status(), 200);
  return page;
}

interface SelectedPair {
  source: string;
  localType?: string;
  relayProtocol?: string;
  remoteAddress?: string;
  remotePort?: number;
}

/** The local and remote candidates of the selected ICE pair, as seen by each consumer and producer. */
function selectedPairs(page: Page): Promise<SelectedPair[]> {
  return page.evaluate(async () => {
    const call = (window as any).vigieCall;
    const out: any[] = [];
    const entries: Array<[string, any]> = [
      ...[...call.consumers.values()].map((c: any) => [`consumer:${c.kind}`, c]),
      ...[...call.producers.entries()].map(([s, p]: [string, any]) => [`producer:${s}`, p]),
    ] as any;
    for (const [source, x] of entries) {
      const stats = [...(await x.getStats()).values()] as any[];
      const byId = new Map(stats.map((r) => [r.id, r]));
      const transport = stats.find((r) => r.type === 'transport');
      const pair = transport?.selectedCandidatePairId ? byId.get(transport.selectedCandidatePairId) : undefined;
      const local = pair ? byId.get(pair.localCandidateId) : undefined;
      const remote = pair ? byId.get(pair.remoteCandidateId) : undefined;
      out.push({
        source,
        localType: local?.candidateType,
        relayProtocol: local?.relayProtocol,
        remoteAddress: remote?.address,
        remotePort: remote?.port,
      });
    }
    return out;
  });
}

/** What the gateway holds for 'turn-room', to explain a failure. */
function roomState() {
  const room = gw.app.sfu.getRoom('acme', 'turn-room');
  return [...(room?.peers.values() ?? [])].map((p) => ({
    identity: p.identity,
    producers: [...p.producers.values()].map((x) => `${x.kind}:${x.id}`),
    consumers: [...p.consumers.values()].map(
      (x) => `${x.kind}:${x.producerId}${x.paused ? ' paused' : ''}${x.producerPaused ? ' producerPaused' : ''}`,
    ),
  }));
}

test('two browsers in relay-only mode exchange audio and video through coturn', async () => {
  browser = await launchBrowser();
  // Both pages open at once: relay-b must not lose relay-a's tracks announced
  // while it is still loading its device (the SDK holds notifications until wired).
  const a = await openRelayPage('relay-a');
  const b = await openRelayPage('relay-b');

  for (const [name, page] of [
    ['relay-a', a],
    ['relay-b', b],
  ] as const) {
    await waitFor(
      `${name} to receive audio and video`,
      () => receivedMedia(page),
      (m) => m.videoTracks === 1 && m.audioTracks === 1 && m.framesDecoded > 5 && m.totalSamplesReceived > 0,
      30_000,
    ).catch(async (e: Error) => {
      throw new Error(
        `${e.message}\nroom: ${JSON.stringify(roomState())}\npage consumers: ${JSON.stringify(await page.evaluate(() => [...(window as any).vigieCall.consumers.values()].map((c: any) => ({ kind: c.kind, paused: c.paused, producerId: c.producerId }))))}\npage events: ${JSON.stringify(await page.evaluate(() => (window as any).vigieEvents))}`,
      );
    });
    const pairs = await selectedPairs(page);
    assert.deepEqual(
      pairs.map((p) => p.source).sort(),
      ['consumer:audio', 'consumer:video', 'producer:camera', 'producer:mic'],
      `${name}: ${JSON.stringify(pairs)}`,
    );
    for (const p of pairs) {
      assert.equal(
        p.localType,
        'relay',
        `${name} ${p.source}: the selected pair's local candidate is a TURN relay (${JSON.stringify(p)})`,
      );
      assert.equal(p.relayProtocol, 'udp', `${name} ${p.source}: relayed over UDP`);
      assert.equal(p.remoteAddress, '127.0.0.1');
      assert.ok(
        p.remotePort! >= 40000 && p.remotePort! <= 40999,
        `${name} ${p.source}: the remote candidate is the gateway's (${p.remotePort})`,
      );
    }
    // coturn granted this session's allocation, with the credentials from its own join response.
    const turnUser = await page.evaluate(
      () => ((window as any).vigieCall.info.iceServers as RTCIceServer[]).find((s) => s.username)?.username as string,
    );
    assert.ok(turnUser, `${name}: got TURN credentials`);
    await waitForLog(`coturn to log ${name}'s allocation`, allocated(turnUser));
    await waitForLog(
      `coturn to let ${name} relay to the gateway`,
      new RegExp(`user <${escapeRegExp(turnUser)}>: incoming packet CREATE_PERMISSION processed, success`),
    );
  }
  await a.close();
  await b.close();
});
