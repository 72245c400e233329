import { test } from 'vitest';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { WebSocket } from 'ws';
import { SignalingClient } from '../src/sdk/SignalingClient.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import { freePortRun } from './helpers/ports.js';

/** Opens two join pages in one room and waits until each decodes the other. */
async function browserPair(gw: TestGateway, room: string): Promise<{ pages: Page[]; close: () => Promise<void> }> {
  const browser = await launchBrowser();
  const pages: Page[] = [];
  for (const identity of ['p1', 'p2']) {
    const page = await browser.context.newPage();
    await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room, identity })}`);
    pages.push(page);
  }
  for (const page of pages)
    await waitFor(
      'media both ways',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 10 && m.totalSamplesReceived > 0,
    );
  return { pages, close: browser.close };
}

/** Protocol and local port of the selected candidate pair of a page's receive transport. */
function selectedPair(page: Page): Promise<{ protocol: string; candidateType: string; port: number }> {
  return page.evaluate(async () => {
    const call = (window as any).vigieCall;
    const consumer = [...call.consumers.values()][0];
    const stats: Map<string, any> = await consumer.getStats();
    const transport = [...stats.values()].find((s) => s.type === 'transport');
    const pair = stats.get(transport.selectedCandidatePairId);
    const remote = stats.get(pair.remoteCandidateId);
    const local = stats.get(pair.localCandidateId);
    return { protocol: remote.protocol, candidateType: local.candidateType, port: remote.port };
  });
}

test('WebRtcServer mode: every transport of a worker shares one port, and media flows through it', async () => {
  // A port from the ephemeral range was once taken by a parallel test's outgoing connection (EADDRINUSE).
  const base = await freePortRun(2);
  const gw = await startGateway({ media: { webRtcServer: true, webRtcServerPort: base } });
  try {
    const c = await gw.connect();
    await c.request('join', { token: await gw.mint({ room: 'single-port', identity: 'probe' }) });
    const slot = gw.app.sfu.getRoom('acme', 'single-port')!.slot;
    const t1 = await c.request('createWebRtcTransport', { direction: 'send' });
    const t2 = await c.request('createWebRtcTransport', { direction: 'recv' });
    for (const cand of [...t1.iceCandidates, ...t2.iceCandidates]) assert.equal(cand.port, base + slot.index);
    assert.deepEqual(new Set(t1.iceCandidates.map((x: { protocol: string }) => x.protocol)), new Set(['udp', 'tcp']));
    await c.request('leave');

    const pair = await browserPair(gw, 'single-port');
    const used = await selectedPair(pair.pages[0]!);
    const roomSlot = gw.app.sfu.getRoom('acme', 'single-port')!.slot;
    assert.equal(used.port, base + roomSlot.index);
    await pair.close();
  } finally {
    await gw.close();
  }
});

test('TCP-only transports carry media when UDP is off', async () => {
  const gw = await startGateway({ media: { enableUdp: false } });
  try {
    const pair = await browserPair(gw, 'tcp-only');
    assert.equal((await selectedPair(pair.pages[1]!)).protocol, 'tcp');
    await pair.close();
  } finally {
    await gw.close();
  }
});

test('the announced address (NAT, cloud hosts) is what clients are given', async () => {
  const gw = await startGateway({ media: { announcedAddress: '203.0.113.7' } });
  try {
    const c = await gw.connect();
    await c.request('join', { token: await gw.mint({ room: 'nat', identity: 'n' }) });
    const t = await c.request('createWebRtcTransport', { direction: 'recv' });
    assert.ok(t.iceCandidates.length >= 2);
    for (const cand of t.iceCandidates) assert.equal(cand.address, '203.0.113.7');
  } finally {
    await gw.close();
  }
});

test('with a certificate, signaling is WSS', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  const gw = await startGateway({ server: { tlsCertFile: cert, tlsKeyFile: key } });
  try {
    const port = (gw.app.server.address() as { port: number }).port;
    const plain = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const plainFailed = await new Promise<boolean>((r) => {
      plain.once('open', () => r(false));
      plain.once('error', () => r(true));
    });
    assert.ok(plainFailed, 'plain ws is not served on a TLS port');
    const client = new SignalingClient(
      new WebSocket(`wss://127.0.0.1:${port}/ws`, { ca: readFileSync(cert), rejectUnauthorized: false }) as never,
    );
    const joined = await client.request('join', { token: await gw.mint({ room: 'tls', identity: 't' }) });
    assert.equal(joined.room, 'tls');
    client.close();
  } finally {
    await gw.close();
  }
});
