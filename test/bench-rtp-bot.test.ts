import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BOT_FPS, encodeBotClip, startBot } from '../bench/join-page/rtp-bot.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

// The control-plane benchmark's remote party (bench/join-page/rtp-bot.ts): what makes it the same for every target.
let gw: TestGateway;
let clip: string;
beforeAll(async () => {
  [gw, clip] = await Promise.all([startGateway(), encodeBotClip()]);
});
afterAll(async () => {
  await gw.close();
  rmSync(path.dirname(clip), { recursive: true, force: true });
});

test("the bot's clip is 640x480 at its frame rate, and every frame is a key frame", async () => {
  const probe = (entries: string) =>
    promisify(execFile)('ffprobe', ['-v', 'error', '-select_streams', 'v', ...entries.split(' '), '-of', 'json', clip]);
  const { streams } = JSON.parse((await probe('-show_entries stream=codec_name,width,height,r_frame_rate')).stdout) as {
    streams: Array<{ codec_name: string; width: number; height: number; r_frame_rate: string }>;
  };
  assert.deepEqual(streams, [{ codec_name: 'vp8', width: 640, height: 480, r_frame_rate: `${BOT_FPS}/1` }]);
  const { packets } = JSON.parse((await probe('-show_entries packet=flags')).stdout) as {
    packets: Array<{ flags: string }>;
  };
  assert.ok(packets.length >= 4 * BOT_FPS, `${packets.length} frames`);
  // A new consumer's first frame is then the next frame, whether or not the sender answers its key frame request.
  assert.deepEqual(
    packets.map((p, i) => [i, p.flags.startsWith('K')]).filter(([, key]) => !key),
    [],
    'frames that are not key frames',
  );
});

test('the bot joins the room as a participant and publishes its video, which a joining participant receives', async () => {
  const repo = path.resolve(import.meta.dirname, '..');
  const bot = await startBot(repo, gw, { tenant: 'acme', room: 'bot-bench', file: clip });
  onTestFinished(() => bot.stop());
  const viewer = await gw.connect();
  onTestFinished(() => viewer.close());
  const joined = await viewer.request('join', { token: await gw.mint({ room: 'bot-bench', identity: 'viewer' }) });
  const producers = joined.peers.flatMap(
    (p: { producers: Array<{ producerId: string; kind: string }> }) => p.producers,
  );
  assert.deepEqual(producers, [{ producerId: bot.producer.id, kind: 'video', source: 'bot', paused: false }]);
  // startBot resolved only once the producer had media: the stream is flowing before the first measure.
  const [stats] = await bot.producer.getStats();
  assert.ok(stats!.byteCount > 50_000, `the producer received ${stats!.byteCount} bytes`);
});
