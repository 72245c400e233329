import { execFile, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { types as ms } from 'mediasoup';
import type { Logger } from '../logging.js';

export interface RecorderEvents {
  /** ffmpeg exited on its own (crash, or a stream it could not handle). */
  crashed: [code: number | null, signal: string | null, stderr: string];
  stopped: [files: string[]];
}

/** The container each codec combination is copied into, without transcoding. */
export function containerFor(codecs: string[]): { ext: string; format: string; contentType: string } {
  const lower = codecs.map((c) => c.toLowerCase());
  if (lower.some((c) => c.endsWith('/h264')))
    return { ext: 'mkv', format: 'matroska', contentType: 'video/x-matroska' };
  if (lower.every((c) => c.startsWith('audio/'))) return { ext: 'ogg', format: 'ogg', contentType: 'audio/ogg' };
  return { ext: 'webm', format: 'webm', contentType: 'video/webm' };
}

/** Two free consecutive UDP ports (RTP, RTCP) for ffmpeg to listen on. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const a = dgram.createSocket('udp4');
    const port = await new Promise<number>((r) => a.bind(0, '127.0.0.1', () => r(a.address().port)));
    const even = port % 2 === 0 ? port : port + 1;
    a.close();
    const sockets = [dgram.createSocket('udp4'), dgram.createSocket('udp4')];
    const ok = await Promise.all(
      sockets.map(
        (s, j) =>
          new Promise<boolean>((r) => {
            s.once('error', () => r(false));
            s.bind(even + j, '127.0.0.1', () => r(true));
          }),
      ),
    );
    for (const s of sockets) s.close();
    if (ok.every(Boolean)) return even;
  }
  throw new Error('no free UDP port pair for the recorder');
}

/** The local UDP ports something listens on (Linux's /proc/net/udp), or undefined where that cannot be read. */
async function boundUdpPorts(): Promise<Set<number> | undefined> {
  const table = await readFile('/proc/net/udp', 'utf8').catch(() => undefined);
  if (table === undefined) return undefined;
  // "  12: 0100007F:9C41 00000000:0000 07 ...": the local address and port, in hex, after the slot number.
  return new Set(
    table
      .split('\n')
      .slice(1)
      .map((line) => Number.parseInt(line.trim().split(/\s+/)[1]?.split(':')[1] ?? '', 16)),
  );
}

/**
 * Records one participant's tracks (audio and video muxed into one file) by
 * consuming them on PlainTransports that send RTP to ffmpeg, which copies the
 * streams into WebM/Ogg/Matroska, cut into segments.
 */
export class Recorder {
  readonly observer = new EventEmitter<RecorderEvents>();
  /**
   * When media began to reach ffmpeg (its consumers resumed) and when ffmpeg was told to stop: the span the file
   * covers. Spawning ffmpeg takes a while on a busy machine, so the time the recorder was created is not it.
   */
  #capturingSince?: number;
  #capturedUntil?: number;
  #starting?: Promise<void>;
  #ffmpeg?: ChildProcess;
  #stderr = '';
  #stopping = false;
  #transports: ms.PlainTransport[] = [];
  #consumers: ms.Consumer[] = [];
  #keyframeTimer?: NodeJS.Timeout;

  constructor(
    private readonly router: ms.Router,
    private readonly producers: ms.Producer[],
    readonly dir: string,
    private readonly segmentSeconds: number,
    private readonly log: Logger,
  ) {}

  /** The ffmpeg process, for supervision. */
  get pid(): number | undefined {
    return this.#ffmpeg?.pid;
  }

  /** When media began to reach ffmpeg; undefined until then. */
  get capturingSince(): number | undefined {
    return this.#capturingSince;
  }

  /** The span the recording covers, in epoch ms (from the stop request when it never started). */
  get span(): { from: number; to: number } {
    const to = this.#capturedUntil ?? Date.now();
    return { from: this.#capturingSince ?? to, to };
  }

  get codecs(): string[] {
    return this.#consumers.map((c) => c.rtpParameters.codecs[0]!.mimeType);
  }

  get #hasVp9(): boolean {
    return this.codecs.some((c) => c.toLowerCase() === 'video/vp9');
  }

  start(): Promise<void> {
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const media: string[] = [];
    const ports: number[] = [];
    for (const producer of this.producers) {
      const port = await freePortPair();
      ports.push(port, port + 1);
      const transport = await this.router.createPlainTransport({
        listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
        rtcpMux: false,
        comedia: false,
      });
      await transport.connect({ ip: '127.0.0.1', port, rtcpPort: port + 1 });
      const consumer = await transport.consume({
        producerId: producer.id,
        rtpCapabilities: this.router.rtpCapabilities,
        paused: true,
      });
      this.#transports.push(transport);
      this.#consumers.push(consumer);
      const codec = consumer.rtpParameters.codecs[0]!;
      const [, name] = codec.mimeType.split('/');
      const fmtp = Object.entries(codec.parameters ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(';');
      media.push(
        [
          `m=${consumer.kind} ${port} RTP/AVP ${codec.payloadType}`,
          `a=rtpmap:${codec.payloadType} ${name}/${codec.clockRate}${codec.channels ? `/${codec.channels}` : ''}`,
          ...(fmtp ? [`a=fmtp:${codec.payloadType} ${fmtp}`] : []),
          `a=rtcp:${port + 1}`,
          'a=recvonly',
        ].join('\n'),
      );
    }
    const sdp = [
      'v=0',
      'o=- 0 0 IN IP4 127.0.0.1',
      's=vigie-recording',
      'c=IN IP4 127.0.0.1',
      't=0 0',
      ...media,
      '',
    ].join('\n');
    const sdpFile = path.join(this.dir, 'input.sdp');
    await writeFile(sdpFile, sdp);
    const { ext, format } = containerFor(this.codecs);
    const args = [
      '-nostdin',
      '-hide_banner',
      '-loglevel',
      'warning',
      '-protocol_whitelist',
      'file,udp,rtp',
      '-analyzeduration',
      '3000000',
      '-probesize',
      '5000000',
      '-fflags',
      '+genpts',
      '-i',
      sdpFile,
      '-map',
      '0',
      '-c',
      'copy',
      // ffmpeg 5.1's RTP VP9 depacketizer does not flag keyframes, so stream copy would drop every
      // packet waiting for one and write an empty file. VP9 is copied from the first packet, and the
      // segments are cleaned up when they are closed (see #trimToFirstKeyframe).
      ...(this.#hasVp9 ? ['-copyinkf'] : []),
      '-f',
      'segment',
      '-segment_time',
      String(this.segmentSeconds),
      '-segment_format',
      format,
      '-reset_timestamps',
      '1',
      path.join(this.dir, `segment-%03d.${ext}`),
    ];
    const ffmpeg = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#ffmpeg = ffmpeg;
    ffmpeg.stderr!.on('data', (d) => (this.#stderr = (this.#stderr + d.toString()).slice(-4000)));
    ffmpeg.once('exit', (code, signal) => {
      if (!this.#stopping) {
        this.#capturedUntil = Date.now();
        this.log.error({ code, signal, stderr: this.#stderr.slice(-500) }, 'recorder ffmpeg exited unexpectedly');
        void this.#teardown().then(() => this.observer.emit('crashed', code, signal, this.#stderr));
      }
    });
    await new Promise<void>((resolve, reject) => {
      ffmpeg.once('spawn', resolve);
      ffmpeg.once('error', (e) => reject(new Error(`cannot start ffmpeg: ${e.message}`)));
    });
    // ffmpeg opens its sockets after reading the SDP; RTP sent before that is lost, so resume only then, and ask
    // for keyframes until it has one to start from. A fixed delay was not enough: on a busy machine ffmpeg took
    // seconds to start, and the file missed them while the catalog counted them.
    await this.#listening(ports);
    // A track closed meanwhile (its sender stopped it) has nothing left to resume: not a failure.
    for (const c of this.#consumers)
      await c.resume().catch((err: unknown) => {
        if (!c.closed) throw err;
      });
    this.#capturingSince = Date.now();
    const requestKeyFrames = () => {
      for (const c of this.#consumers) if (c.kind === 'video') void c.requestKeyFrame().catch(() => undefined);
    };
    requestKeyFrames();
    let n = 0;
    this.#keyframeTimer = setInterval(() => (++n > 4 ? clearInterval(this.#keyframeTimer) : requestKeyFrames()), 500);
  }

  /**
   * Resolves once ffmpeg listens on all `ports` (or has exited; or, where that cannot be seen, after a short delay).
   */
  async #listening(ports: number[]): Promise<void> {
    const ffmpeg = this.#ffmpeg!;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const bound = await boundUdpPorts();
      if (!bound) return void (await new Promise((r) => setTimeout(r, 400)));
      if (ports.every((p) => bound.has(p)) || ffmpeg.exitCode !== null || ffmpeg.signalCode !== null || this.#stopping)
        return;
      if (Date.now() > deadline) {
        this.log.warn({ ports }, 'recorder ffmpeg is not listening after 30 s; sending media anyway');
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops cleanly: ffmpeg finalizes the last segment. Returns the segment files, in order. */
  async stop(): Promise<string[]> {
    this.#stopping = true;
    // A stop that comes while ffmpeg is being started (a short recording on a busy machine) waits for it: stopping
    // then would find no ffmpeg to stop, and the one started afterwards would be left running with its files.
    await this.#starting?.catch(() => undefined);
    this.#capturedUntil ??= Date.now();
    const ffmpeg = this.#ffmpeg;
    if (ffmpeg && ffmpeg.exitCode === null && ffmpeg.signalCode === null) {
      const exited = new Promise((r) => ffmpeg.once('exit', r));
      ffmpeg.kill('SIGINT');
      const timer = setTimeout(() => ffmpeg.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await this.#teardown();
    const files = (await readdir(this.dir))
      .filter((f) => f.startsWith('segment-'))
      .sort()
      .map((f) => path.join(this.dir, f));
    if (this.#hasVp9) for (const file of files) await this.#trimToFirstKeyframe(file);
    this.observer.emit('stopped', files);
    return files;
  }

  /**
   * A VP9 segment may begin with frames that depend on a keyframe it does not
   * hold (a sender whose payload descriptors make every frame look like a
   * keyframe to the SFU, or a cut between segments). A copy through ffmpeg's
   * Matroska demuxer, which does flag keyframes, drops them: the file then
   * decodes cleanly from its first frame. No transcoding; a failure keeps the
   * original segment, which still plays after its first keyframe.
   */
  async #trimToFirstKeyframe(file: string): Promise<void> {
    const { format } = containerFor(this.codecs);
    const trimmed = `${file}.trimmed`;
    try {
      await promisify(execFile)(
        'ffmpeg',
        [
          '-nostdin',
          '-v',
          'error',
          '-i',
          file,
          '-map',
          '0',
          '-c',
          'copy',
          '-avoid_negative_ts',
          'make_zero',
          '-f',
          format,
          '-y',
          trimmed,
        ],
        { timeout: 120_000 },
      );
      if ((await stat(trimmed)).size > 0) await rename(trimmed, file);
    } catch (err) {
      this.log.warn(
        { file, reason: (err as Error).message.slice(0, 300) },
        'could not trim a VP9 segment to its first keyframe; keeping it as recorded',
      );
      await rm(trimmed, { force: true });
    }
  }

  async #teardown(): Promise<void> {
    clearInterval(this.#keyframeTimer);
    for (const t of this.#transports) t.close();
    this.#transports = [];
  }
}
