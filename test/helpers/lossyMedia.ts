import { onTestFinished } from 'vitest';
import type { Room } from '../../src/media/index.js';
import { startFfmpegBot } from './ffmpegBot.js';
import { startPlainSubscriber } from './plainSubscriber.js';
import { type RelayImpairment, startUdpRelay } from './udpRelay.js';

/**
 * Real media with loss on the wire, one side at a time, for the call diagnosis' tests: a publisher made of ffmpeg
 * and a subscriber that reports its loss in RTCP, each behind a UDP relay whose drop rate the test changes
 * (`loss.dropEvery`). Both are torn down when the test ends.
 */

/**
 * A publisher made of ffmpeg (VP8, or Opus for `audio`), its RTP through a relay whose drop rate (`loss.dropEvery`)
 * and random hold (`loss.jitterMs`) the test changes.
 */
export async function lossyPublisher(room: Room, name: string, kind: 'video' | 'audio' = 'video') {
  const loss: RelayImpairment = {};
  let relay!: Awaited<ReturnType<typeof startUdpRelay>>;
  const bot = await startFfmpegBot(room, {
    kind,
    bitrateKbps: kind === 'video' ? 400 : 64,
    name,
    through: async (port) => {
      relay = await startUdpRelay({ ip: '127.0.0.1', port }, loss);
      return relay.port;
    },
  });
  onTestFinished(async () => {
    await bot.stop();
    await relay.close();
  });
  return { bot, loss, peer: room.ownerOf(bot.producer.id)! };
}

/**
 * A subscriber named `name` (identity and display name) behind a relay whose drop rate and random hold the test
 * changes (`loss.dropEvery`, `loss.jitterMs`): see `startPlainSubscriber`; `connected: false` leaves its transport
 * without a destination.
 */
export async function lossySubscriber(
  room: Room,
  producerId: string,
  name: string,
  { connected = true, reportDelayMs }: { connected?: boolean; reportDelayMs?: number } = {},
) {
  const loss: RelayImpairment = {};
  const sub = await startPlainSubscriber(room, producerId, name, { connected, loss, reportDelayMs });
  onTestFinished(sub.close);
  return { ...sub, loss };
}
