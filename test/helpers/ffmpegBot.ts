import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { types as ms } from 'mediasoup';
import { Peer, type Room } from '../../src/media/index.js';

export interface FfmpegBot {
  peer: Peer;
  producer: ms.Producer;
  transport: ms.PlainTransport;
  ffmpeg: ChildProcess;
  stderr: () => string;
  stop: () => Promise<void>;
}

/** What each codec needs: its RTP parameters (matching the router's capabilities in src/media/codecs.ts) and its ffmpeg encoder. */
const CODECS = {
  vp8: {
    rtp: { mimeType: 'video/VP8', payloadType: 101, clockRate: 90000, ssrc: 22222222, parameters: {} },
    encoder: (kbps: number) => [
      '-c:v',
      'libvpx',
      '-b:v',
      `${kbps}k`,
      '-minrate',
      `${kbps}k`,
      '-maxrate',
      `${kbps}k`,
      '-deadline',
      'realtime',
      '-cpu-used',
      '8',
      '-g',
      '15',
      '-an',
    ],
  },
  vp9: {
    rtp: { mimeType: 'video/VP9', payloadType: 103, clockRate: 90000, ssrc: 33333333, parameters: { 'profile-id': 0 } },
    encoder: (kbps: number) => [
      '-c:v',
      'libvpx-vp9',
      '-b:v',
      `${kbps}k`,
      '-deadline',
      'realtime',
      '-cpu-used',
      '8',
      '-row-mt',
      '1',
      '-g',
      '15',
      '-pix_fmt',
      'yuv420p',
      '-an',
      '-strict',
      'experimental',
    ],
  },
  h264: {
    rtp: {
      mimeType: 'video/H264',
      payloadType: 107,
      clockRate: 90000,
      ssrc: 44444444,
      parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
    },
    encoder: (kbps: number) => [
      '-c:v',
      'libx264',
      '-profile:v',
      'baseline',
      '-level',
      '3.1',
      '-preset',
      'ultrafast',
      '-tune',
      'zerolatency',
      '-b:v',
      `${kbps}k`,
      '-g',
      '15',
      '-bf',
      '0',
      '-pix_fmt',
      'yuv420p',
      '-an',
    ],
  },
  opus: {
    rtp: { mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, ssrc: 11111111, parameters: {} },
    encoder: (kbps: number) => ['-c:a', 'libopus', '-b:a', `${kbps}k`, '-ac', '2', '-vn'],
  },
} as const;

const loops = new Map<string, Promise<string>>();

/**
 * A few seconds of VP8 (test pattern, a keyframe every second) or Opus (a tone), encoded once per process, for
 * bots that send it in a loop. A live encoder falls behind real time on a busy machine (VP8 was seen at a tenth
 * of it on 2 loaded cores), so a test that needs some seconds of media gets them later than the wall clock says;
 * copying a file keeps the media clock on the wall clock.
 */
export function encodedLoop(kind: 'video' | 'audio', bitrateKbps: number): Promise<string> {
  const key = `${kind}-${bitrateKbps}`;
  let file = loops.get(key);
  if (!file) {
    const out = path.join(
      mkdtempSync(path.join(os.tmpdir(), 'vigie-bot-')),
      kind === 'video' ? 'loop.webm' : 'loop.ogg',
    );
    const { encoder } = CODECS[kind === 'video' ? 'vp8' : 'opus'];
    const input =
      kind === 'video'
        ? ['-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=15:duration=4']
        : ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=4'];
    file = promisify(execFile)('ffmpeg', [
      '-nostdin',
      '-v',
      'error',
      ...input,
      ...encoder(bitrateKbps),
      '-y',
      out,
    ]).then(() => out);
    loops.set(key, file);
  }
  return file;
}

/**
 * A participant made of ffmpeg: it encodes a test pattern (VP8, VP9 or H264) or a tone
 * (Opus) and sends RTP into a PlainTransport producer, as a SIP gateway or a
 * recording bot would. RTCP goes to its own port (rtcpMux off), because
 * ffmpeg sends it from a separate socket.
 */
export async function startFfmpegBot(
  room: Room,
  opts: {
    kind: 'video' | 'audio';
    bitrateKbps: number;
    name?: string;
    /** Puts something (a relay) between ffmpeg and the SFU; returns the port ffmpeg sends RTP to. */
    through?: (sfuRtpPort: number) => Promise<number>;
    /** A pre-encoded file (VP8 for video, Opus for audio; see `encodedLoop`) sent in a loop without re-encoding. */
    file?: string;
    /** The video codec (default VP8); audio is always Opus. */
    videoCodec?: 'vp8' | 'vp9' | 'h264';
  },
): Promise<FfmpegBot> {
  const peer = new Peer(
    {
      identity: `bot:${opts.name ?? opts.kind}`,
      tenant: room.tenant,
      room: room.id,
      grants: new Set(['publish']),
      name: opts.name ?? 'ffmpeg bot',
      expiresAt: Number.MAX_SAFE_INTEGER,
    },
    () => undefined,
  );
  room.addPeer(peer);
  // On the router the room places the bot on: in a room spread over several workers, not always the first.
  const transport = await (await room.routerFor(peer)).createPlainTransport({
    listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
    rtcpMux: false,
    comedia: true,
  });
  peer.transports.set(transport.id, transport);
  const { rtp: c, encoder } = CODECS[opts.kind === 'video' ? (opts.videoCodec ?? 'vp8') : 'opus'];
  const producer = await transport.produce({
    kind: opts.kind,
    rtpParameters: {
      codecs: [
        {
          mimeType: c.mimeType,
          payloadType: c.payloadType,
          clockRate: c.clockRate,
          parameters: c.parameters,
          ...(opts.kind === 'audio' ? { channels: 2 } : {}),
          rtcpFeedback:
            opts.kind === 'video'
              ? [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }]
              : [],
        },
      ],
      encodings: [{ ssrc: c.ssrc }],
      rtcp: { cname: `bot-${opts.kind}` },
    },
    appData: { source: 'bot' },
  });
  room.adoptProducer(peer, producer);

  const rtpPort = opts.through ? await opts.through(transport.tuple.localPort) : transport.tuple.localPort;
  const target = { ip: '127.0.0.1', port: rtpPort, rtcpPort: transport.rtcpTuple!.localPort };
  const input = opts.file
    ? ['-stream_loop', '-1', '-i', opts.file]
    : opts.kind === 'video'
      ? ['-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=15']
      : ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'];
  const codec = opts.file
    ? opts.kind === 'video'
      ? ['-c:v', 'copy', '-an']
      : ['-c:a', 'copy', '-vn']
    : encoder(opts.bitrateKbps);
  const args = [
    '-nostdin',
    '-loglevel',
    'error',
    '-re',
    ...input,
    ...codec,
    '-ssrc',
    String(c.ssrc),
    '-payload_type',
    String(c.payloadType),
    '-f',
    'rtp',
    `rtp://${target.ip}:${target.port}?rtcpport=${target.rtcpPort}&pkt_size=1200`,
  ];
  const ffmpeg = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  ffmpeg.stderr!.on('data', (d) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    ffmpeg.once('spawn', resolve);
    ffmpeg.once('error', (e) =>
      reject(new Error(`ffmpeg could not start (is Debian's ffmpeg installed?): ${e.message}`)),
    );
  });
  return {
    peer,
    producer,
    transport,
    ffmpeg,
    stderr: () => err,
    stop: async () => {
      if (ffmpeg.exitCode === null) {
        const exited = new Promise((r) => ffmpeg.once('exit', r));
        ffmpeg.kill('SIGTERM');
        await exited;
      }
      if (!room.closed) room.removePeer(peer, 'bot-stopped');
    },
  };
}
