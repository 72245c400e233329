import dgram from 'node:dgram';

/**
 * An RTP receiver that does what a subscriber's client does for the SFU's
 * statistics: it counts what arrives and sends an RTCP receiver report (RFC
 * 3550 §6.4.2) every second, from its RTCP socket, with the loss and jitter it saw. Put
 * behind a dropping relay, it makes the SFU see a subscriber's downlink loss
 * exactly as a browser's reports would show it. It answers the SFU's sender
 * reports (last SR and delay since it, §6.4.1), so the SFU measures the round
 * trip; `reportDelayMs` holds each report that long before sending it, a slow
 * path back to the SFU (the kernel here has no netem).
 */
export async function startRtpReceiver({ reportDelayMs = 0 }: { reportDelayMs?: number } = {}) {
  const rtp = dgram.createSocket('udp4');
  const rtcp = dgram.createSocket('udp4');
  await Promise.all([rtp, rtcp].map((s) => new Promise<void>((r) => s.bind(0, '127.0.0.1', r))));
  /**
   * Per media SSRC: the first and highest extended sequence numbers, the packets received, and the interarrival
   * jitter (RFC 3550 §6.4.1, in timestamp units) from the last packet's transit time.
   */
  const streams = new Map<
    number,
    {
      base: number;
      highest: number;
      received: number;
      prior: { expected: number; received: number };
      transit?: number;
      jitter: number;
    }
  >();
  /** The media's RTP clock rate (per second), for the jitter: set once the consumer's codec is known. */
  let clockRate = 90_000;
  /** Per sender SSRC: the middle 32 bits of its last sender report's NTP time, and when that report came. */
  const senderReports = new Map<number, { lsr: number; at: number }>();
  let rtcpTarget: { ip: string; port: number } | undefined;
  let closed = false;
  rtcp.on('message', (msg) => {
    // A compound packet: each part's length is in its header (32-bit words, minus one).
    for (let off = 0; off + 20 <= msg.length; off += (msg.readUInt16BE(off + 2) + 1) * 4) {
      if (msg[off + 1] !== 200) continue; // SR
      const ssrc = msg.readUInt32BE(off + 4);
      const lsr = (((msg.readUInt32BE(off + 8) & 0xffff) << 16) | (msg.readUInt32BE(off + 12) >>> 16)) >>> 0;
      senderReports.set(ssrc, { lsr, at: performance.now() });
    }
  });
  rtp.on('message', (msg) => {
    if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
    const seq = msg.readUInt16BE(2);
    const ssrc = msg.readUInt32BE(8);
    // Transit time in timestamp units, modulo 2^32 as the RTP timestamp wraps (RFC 3550 A.8).
    const transit = (Math.floor((performance.now() / 1000) * clockRate) - msg.readUInt32BE(4)) >>> 0;
    const st = streams.get(ssrc);
    if (!st) {
      streams.set(ssrc, {
        base: seq,
        highest: seq,
        received: 1,
        prior: { expected: 0, received: 0 },
        transit,
        jitter: 0,
      });
      return;
    }
    st.received++;
    if (st.transit !== undefined) {
      const d = Math.abs((transit - st.transit) | 0);
      st.jitter += (d - st.jitter) / 16;
    }
    st.transit = transit;
    // Extends the 16-bit sequence number by the cycles seen (wraps forward only).
    let ext = (st.highest & ~0xffff) | seq;
    if (ext < st.highest - 0x8000) ext += 0x10000;
    if (ext > st.highest) st.highest = ext;
  });
  const report = () => {
    if (!rtcpTarget) return;
    for (const [ssrc, st] of streams) {
      const expected = st.highest - st.base + 1;
      const lost = Math.max(0, expected - st.received);
      const dExpected = expected - st.prior.expected;
      const dReceived = st.received - st.prior.received;
      st.prior = { expected, received: st.received };
      const fraction =
        dExpected > 0 ? Math.max(0, Math.min(255, Math.floor(((dExpected - dReceived) * 256) / dExpected))) : 0;
      const rr = Buffer.alloc(32);
      rr[0] = 0x81; // V=2, one report block
      rr[1] = 201; // RR
      rr.writeUInt16BE(7, 2); // length in 32-bit words, minus one
      rr.writeUInt32BE(0x5eed5eed, 4); // our own SSRC
      rr.writeUInt32BE(ssrc, 8);
      rr.writeUInt32BE((((fraction & 0xff) << 24) | (lost & 0xffffff)) >>> 0, 12);
      rr.writeUInt32BE(st.highest >>> 0, 16);
      rr.writeUInt32BE(Math.round(st.jitter) >>> 0, 20);
      // The delay since the last SR is this receiver's own: the hold after it is the path's, which the SFU's round trip
      // includes.
      const sr = senderReports.get(ssrc);
      if (sr) {
        rr.writeUInt32BE(sr.lsr, 24);
        rr.writeUInt32BE(Math.round(((performance.now() - sr.at) / 1000) * 65536) >>> 0, 28);
      }
      const target = rtcpTarget;
      const send = () => !closed && rtcp.send(rr, target.port, target.ip);
      if (reportDelayMs > 0) setTimeout(send, reportDelayMs);
      else send();
    }
  };
  const timer = setInterval(report, 1000);
  return {
    rtpPort: rtp.address().port,
    rtcpPort: rtcp.address().port,
    /** Where the reports go: the SFU transport's RTCP port. */
    reportTo: (target: { ip: string; port: number }) => {
      rtcpTarget = target;
    },
    received: () => [...streams.values()].reduce((n, s) => n + s.received, 0),
    /** Holds each report `ms` from now on (0: none): a path back to the SFU that becomes slow, or fast again. */
    setReportDelayMs: (ms: number) => {
      reportDelayMs = ms;
    },
    /** The RTP clock rate of what it receives (90 kHz, video's, until told). */
    setClockRate: (rate: number) => {
      clockRate = rate;
    },
    close: () => {
      closed = true;
      clearInterval(timer);
      rtp.close();
      rtcp.close();
    },
  };
}
