import { Peer, type Room } from '../../src/media/index.js';
import { startRtpReceiver } from './rtpReceiver.js';
import { type RelayImpairment, startUdpRelay } from './udpRelay.js';

/**
 * A subscriber without a browser: a participant whose consumer sends over a PlainTransport to a receiver that
 * reports its loss and jitter back in RTCP, as a client would. `loss` puts a relay that drops every Nth packet on
 * the way, or holds each packet a random time up to `jitterMs` (both can change while media flows);
 * `reportDelayMs` holds its reports that long on their way back;
 * `connected: false` leaves the transport without a destination.
 */
export async function startPlainSubscriber(
  room: Room,
  producerId: string,
  name: string,
  {
    connected = true,
    loss,
    reportDelayMs,
  }: { connected?: boolean; loss?: RelayImpairment; reportDelayMs?: number } = {},
) {
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
  const receiver = await startRtpReceiver({ reportDelayMs });
  const relay = loss ? await startUdpRelay({ ip: '127.0.0.1', port: receiver.rtpPort }, loss) : undefined;
  if (connected) {
    await transport.connect({ ip: '127.0.0.1', port: relay?.port ?? receiver.rtpPort, rtcpPort: receiver.rtcpPort });
    receiver.reportTo({ ip: '127.0.0.1', port: transport.rtcpTuple!.localPort });
  }
  peer.transports.set(transport.id, transport);
  const consumer = await transport.consume({ producerId, rtpCapabilities: room.router.rtpCapabilities });
  receiver.setClockRate(consumer.rtpParameters.codecs[0]!.clockRate);
  peer.consumers.set(consumer.id, consumer);
  peer.observer.emit('newconsumer', consumer);
  return {
    peer,
    receiver,
    consumer,
    transport,
    close: async () => {
      transport.close();
      receiver.close();
      await relay?.close();
    },
  };
}
