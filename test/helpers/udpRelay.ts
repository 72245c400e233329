import dgram from 'node:dgram';

/**
 * A UDP relay between a sender and the SFU that counts what it forwards (the
 * true sending rate, measured on the wire) and can drop every Nth packet, for
 * a loss rate that is exact rather than random, and hold each packet for
 * `delayMs` plus a random part of up to `jitterMs` (this kernel has no netem):
 * packets held for different times arrive out of order, as they do on a
 * jittery path. The options are read at each packet, so a caller can change
 * them while media flows.
 */
/** What a relay does to the packets it forwards; the test may change each field while media flows. */
export type RelayImpairment = { dropEvery?: number; delayMs?: number; jitterMs?: number };

export async function startUdpRelay(target: { ip: string; port: number }, opts: RelayImpairment = {}) {
  const socket = dgram.createSocket('udp4');
  let open = true;
  const stats = { received: 0, forwarded: 0, dropped: 0, bytesForwarded: 0, firstAt: 0, lastAt: 0 };
  socket.on('message', (msg, rinfo) => {
    if (rinfo.port === target.port && rinfo.address === target.ip) return; // SFU → sender traffic is not relayed back
    stats.received++;
    if (opts.dropEvery && stats.received % opts.dropEvery === 0) {
      stats.dropped++;
      return;
    }
    stats.forwarded++;
    stats.bytesForwarded += msg.length;
    const now = Date.now();
    stats.firstAt ||= now;
    stats.lastAt = now;
    const holdMs = (opts.delayMs ?? 0) + Math.random() * (opts.jitterMs ?? 0);
    if (holdMs > 0) setTimeout(() => open && socket.send(msg, target.port, target.ip), holdMs);
    else socket.send(msg, target.port, target.ip);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return {
    port: socket.address().port,
    stats,
    /** Bytes forwarded per second between two moments, from a running tally. */
    snapshot: () => ({ at: Date.now(), bytes: stats.bytesForwarded }),
    close: () =>
      new Promise<void>((r) => {
        open = false;
        socket.close(() => r());
      }),
  };
}
