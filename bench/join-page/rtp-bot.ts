/**
 * The remote party of the control-plane benchmark as an RTP bot: ffmpeg sends
 * one pre-encoded VP8 clip (`-c copy`, in real time) into a PlainTransport
 * producer of the room, created inside each gateway's own process by that
 * tree's own test/helpers/ffmpegBot.ts (the single-node build's is older, with
 * the same `startFfmpegBot(room, { file })`).
 *
 * Why not a browser: a Chromium remote encodes live, sends its key frame only
 * when asked (a PLI), and paces it at its own bandwidth estimate, so the time
 * from a new consumer's resume to its first decodable frame depended on each
 * target's own remote page, a per-target effect that rotating the order of the
 * targets does not cancel. The bot sends the same bytes to every target, and
 * every frame of the clip is a key frame: mediasoup forwards a new consumer's
 * first packets from the next key frame, so the first frame follows the resume
 * by at most one frame interval (50 ms), whatever the PLI does.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '../../test/helpers/browser.js';
import { benchTempDir } from '../common.js';

/** The clip's frame rate: a new consumer waits at most one interval for its first key frame. */
export const BOT_FPS = 20;
const KBPS = 1500;

/**
 * 4 s of a moving test pattern at 640×480, 20 fps, VP8 at about 1.5 Mbit/s, every frame a key frame (`-g 1`),
 * and no hidden alternate reference frames (`-auto-alt-ref 0`, `-lag-in-frames 0`): each RTP frame the SFU
 * forwards is one the viewer decodes on its own. Encoded once per run, sent to every target.
 */
export async function encodeBotClip(): Promise<string> {
  // Removed when the process ends, like every bench's temporary folder.
  const out = path.join(benchTempDir('bot'), 'all-intra.webm');
  await promisify(execFile)('ffmpeg', [
    ...['-nostdin', '-v', 'error', '-f', 'lavfi', '-i', `testsrc=size=640x480:rate=${BOT_FPS}:duration=4`],
    ...['-c:v', 'libvpx', '-b:v', `${KBPS}k`, '-minrate', `${KBPS}k`, '-maxrate', `${KBPS}k`],
    ...['-deadline', 'realtime', '-cpu-used', '8', '-lag-in-frames', '0', '-auto-alt-ref', '0'],
    ...['-g', '1', '-keyint_min', '1', '-an', '-y', out],
  ]);
  return out;
}

/** What the child needs of a gateway of either tree: its SFU's rooms. */
interface GatewayWithRooms {
  app: { sfu: { getOrCreateRoom(tenant: string, room: string): Promise<unknown> } };
}

/** The part of either tree's `startFfmpegBot` the benchmark uses. */
type StartFfmpegBot = (
  room: unknown,
  opts: { kind: 'video'; bitrateKbps: number; name: string; file: string },
) => Promise<{
  producer: { id: string; getStats(): Promise<Array<{ byteCount: number }>> };
  ffmpeg: { kill(): boolean };
  stderr: () => string;
  stop: () => Promise<void>;
}>;

export type RunningBot = Awaited<ReturnType<StartFfmpegBot>>;

/**
 * Runs in a gateway's process: the bot joins `tenant`/`room` as a participant (opening the room) and sends `file`.
 * `treeRoot` is the checkout whose test/helpers/ffmpegBot.ts matches the gateway's sources. Resolves once the
 * producer has received media, so the first measure never waits for the bot.
 */
export async function startBot(
  treeRoot: string,
  gw: GatewayWithRooms,
  o: { tenant: string; room: string; file: string },
): Promise<RunningBot> {
  const { startFfmpegBot } = (await import(path.join(treeRoot, 'test/helpers/ffmpegBot.ts'))) as {
    startFfmpegBot: StartFfmpegBot;
  };
  const room = await gw.app.sfu.getOrCreateRoom(o.tenant, o.room);
  const bot = await startFfmpegBot(room, { kind: 'video', bitrateKbps: KBPS, name: 'remote', file: o.file });
  try {
    await waitFor(
      "the bot's producer to receive media",
      () => bot.producer.getStats(),
      (s) => (s[0]?.byteCount ?? 0) > 50_000,
      30_000,
    );
  } catch (e) {
    await bot.stop();
    throw new Error(`${(e as Error).message}; ffmpeg said: ${bot.stderr()}`);
  }
  return bot;
}
