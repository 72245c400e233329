import dgram from 'node:dgram';
import type { types as ms } from 'mediasoup';
import { onTestFinished } from 'vitest';
import { Peer, type Room } from '../../src/media/index.js';
import { waitFor } from './browser.js';
import { encodedLoop, startFfmpegBot, type FfmpegBot } from './ffmpegBot.js';

/**
 * A receiving participant without a browser: a PlainTransport on the router the room places it on, sending what it
 * consumes to a local UDP socket. It consumes through Room.consume, as a browser's request would.
 */
export async function startSink(room: Room, name: string) {
  const notices: Array<{ method: string; data: Record<string, unknown> }> = [];
  const peer = new Peer(
    {
      identity: `sink:${name}`,
      tenant: room.tenant,
      room: room.id,
      grants: new Set(['subscribe']),
      name,
      expiresAt: Number.MAX_SAFE_INTEGER,
    },
    (method, data) => notices.push({ method, data }),
  );
  room.addPeer(peer);
  const router = await room.routerFor(peer);
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  onTestFinished(() => {
    socket.close();
  });
  const transport = await router.createPlainTransport({
    listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
    rtcpMux: true,
    comedia: false,
  });
  await transport.connect({ ip: '127.0.0.1', port: socket.address().port });
  peer.transports.set(transport.id, transport);
  return {
    peer,
    router,
    notices,
    /** Consumes a bot's track, or any producer of the room by id (resumed at once), and returns the consumer. */
    consume: async (source: FfmpegBot | string): Promise<ms.Consumer> => {
      const { consumerId } = (await room.consume(peer, {
        transportId: transport.id,
        producerId: typeof source === 'string' ? source : source.producer.id,
        rtpCapabilities: router.rtpCapabilities,
      })) as { consumerId: string };
      await room.setConsumerPaused(peer, consumerId, false);
      return peer.consumers.get(consumerId)!;
    },
  };
}

/** Waits until the consumer has sent RTP on: packets that crossed from the producer's router, when they differ. */
export function flowing(consumer: ms.Consumer, what: string) {
  return waitFor(
    what,
    async () => (await consumer.getStats()).find((s) => s.type === 'outbound-rtp'),
    (s) => (s?.packetCount ?? 0) > 20 && (s?.byteCount ?? 0) > 10_000,
    60_000,
  );
}

/** A video bot sending a pre-encoded VP8 loop at 300 kb/s (see `encodedLoop`), stopped when the test finishes. */
export async function startLoopBot(room: Room, name: string): Promise<FfmpegBot> {
  const bot = await startFfmpegBot(room, {
    kind: 'video',
    bitrateKbps: 300,
    name,
    file: await encodedLoop('video', 300),
  });
  onTestFinished(() => bot.stop());
  return bot;
}
