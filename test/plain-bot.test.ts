import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startGateway, nextNotification, type TestGateway } from './helpers/gateway.js';
import { startFfmpegBot } from './helpers/ffmpegBot.js';
import { waitFor } from './helpers/browser.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.close());

test('ffmpeg pushes RTP into a PlainTransport producer, and a consumer of it shows nonzero stats', async () => {
  // A signaling participant, to see the bot's track announced.
  const watcher = await gw.connect();
  await watcher.request('join', { token: await gw.mint({ room: 'bot-room', identity: 'watcher' }) });
  const room = gw.app.sfu.getRoom('acme', 'bot-room')!;

  const announced = nextNotification(watcher, 'newProducer');
  const bot = await startFfmpegBot(room, { kind: 'video', bitrateKbps: 300 });
  onTestFinished(() => bot.stop());
  const notice = await announced;
  assert.equal(notice.producerId, bot.producer.id);
  assert.equal(notice.source, 'bot');

  // Consumer side: a PlainTransport that sends to a local UDP socket we count on.
  const sink = dgram.createSocket('udp4');
  let received = 0;
  sink.on('message', () => received++);
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
  onTestFinished(() => {
    sink.close();
  });
  const out = await room.router.createPlainTransport({
    listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
    rtcpMux: true,
    comedia: false,
  });
  await out.connect({ ip: '127.0.0.1', port: sink.address().port });
  const consumer = await out.consume({
    producerId: bot.producer.id,
    rtpCapabilities: room.router.rtpCapabilities,
    paused: false,
  });

  const producerStats = await waitFor(
    'producer to receive RTP',
    () => bot.producer.getStats(),
    (s) => (s[0]?.byteCount ?? 0) > 10_000,
  );
  assert.equal(producerStats[0]!.type, 'inbound-rtp');
  const consumerStats = await waitFor(
    'consumer to send RTP',
    async () => (await consumer.getStats()).find((s) => s.type === 'outbound-rtp'),
    (s) => (s?.packetCount ?? 0) > 20 && (s?.byteCount ?? 0) > 10_000,
  );
  assert.ok(consumerStats!.bitrate > 0, 'consumer bitrate');
  assert.ok(received > 20, `UDP sink got RTP (${received} datagrams)`);
  assert.equal(bot.ffmpeg.exitCode, null, `ffmpeg still running: ${bot.stderr()}`);
});
