import { onTestFinished } from 'vitest';
import { Peer, type Room } from '../../src/media/index.js';
import { startFfmpegBot } from './ffmpegBot.js';
import { startRtpReceiver } from './rtpReceiver.js';
import { startUdpRelay } from './udpRelay.js';

/**
 * Real media with loss on the wire, one side at a time, for the call diagnosis' tests: a publisher made of ffmpeg
 * and a subscriber that reports its loss in RTCP, each behind a UDP relay whose drop rate the test changes
 * (`loss.dropEvery`). Both are torn down when the test ends.
 */

/** A publisher made of ffmpeg (VP8), its RTP through a relay whose drop rate the test changes (`loss.dropEvery`). */
export async function lossyPublisher(room: Room, name: string) {
  const loss: { dropEvery?: number } = {};
  let relay!: Awaited<ReturnType<typeof startUdpRelay>>;
  const bot = await startFfmpegBot(room, {
    kind: 'video',
    bitrateKbps: 400,
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
 * A subscriber named `name` (identity and display name): a participant whose consumer sends over a PlainTransport,
 * through a dropping relay, to a receiver that reports its loss back in RTCP; `connected: false` leaves the
 * transport without a destination.
 */
export async function lossySubscriber(room: Room, producerId: string, name: string, { connected = true } = {}) {
  const peer = new Peer(
    {
      identity: name,
      name,
      tenant: room.tenant,
      room: room.id,
      grants: new Set(['subscribe']),
      expiresAt: Number.MAX_SAFE_INTEGER,
    },
    () => undefined,
  );
  room.addPeer(peer);
  const transport = await room.router.createPlainTransport({
    listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
    rtcpMux: false,
    comedia: false,
  });
  const receiver = await startRtpReceiver();
  const loss: { dropEvery?: number } = {};
  const relay = await startUdpRelay({ ip: '127.0.0.1', port: receiver.rtpPort }, loss);
  onTestFinished(async () => {
    transport.close();
    receiver.close();
    await relay.close();
  });
  if (connected) {
    await transport.connect({ ip: '127.0.0.1', port: relay.port, rtcpPort: receiver.rtcpPort });
    receiver.reportTo({ ip: '127.0.0.1', port: transport.rtcpTuple!.localPort });
  }
  peer.transports.set(transport.id, transport);
  const consumer = await transport.consume({ producerId, rtpCapabilities: room.router.rtpCapabilities });
  peer.consumers.set(consumer.id, consumer);
  peer.observer.emit('newconsumer', consumer);
  return { peer, loss, receiver, consumer };
}
