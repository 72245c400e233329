import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DPO_KEY,
  GLOBEX_VIEWER_KEY,
  TENANT_ADMIN_KEY,
  VIEWER_KEY,
  startGateway,
  type TestGateway,
} from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import { recordersWithSegment } from './helpers/recording.js';
import { Recorder } from '../src/recording/Recorder.js';
import type { Logger } from '../src/logging.js';

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
beforeAll(async () => {
  gw = await startGateway({ writer: { flushIntervalMs: 100 }, globexLocations: ['DE'] });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
});

const api = (
  key: { key: string },
  method: string,
  url: string,
  payload?: object,
  headers: Record<string, string> = {},
) =>
  gw.app.inject({
    method: method as 'GET',
    url,
    headers: { 'x-api-key': key.key, ...headers },
    ...(payload ? { payload } : {}),
  });

function probe(file: string): { streams: string[]; duration: number } {
  const out = JSON.parse(
    execFileSync(
      'ffprobe',
      ['-v', 'error', '-show_entries', 'format=duration:stream=codec_type', '-of', 'json', file],
      { encoding: 'utf8' },
    ),
  );
  return {
    streams: out.streams.map((s: { codec_type: string }) => s.codec_type).sort(),
    duration: Number(out.format.duration),
  };
}

test('a browser call is recorded: indicator, upload, catalog, playback with ffprobe, Range, locks, legal hold, isolation, access records', async () => {
  const pages = [];
  for (const identity of ['rec-agent', 'rec-customer']) {
    const page = await browser.context.newPage();
    await joinThroughPage(page, `${gw.url}/join?token=${await gw.mint({ room: 'recorded', identity })}`);
    pages.push(page);
  }
  for (const page of pages)
    await waitFor(
      'media',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 5 && m.totalSamplesReceived > 0,
    );

  const started = await api(TENANT_ADMIN_KEY, 'POST', '/v1/rooms/recorded/recording', { action: 'start' });
  assert.equal(started.statusCode, 200, started.body);
  const t0 = Date.now();
  for (const page of pages)
    await waitFor(
      'recording indicator',
      () => page.locator('#recording').getAttribute('class'),
      (c) => c === 'on',
    );
  // Five seconds from when both recorders have found their streams: ffmpeg and the browsers' keyframes come late on
  // a busy machine, and a recorder stopped before that leaves no file.
  await waitFor(
    'both recorders to write a file',
    () => recordersWithSegment(gw.app.config.dataDir, 0),
    (n) => n === 2,
    120_000,
  );
  await new Promise((r) => setTimeout(r, 5000));
  const stopped = await api(TENANT_ADMIN_KEY, 'POST', '/v1/rooms/recorded/recording', { action: 'stop' });
  const requestedS = (Date.now() - t0) / 1000;
  assert.equal(stopped.statusCode, 200, stopped.body);
  assert.equal(stopped.json().files, 2, 'one file per participant');
  for (const page of pages)
    await waitFor(
      'indicator off',
      () => page.locator('#recording').getAttribute('class'),
      (c) => c !== 'on',
    );
  assert.ok(await gw.app.recording!.service.drain());

  const list = await api(VIEWER_KEY, 'GET', '/v1/recordings?room=recorded');
  assert.equal(list.statusCode, 200, list.body);
  const recs = list.json().recordings;
  assert.equal(recs.length, 2);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-rec-dl-'));
  for (const r of recs) {
    assert.equal(r.status, 'ready');
    assert.match(r.objectKey, new RegExp(`^acme/\\d{4}/\\d{2}/\\d{2}/${r.callId}/${r.id}\\.webm$`));
    assert.deepEqual([...r.codecs].sort(), ['audio/opus', 'video/VP8']);
    assert.equal(r.lockMode, 'governance');
    const retainDays = (Date.parse(r.retainUntil) - Date.now()) / 86_400_000;
    assert.ok(retainDays > 29.9 && retainDays <= 30, `retain-until from the default policy: ${r.retainUntil}`);
    const full = await api(VIEWER_KEY, 'GET', `/v1/recordings/${r.id}/download?mode=stream`);
    assert.equal(full.statusCode, 200);
    assert.equal(full.rawPayload.length, r.sizeBytes);
    const file = path.join(dir, `${r.id}.webm`);
    writeFileSync(file, full.rawPayload);
    assert.equal(execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0], r.sha256);
    const media = probe(file);
    assert.deepEqual(media.streams, ['audio', 'video']);
    // The catalog's duration is the span media reached the recorder (it starts some time after the start request on
    // a busy machine); the file holds all of it.
    assert.ok(
      r.durationS >= 5 && r.durationS <= requestedS,
      `catalog duration ${r.durationS}s, between the 5 s recorded after the files began and the ${requestedS}s between the start and stop requests`,
    );
    assert.ok(Math.abs(media.duration - r.durationS) <= 1, `ffprobe ${media.duration}s vs catalog ${r.durationS}s`);
    const part = await api(VIEWER_KEY, 'GET', `/v1/recordings/${r.id}/download?mode=stream`, undefined, {
      range: 'bytes=100-199',
    });
    assert.equal(part.statusCode, 206);
    assert.equal(part.headers['content-range'], `bytes 100-199/${r.sizeBytes}`);
    assert.deepEqual(part.rawPayload, full.rawPayload.subarray(100, 200));
  }
  const [one] = recs;
  // The local store cannot sign URLs, so "redirect" falls back to streaming.
  assert.equal((await api(VIEWER_KEY, 'GET', `/v1/recordings/${one.id}/download`)).statusCode, 200);

  const del = await api(TENANT_ADMIN_KEY, 'DELETE', `/v1/recordings/${one.id}`);
  assert.equal(del.statusCode, 403);
  assert.match(del.json().error.message, /locked \(governance\) until/);
  assert.equal(
    (await api(VIEWER_KEY, 'PUT', `/v1/recordings/${one.id}/legal-hold`, { on: true })).statusCode,
    403,
    'viewers cannot set legal holds',
  );
  assert.equal(
    (await api(TENANT_ADMIN_KEY, 'PUT', `/v1/recordings/${one.id}/legal-hold`, { on: true })).statusCode,
    403,
    'nor admins: dpo only',
  );
  const held = await api(DPO_KEY, 'PUT', `/v1/recordings/${one.id}/legal-hold`, { on: true });
  assert.equal(held.json().legalHold, true);
  assert.equal((await api(VIEWER_KEY, 'GET', `/v1/recordings/${one.id}`)).json().legalHold, true);
  assert.equal(
    (await api(GLOBEX_VIEWER_KEY, 'GET', `/v1/recordings/${one.id}`)).statusCode,
    404,
    "another tenant's recording id is not found",
  );
  assert.equal((await api(GLOBEX_VIEWER_KEY, 'GET', `/v1/recordings/${one.id}/download`)).statusCode, 404);
  assert.equal((await api(VIEWER_KEY, 'GET', '/v1/recordings?limit=1')).json().recordings.length, 1);
  const page2 = await api(
    VIEWER_KEY,
    'GET',
    `/v1/recordings?limit=1&cursor=${(await api(VIEWER_KEY, 'GET', '/v1/recordings?limit=1')).json().nextCursor}`,
  );
  assert.equal(page2.json().recordings.length, 1, 'pagination');
  assert.equal(
    (await api(VIEWER_KEY, 'GET', `/v1/recordings?participant=${recs[0].participants[0]}`)).json().recordings.length,
    1,
    'search by participant',
  );

  const access = await gw.query<{ action: string; result: string; actor: string }>(
    `SELECT action, result, actor FROM vigie.access_log WHERE tenant IN ('acme', 'globex') ORDER BY ts`,
  );
  const seen = new Set(access.map((a) => `${a.action}:${a.result}`));
  for (const a of [
    'recording.control:ok',
    'recordings.list:ok',
    'recording.download:ok',
    'recording.delete:FORBIDDEN',
    'recording.legal_hold:FORBIDDEN',
    'recording.legal_hold:ok',
    'recording.read:NOT_FOUND',
  ])
    assert.ok(seen.has(a), `${a} in ${[...seen].join(', ')}`);
  assert.ok(access.some((a) => a.actor === 'key:acmedpo1'));
  const events = (await gw.query<{ event: string }>(`SELECT event FROM vigie.call_events WHERE room = 'recorded'`)).map(
    (e) => e.event,
  );
  assert.ok(events.includes('recording.started') && events.includes('recording.stopped'));
});

test('every codec is recorded without transcoding: H264 into Matroska, VP9 into WebM, Opus alone into Ogg', async () => {
  const watcher = await gw.connect();
  await watcher.request('join', { token: await gw.mint({ room: 'codecs', identity: 'codec-watcher' }) });
  const room = gw.app.sfu.getRoom('acme', 'codecs')!;
  const bots = [
    await startFfmpegBot(room, { kind: 'video', videoCodec: 'h264', bitrateKbps: 400, name: 'h264' }),
    await startFfmpegBot(room, { kind: 'video', videoCodec: 'vp9', bitrateKbps: 300, name: 'vp9' }),
    await startFfmpegBot(room, { kind: 'audio', bitrateKbps: 32, name: 'opus' }),
  ];
  onTestFinished(async () => {
    await Promise.all(bots.map((b) => b.stop()));
  });
  for (const bot of bots)
    await waitFor(
      `${bot.peer.identity} RTP`,
      () => bot.producer.getStats(),
      (st) => (st[0]?.byteCount ?? 0) > 5_000,
    );

  const listeners = () => [
    room.observer.listenerCount('close'),
    room.observer.listenerCount('newpeer'),
    ...bots.map((b) => b.peer.observer.listenerCount('newproducer')),
  ];
  const listenersBefore = listeners();
  assert.equal(
    (await api(TENANT_ADMIN_KEY, 'POST', '/v1/rooms/codecs/recording', { action: 'start' })).statusCode,
    200,
  );
  await waitFor(
    'the three recorders to write a file',
    () => recordersWithSegment(gw.app.config.dataDir, 0),
    (n) => n === 3,
    120_000,
  );
  await new Promise((r) => setTimeout(r, 5000));
  const stopped = await api(TENANT_ADMIN_KEY, 'POST', '/v1/rooms/codecs/recording', { action: 'stop' });
  assert.equal(stopped.json().files, 3, `one file per bot: ${bots.map((b) => b.stderr()).join(' ')}`);
  assert.deepEqual(
    listeners(),
    listenersBefore,
    'a stopped recording leaves no listener on the room or its participants',
  );
  assert.ok(await gw.app.recording!.service.drain());

  const recs: { id: string; objectKey: string; codecs: string[]; contentType?: string }[] = (
    await api(VIEWER_KEY, 'GET', '/v1/recordings?room=codecs')
  ).json().recordings;
  const byCodec = Object.fromEntries(recs.map((r) => [r.codecs.join('+'), r]));
  const expected = [
    { codecs: 'video/H264', ext: 'mkv', container: /matroska/, codec: 'h264' },
    { codecs: 'video/VP9', ext: 'webm', container: /webm/, codec: 'vp9' },
    { codecs: 'audio/opus', ext: 'ogg', container: /ogg/, codec: 'opus' },
  ];
  assert.deepEqual(Object.keys(byCodec).sort(), expected.map((e) => e.codecs).sort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-rec-codecs-'));
  for (const e of expected) {
    const r = byCodec[e.codecs]!;
    assert.ok(r.objectKey.endsWith(`.${e.ext}`), r.objectKey);
    const file = path.join(dir, `${r.id}.${e.ext}`);
    writeFileSync(file, (await api(VIEWER_KEY, 'GET', `/v1/recordings/${r.id}/download?mode=stream`)).rawPayload);
    const info = JSON.parse(
      execFileSync(
        'ffprobe',
        ['-v', 'error', '-show_entries', 'format=format_name,duration:stream=codec_name,width', '-of', 'json', file],
        { encoding: 'utf8' },
      ),
    );
    assert.match(info.format.format_name, e.container);
    assert.deepEqual(
      info.streams.map((st: { codec_name: string }) => st.codec_name),
      [e.codec],
      `${e.codecs} copied, not transcoded`,
    );
    if (e.codecs.startsWith('video/')) assert.equal(info.streams[0].width, 320, "the bot's 320x240 test pattern");
    assert.ok(Number(info.format.duration) > 3, `${e.codecs}: ${info.format.duration}s of the ~5s recorded`);
    // The bytes decode: ffmpeg reads the whole file without an error.
    execFileSync('ffmpeg', ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-']);
  }
});

test('a recorder stopped while it is still starting (a short recording on a busy machine) leaves no ffmpeg running', async () => {
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'short-lived');
  const bot = await startFfmpegBot(room, { kind: 'audio', bitrateKbps: 32, name: 'short-lived' });
  onTestFinished(() => bot.stop());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-rec-short-'));
  const recorder = new Recorder(room.router, [bot.producer], dir, 10, gw.app.log as unknown as Logger);
  const starting = recorder.start();
  await recorder.stop();
  await starting;
  const alive = (pid: number | undefined) => {
    try {
      return pid !== undefined && process.kill(pid, 0);
    } catch {
      return false;
    }
  };
  onTestFinished(() => void (alive(recorder.pid) && process.kill(recorder.pid!, 'SIGKILL')));
  assert.ok(recorder.pid !== undefined, 'the start went through to ffmpeg');
  assert.equal(alive(recorder.pid), false, 'the stop waited for the start, and stopped the ffmpeg it spawned');
  assert.ok(recorder.span.to >= recorder.span.from, 'an empty span, not a negative one');
});

test('data residency: a recording refuses to start when the storage location is not allowed for the tenant', async () => {
  const c = await gw.connect();
  await c.request('join', {
    token: await gw.mint({
      tenant: 'globex',
      room: 'abroad',
      identity: 'g',
      grants: ['publish', 'subscribe', 'record'],
    }),
  });
  await assert.rejects(
    c.request('startRecording'),
    (e: { code: string; message: string }) =>
      e.code === 'FORBIDDEN' && /storage target local is in FR .* allows only DE/.test(e.message),
  );
  const viaApi = await api(GLOBEX_VIEWER_KEY, 'POST', '/v1/rooms/abroad/recording', { action: 'start' });
  assert.equal(viaApi.statusCode, 403);
  assert.match(viaApi.json().error.message, /allows only DE/);
  const noGrant = await gw.connect();
  await noGrant.request('join', { token: await gw.mint({ room: 'nogrant', identity: 'n' }) });
  await assert.rejects(noGrant.request('startRecording'), { code: 'FORBIDDEN' });
});
