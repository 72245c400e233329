/**
 * Accuracy of call diagnosis (issue #14, "Accuracy, measured"): trials of a fresh call each — an ffmpeg bot
 * publishing VP8 and two subscribers whose receivers send RTCP reports — with exactly one fault injected by the
 * kernel on one participant and one direction, or none (a clean call). What the detectors raise is scored against
 * what was injected: a true positive names the injected participant and direction, anything else is a false
 * positive, and an injected fault that raises nothing of its kind is a false negative.
 *
 * Faults, each held FAULT_MS then removed:
 * - loss: nftables `numgen random mod 100 < P drop` on the UDP port of one participant's path (the publisher's
 *   RTP into the SFU for uplink loss, one subscriber's receiver for downlink loss), P in 8–15%, on the `input`
 *   hook (a drop on `output` returns EPERM to the sender, and ffmpeg exits on it);
 * - rate: `tc tbf` at RATE_KBIT behind an htb class that a u32 filter feeds with the same one path;
 * - one-way media: the same nftables rule dropping 100% of one subscriber's RTP;
 * - a CPU-starved worker: at nice 19 in a cgroup (v1 `cpu`) of 2 ms per second, with a busy loop at nice -20.
 *
 * Audio trials (an ffmpeg bot publishing Opus instead of VP8, its RTP and each subscriber's through a userspace UDP
 * relay, as this kernel has no netem): `clean_audio`; `uplink_jitter` and `downlink_jitter`, the relay of the
 * publisher or of one subscriber holding each packet a random 0 to JITTER_MS; `path_delay`, one subscriber's reports
 * held DELAY_MS on their way back to the SFU, a slow path that the SFU's round trip measures; `audio_uplink_loss` and
 * `audio_downlink_loss`, the nftables drop of the loss trials on the Opus publisher's or one subscriber's path.
 *
 * Browser trials, run on their own with BENCH_ONLY (a few at once: each page encodes its fake camera in simulcast):
 * the same publisher, and two Chromium subscribers (the join page, publishing their fake camera too) instead of RTP
 * receivers, one of them the target:
 * - `clean_browser`: nothing;
 * - `one_way_browser`: everything the SFU sends the target is dropped, a blackout the SFU's own figures cannot see,
 *   only the browser's reports (client stats, every second here);
 * - `freeze_browser`: the same for FREEZE_MS only, a freeze the viewer notices;
 * - `uplink_rate_browser`, `downlink_rate_browser`: the tbf limit on the target's uplink (its encoder is held back and
 *   drops layers) or downlink (the SFU holds it on a lower layer);
 * - `relay_browser`: the target joins through a TURN relay (coturn, in the same namespace; the join page's `relay=1`
 *   forces it), from its join on;
 * - `ice_cut_browser`: everything the target sends the SFU is dropped and the SFU restarts the target's sending ICE;
 *   held ICE_CUT_MS, past the detector's 10 s, so that the restart cannot recover.
 *
 * The whole run happens in a network namespace of its own (the script re-executes itself inside one), so its
 * nftables rules and qdiscs touch no other process of this shared machine, and every participant's path is a
 * UDP port pair on that namespace's loopback. Several trials run at once, one fault per call and each call's
 * media on its own ports; starved workers carry one call each and nothing else.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { QualityIssue } from '../src/diagnosis/index.js';
import type { Peer, Room, WorkerSlot } from '../src/media/index.js';
import type { types } from 'mediasoup';
import { startGateway } from '../test/helpers/gateway.js';
import { encodedLoop, startFfmpegBot } from '../test/helpers/ffmpegBot.js';
import { startPlainSubscriber } from '../test/helpers/plainSubscriber.js';
import { type RelayImpairment, startUdpRelay } from '../test/helpers/udpRelay.js';
import { startCoturn } from '../test/helpers/coturn.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from '../test/helpers/browser.js';

/** Waves of trials; each wave runs one trial of each entry of WAVE at once. */
const WAVES = Number(process.env.BENCH_WAVES ?? 10);
const FAULT_MS = Number(process.env.BENCH_FAULT_MS ?? 8000);
/** Clean media before the fault (anything raised then is a false positive) and after it (it should end). */
const BEFORE_MS = Number(process.env.BENCH_BEFORE_MS ?? 2000);
const AFTER_MS = Number(process.env.BENCH_AFTER_MS ?? 3000);
/** An issue raised this long after the fault was removed still counts for it: the last sample covers the fault. */
const GRACE_MS = 2000;
/** Under what the clip really sends: its 400 kbit/s target comes out at about 150 kbit/s for a test pattern. */
const RATE_KBIT = 120;
const BITRATE_KBPS = 400;
const AUDIO_KBPS = 64;
const LOSS_PCTS = [8, 10, 12, 15];
/** The relay's random hold (ms) in the jitter trials: about a third of it is the jitter a receiver estimates. */
const JITTER_MS = [120, 160, 200];
/** The hold of a delayed subscriber's reports (ms): the round trip the SFU measures, and a little more. */
const DELAY_MS = [450, 500, 600];

type Fault =
  | 'clean'
  | 'uplink_loss'
  | 'downlink_loss'
  | 'uplink_rate'
  | 'downlink_rate'
  | 'one_way'
  | 'overload'
  | 'clean_audio'
  | 'uplink_jitter'
  | 'downlink_jitter'
  | 'path_delay'
  | 'audio_uplink_loss'
  | 'audio_downlink_loss'
  | 'clean_browser'
  | 'one_way_browser'
  | 'uplink_rate_browser'
  | 'downlink_rate_browser'
  | 'freeze_browser'
  | 'relay_browser'
  | 'ice_cut_browser';
const BROWSER_FAULTS: Fault[] = [
  'clean_browser',
  'one_way_browser',
  'uplink_rate_browser',
  'downlink_rate_browser',
  'freeze_browser',
  'relay_browser',
  'ice_cut_browser',
];
const AUDIO_FAULTS: Fault[] = [
  'clean_audio',
  'uplink_jitter',
  'downlink_jitter',
  'path_delay',
  'audio_uplink_loss',
  'audio_downlink_loss',
];
/** The blackout of `freeze_browser` (ms): a freeze a viewer notices (at least a second), short of one-way media. */
const FREEZE_MS = 2000;
/** How long `ice_cut_browser` holds its cut (ms): past `iceRestartRecoverMs` (10 s) and the check after it. */
const ICE_CUT_MS = 16_000;
const TURN_SECRET = 'acc-turn-secret-0123456789abcdef';
type WebRtcTransport = types.WebRtcTransport;
/**
 * One wave: three clean calls, three one-way and three starved workers, and for each loss detector two calls with
 * random loss and one with a rate limit; three clean audio calls and three of each audio fault. Ten waves give each
 * detector 30 faults, and 30 clean calls of each kind.
 */
const WAVE: Fault[] = process.env.BENCH_ONLY
  ? (process.env.BENCH_ONLY.split(',') as Fault[])
  : [
      'clean',
      'clean',
      'clean',
      'uplink_loss',
      'uplink_loss',
      'uplink_rate',
      'downlink_loss',
      'downlink_loss',
      'downlink_rate',
      'one_way',
      'one_way',
      'one_way',
      'overload',
      'overload',
      'overload',
      ...AUDIO_FAULTS.flatMap((f) => [f, f, f]),
    ];
/**
 * What each fault should raise: the detectors (each is scored: a fault that raises one but not the other is a hit for
 * the first and a miss for the second), and whose and which direction; `consistent` lists other detectors that may
 * rightly fire on the same participant and direction (a blackout freezes the video too), neither hit nor miss.
 */
const EXPECTED: Record<
  Exclude<Fault, 'clean' | 'clean_browser' | 'clean_audio'>,
  { kinds: string[]; who: 'publisher' | 'target'; direction: string; consistent?: string[] }
> = {
  uplink_loss: { kinds: ['uplink_loss'], who: 'publisher', direction: 'uplink' },
  uplink_rate: { kinds: ['uplink_loss'], who: 'publisher', direction: 'uplink' },
  downlink_loss: { kinds: ['downlink_loss'], who: 'target', direction: 'downlink' },
  downlink_rate: { kinds: ['downlink_loss'], who: 'target', direction: 'downlink' },
  one_way: { kinds: ['one_way_media'], who: 'target', direction: 'downlink' },
  uplink_jitter: { kinds: ['uplink_jitter'], who: 'publisher', direction: 'uplink' },
  downlink_jitter: { kinds: ['downlink_jitter'], who: 'target', direction: 'downlink' },
  // A round trip does not say which way the delay is.
  path_delay: { kinds: ['high_rtt'], who: 'target', direction: 'both' },
  // A subscriber's loss on audio is judged once the SFU has received the track whole for 7.5 s (a browser's reports
  // on audio are that far apart): the RTP receivers here report every second, so this measures the wait alone.
  audio_uplink_loss: { kinds: ['uplink_loss'], who: 'publisher', direction: 'uplink' },
  audio_downlink_loss: { kinds: ['downlink_loss'], who: 'target', direction: 'downlink' },
  overload: { kinds: ['sfu_overload'], who: 'target', direction: 'server' },
  one_way_browser: { kinds: ['one_way_media'], who: 'target', direction: 'downlink', consistent: ['video_frozen'] },
  // A Chromium publisher (simulcast) whose uplink is capped: its encoder says so, and it drops layers. Its audio
  // waits in the same queue: the SFU measures 100–230 ms of jitter on it, rightly an uplink_jitter of the target.
  uplink_rate_browser: {
    kinds: ['encoder_limited', 'uplink_congestion'],
    who: 'target',
    direction: 'uplink',
    consistent: ['uplink_loss', 'video_frozen', 'uplink_jitter'],
  },
  // A Chromium subscriber whose downlink is capped: the SFU holds it on a lower layer of the other browser's video.
  downlink_rate_browser: {
    kinds: ['downlink_congestion'],
    who: 'target',
    direction: 'downlink',
    consistent: ['downlink_loss', 'video_frozen'],
  },
  // Two seconds of nothing towards one Chromium subscriber: a freeze it notices, too short for one-way media.
  freeze_browser: { kinds: ['video_frozen'], who: 'target', direction: 'downlink' },
  relay_browser: { kinds: ['turn_relay'], who: 'target', direction: 'both' },
  // Nothing from the target reaches the SFU after its ICE restart: its viewers' video stops (a freeze they may report,
  // put down to the target), and its encoder, starved of feedback, may say it is limited. When the run offers a TURN
  // server, the browser may come back through it as the cut ends: a relay then really in use (seen once, at 16.4 s).
  ice_cut_browser: {
    kinds: ['ice_restart_failed'],
    who: 'target',
    direction: 'both',
    consistent: ['video_frozen', 'encoder_limited', 'uplink_congestion', 'uplink_loss', 'turn_relay'],
  },
};
function expectedOf(f: Fault) {
  return f === 'clean' || f === 'clean_browser' || f === 'clean_audio' ? undefined : EXPECTED[f];
}
/** The detectors this run's faults test: each gets its row, even with nothing raised. */
const DETECTORS = [...new Set(WAVE.flatMap((f) => expectedOf(f)?.kinds ?? []))];

interface TrialResult {
  fault: Fault;
  param: string;
  /** What was raised, as `kind who direction`, and whether it was the injected fault (in time). */
  raised: Array<{ label: string; match: boolean; consistent?: boolean; afterMs: number; evidence: string }>;
  setupFailed?: string;
  /**
   * Each stream's mean score (audio MOS, video quality) before the fault and while it lasted, for the faults of `HIT`:
   * the score must fall where the fault is, and only there.
   */
  scores?: Record<string, { before: number; during: number }>;
}

/** Runs a command, feeding it `input`; throws with its stderr when it fails. */
function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: ${err}`))));
    p.stdin?.end(input);
  });
}

let chainSeq = 0;
/**
 * nftables: drops `pct`% of the packets, UDP or TCP, to `port` or to each of `port`'s list (in this namespace), until
 * the returned function runs.
 */
async function nftDrop(port: number | number[], pct: number): Promise<() => Promise<void>> {
  const ports = [port].flat().join(', ');
  const chain = `f${++chainSeq}`;
  const verdict = pct >= 100 ? 'drop' : `numgen random mod 100 < ${pct} drop`;
  await run(
    'nft',
    ['-f', '-'],
    `add chain inet vigie_acc ${chain} { type filter hook input priority 0; }\nadd rule inet vigie_acc ${chain} meta l4proto { tcp, udp } th dport { ${ports} } ${verdict}\n`,
  );
  return () =>
    run('nft', ['-f', '-'], `flush chain inet vigie_acc ${chain}\ndelete chain inet vigie_acc ${chain}\n`).then(
      () => undefined,
    );
}

let classSeq = 0x10;
/** tc: a token bucket (tbf) at `kbit` on the UDP packets to `port`, fed by a u32 filter into an htb class of its own. */
async function tbfLimit(port: number, kbit: number): Promise<() => Promise<void>> {
  const minor = (++classSeq).toString(16);
  const prio = String(classSeq);
  await run('tc', ['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', `1:${minor}`, 'htb', 'rate', '10gbit']);
  await run('tc', [
    'qdisc',
    'add',
    'dev',
    'lo',
    'parent',
    `1:${minor}`,
    'tbf',
    'rate',
    `${kbit}kbit`,
    'burst',
    '4kb',
    'latency',
    '50ms',
  ]);
  await run('tc', [
    'filter',
    'add',
    'dev',
    'lo',
    'parent',
    '1:',
    'protocol',
    'ip',
    'prio',
    prio,
    'u32',
    'match',
    'ip',
    'dport',
    String(port),
    '0xffff',
    'flowid',
    `1:${minor}`,
  ]);
  return async () => {
    await run('tc', ['filter', 'del', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', prio]);
    await run('tc', ['class', 'del', 'dev', 'lo', 'classid', `1:${minor}`]);
  };
}

const CPU_CGROUP = '/sys/fs/cgroup/cpu';
/**
 * Starves a worker of CPU as a noisy neighbour would, without touching the rest of the machine: the worker (at nice
 * 19) shares a cgroup (v1 `cpu`) with a busy loop (at nice -20), and the cgroup may use 2 ms of CPU per second. The
 * loop takes almost all of that (the weights are 88761 to 15), so the worker waits up to a second at a time, as in
 * test/diagnosis.test.ts, where the loops take a whole core. (Without the loop, the quota alone starves nothing:
 * a worker of one small call uses less than a millisecond per second.) Undone by the returned function.
 */
function starve(pid: number, name: string): () => void {
  const own = /(?:^|\n)\d+:(?:[^:\n]*,)?cpu(?:,[^:\n]*)?:([^\n]*)/.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  const home = `${CPU_CGROUP}${own?.[1] === '/' ? '' : (own?.[1] ?? '')}`;
  const dir = `${CPU_CGROUP}/${name}`;
  mkdirSync(dir);
  writeFileSync(`${dir}/cpu.cfs_period_us`, '1000000');
  writeFileSync(`${dir}/cpu.cfs_quota_us`, '2000');
  const hog = spawn('nice', ['-n', '-20', 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' });
  writeFileSync(`${dir}/cgroup.procs`, String(hog.pid));
  writeFileSync(`${dir}/cgroup.procs`, String(pid));
  execFileSync('renice', ['-n', '19', '-p', String(pid)], { stdio: 'ignore' });
  return () => {
    execFileSync('renice', ['-n', '0', '-p', String(pid)], { stdio: 'ignore' });
    // Both leave the cgroup first: an empty one can go at once.
    writeFileSync(`${home}/cgroup.procs`, String(pid));
    writeFileSync(`${home}/cgroup.procs`, String(hog.pid));
    hog.kill('SIGKILL');
    rmdirSync(dir);
  };
}

/** A subscriber of a trial: whose peer, the port its media arrives on (the faults' target), what it received. */
interface Subscriber {
  peer: Peer;
  port: () => number;
  /** A browser's: the SFU's port its uplink arrives on. */
  sendPort?: () => number;
  /** A browser's: every port its sending transport offers (UDP and TCP candidates). */
  sendPorts?: () => number[];
  /** A browser's: the SFU restarts ICE on its sending transport. */
  restartSend?: () => Promise<unknown>;
  /** An RTP receiver's: the relay in front of it, whose random hold a fault sets. */
  path?: RelayImpairment;
  /** An RTP receiver's: holds its reports on their way back to the SFU (0: not). */
  delayReports?: (ms: number) => void;
  received: () => Promise<number>;
  close: () => unknown;
}

/** An RTP receiver that reports in RTCP; `relayed` puts a UDP relay in front of it (audio trials). */
async function rtpSubscriber(room: Room, producerId: string, who: string, relayed = false): Promise<Subscriber> {
  const path: RelayImpairment = {};
  const sub = await startPlainSubscriber(room, producerId, who, relayed ? { loss: path } : {});
  return {
    peer: sub.peer,
    path,
    delayReports: sub.receiver.setReportDelayMs,
    port: () => sub.receiver.rtpPort,
    received: async () => sub.receiver.received(),
    close: sub.close,
  };
}

let gw: Awaited<ReturnType<typeof startGateway>>;
let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;

/** A Chromium page joined through the join page: the port is its browser's end of the SFU's receive transport. */
async function browserSubscriber(room: Room, roomName: string, who: string, relay = false): Promise<Subscriber> {
  browser ??= await launchBrowser();
  const page = await browser.context.newPage();
  try {
    const token = await gw.mint({ room: roomName, identity: who, name: who });
    await joinThroughPage(page, `${gw.url}/join?token=${token}${relay ? '&relay=1' : ''}`);
    const peer = (await waitFor('the page to join', async () => room.findPeerByIdentity(who), Boolean, 20_000))!;
    const connected = (direction: string) =>
      waitFor(
        `its ${direction} transport to connect`,
        async () =>
          [...peer.transports.values()].find(
            (t) => t.appData.direction === direction && (t as WebRtcTransport).iceSelectedTuple,
          ) as WebRtcTransport | undefined,
        Boolean,
        20_000,
      );
    const [recv, send] = [await connected('recv'), await connected('send')];
    const portOf = (port: number | undefined, what: string) => {
      if (!port) throw new Error(`${who}: its ${what} transport has no selected path`);
      return port;
    };
    return {
      peer,
      port: () => portOf(recv!.iceSelectedTuple?.remotePort, 'receive'),
      sendPort: () => portOf(send!.iceSelectedTuple?.localPort, 'send'),
      sendPorts: () => send!.iceCandidates.map((c) => c.port),
      restartSend: () => room.restartIce(peer, send!.id),
      received: async () => (await receivedMedia(page)).framesDecoded,
      close: () => page.close(),
    };
  } catch (err) {
    await page.close();
    throw err;
  }
}

async function main(): Promise<void> {
  await run('nft', ['add', 'table', 'inet', 'vigie_acc']);
  // Every packet on the loopback passes an htb root; only the tbf classes a fault adds limit anything.
  await run('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '1', 'r2q', '100000']);
  await run('tc', ['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '10gbit']);

  const starvedWorkers = WAVE.filter((f) => f === 'overload').length;
  // A TURN server only when a trial relays: offered to every page, it is one more candidate each gathers.
  const coturn = WAVE.includes('relay_browser')
    ? await startCoturn({ secret: TURN_SECRET, realm: 'vigie.bench' })
    : undefined;
  gw = await startGateway({
    ...(coturn ? { ice: { turnUrls: [`${coturn.url}?transport=udp`], turnSecret: TURN_SECRET } } : {}),
    // Client stats every second, as the browser trials' detector counts reports (3 of them).
    telemetry: { statsIntervalMs: 1000, clientStatsIntervalMs: 1000 },
    media: { workers: 2 + starvedWorkers },
  });
  gw.app.diagnosis.observer.setMaxListeners(WAVE.length + 10);
  const pool = gw.app.sfu.pool;
  // Each call goes on the worker the bench chooses: the network faults' calls share the first two, and a call whose
  // worker is starved is the only one on it (its neighbours would be right to report the overload too).
  let placeOn: WorkerSlot | undefined;
  const leastLoaded = pool.leastLoaded.bind(pool);
  pool.leastLoaded = (avoid) => placeOn ?? leastLoaded(avoid);
  const clip = await encodedLoop('video', BITRATE_KBPS);
  const voice = await encodedLoop('audio', AUDIO_KBPS);

  const load: number[] = [];
  const loadTimer = setInterval(() => load.push(os.loadavg()[0]!), 5000);
  const startedAt = Date.now();
  const results: TrialResult[] = [];
  let n = 0;

  async function trial(fault: Fault, slot: WorkerSlot, index: number): Promise<TrialResult> {
    const name = `acc-${++n}`;
    placeOn = slot;
    const room = await gw.app.sfu.getOrCreateRoom('acme', name);
    placeOn = undefined;
    const raised: Array<{ issue: QualityIssue; at: number }> = [];
    const onIssue = (issue: QualityIssue) => issue.room === room && raised.push({ issue, at: Date.now() });
    gw.app.diagnosis.observer.on('issue', onIssue);
    const cleanup: Array<() => unknown> = [];
    const result: TrialResult = { fault, param: '', raised: [] };
    // The subscriber that suffers a downlink fault alternates, so that naming the right one is tested.
    const targetIndex = index % 2;
    const startedAt = Date.now();
    try {
      const audio = AUDIO_FAULTS.includes(fault);
      // The audio publisher's RTP goes through a relay whose random hold the uplink jitter fault sets.
      const uplink: RelayImpairment = {};
      const bot = await startFfmpegBot(
        room,
        audio
          ? {
              kind: 'audio',
              bitrateKbps: AUDIO_KBPS,
              file: voice,
              name: 'pub',
              through: async (port) => {
                const relay = await startUdpRelay({ ip: '127.0.0.1', port }, uplink);
                cleanup.push(relay.close);
                return relay.port;
              },
            }
          : { kind: 'video', bitrateKbps: BITRATE_KBPS, file: clip, name: 'pub' },
      );
      cleanup.push(bot.stop);
      const subs: Subscriber[] = [];
      for (const [i, who] of ['sub1', 'sub2'].entries()) {
        const sub = BROWSER_FAULTS.includes(fault)
          ? await browserSubscriber(room, name, who, fault === 'relay_browser' && i === targetIndex)
          : await rtpSubscriber(room, bot.producer.id, who, audio);
        cleanup.push(sub.close);
        subs.push(sub);
      }
      await waitFor(
        'media to reach both subscribers',
        async () => Math.min(...(await Promise.all(subs.map((s) => s.received())))),
        (x) => x > 30,
        20_000,
      );
      await sleep(BEFORE_MS);
      const target = subs[targetIndex]!;
      const pubPort = bot.transport.tuple.localPort;
      const pct = LOSS_PCTS[index % LOSS_PCTS.length]!;
      const jitterMs = JITTER_MS[index % JITTER_MS.length]!;
      const delayMs = DELAY_MS[index % DELAY_MS.length]!;
      // A relayed route is the fault from the target's join on.
      const injectedAt = fault === 'relay_browser' ? startedAt : Date.now();
      let remove: () => unknown = () => undefined;
      if (fault === 'uplink_loss' || fault === 'audio_uplink_loss') remove = await nftDrop(pubPort, pct);
      else if (fault === 'downlink_loss' || fault === 'audio_downlink_loss') remove = await nftDrop(target.port(), pct);
      else if (fault === 'one_way' || fault === 'one_way_browser') remove = await nftDrop(target.port(), 100);
      else if (fault === 'uplink_rate') remove = await tbfLimit(pubPort, RATE_KBIT);
      else if (fault === 'downlink_rate') remove = await tbfLimit(target.port(), RATE_KBIT);
      else if (fault === 'overload') remove = starve(slot.worker.pid, `vigie-acc${process.pid}-${name}`);
      else if (fault === 'uplink_jitter') {
        uplink.jitterMs = jitterMs;
        remove = () => (uplink.jitterMs = undefined);
      } else if (fault === 'downlink_jitter') {
        target.path!.jitterMs = jitterMs;
        remove = () => (target.path!.jitterMs = undefined);
      } else if (fault === 'path_delay') {
        target.delayReports!(delayMs);
        remove = () => target.delayReports!(0);
      } else if (fault === 'uplink_rate_browser') remove = await tbfLimit(target.sendPort!(), RATE_KBIT);
      else if (fault === 'downlink_rate_browser') remove = await tbfLimit(target.port(), RATE_KBIT);
      else if (fault === 'freeze_browser') remove = await nftDrop(target.port(), 100);
      else if (fault === 'ice_cut_browser') {
        // Every path: with only its UDP port cut, the browser's own ICE restart would find the TCP candidate.
        remove = await nftDrop(target.sendPorts!(), 100);
        await target.restartSend!();
      }
      cleanup.push(remove);
      result.param = fault.endsWith('_loss')
        ? `${pct}%`
        : fault.includes('_rate')
          ? `${RATE_KBIT} kbit/s`
          : fault.endsWith('_jitter')
            ? `0–${jitterMs} ms hold`
            : fault === 'path_delay'
              ? `${delayMs} ms`
              : fault === 'overload'
                ? 'starved'
                : fault === 'relay_browser'
                  ? 'TURN over UDP'
                  : '';
      if (fault === 'freeze_browser') {
        // A short blackout, then the rest of the fault's time with media back: the freeze is reported as it ends.
        await sleep(FREEZE_MS);
        await remove();
        remove = () => undefined;
        await sleep(FAULT_MS - FREEZE_MS);
      } else await sleep(fault === 'ice_cut_browser' ? ICE_CUT_MS : FAULT_MS);
      await remove();
      cleanup.pop();
      const removedAt = Date.now();
      await sleep(AFTER_MS);
      const who = (p?: Peer) =>
        p === undefined ? 'server' : p === bot.peer ? 'publisher' : p === target.peer ? 'target' : 'other';
      if (fault in HIT) result.scores = await scores(room, who, injectedAt, removedAt);
      const expected = expectedOf(fault);
      for (const { issue, at } of raised) {
        const w = who(issue.peer);
        // A freeze is reported as it ends: what must fall within the fault is when it began.
        const began = issue.kind === 'video_frozen' ? at - Number(issue.evidence.frozen_ms ?? 0) : at;
        const inTime = at >= injectedAt && began <= removedAt + GRACE_MS;
        const whom = !!expected && inTime && (expected.direction === 'server' ? w === 'server' : w === expected.who);
        // A fault of both directions (a route) covers what it does to either: a cut target's encoder, starved of
        // feedback, is limited on its uplink.
        const covered =
          issue.direction === expected?.direction ||
          (expected?.direction === 'both' && (issue.direction === 'uplink' || issue.direction === 'downlink'));
        result.raised.push({
          label: `${issue.kind} ${w} ${issue.direction}`,
          match: whom && issue.direction === expected!.direction && expected!.kinds.includes(issue.kind),
          consistent: whom && covered && !!expected!.consistent?.includes(issue.kind),
          afterMs: at - injectedAt,
          evidence: JSON.stringify(issue.evidence),
        });
      }
    } catch (err) {
      result.setupFailed = (err as Error).message;
    } finally {
      gw.app.diagnosis.observer.off('issue', onIssue);
      for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
      if (!room.closed) room.close('bench');
    }
    return result;
  }

  const netSlots = pool.slots.slice(0, 2);
  const starvedSlots = pool.slots.slice(2);
  for (let w = 0; w < WAVES; w++) {
    let net = 0;
    let starved = 0;
    const wave = WAVE.map((fault, i) =>
      trial(fault, fault === 'overload' ? starvedSlots[starved++]! : netSlots[net++ % 2]!, w * WAVE.length + i),
    );
    const done = await Promise.all(wave);
    if (process.env.BENCH_VERBOSE)
      for (const r of done)
        console.error(`  ${r.fault} ${r.param}: ${JSON.stringify(r.raised)} ${r.setupFailed ?? ''}`);
    results.push(...done);
    console.error(`[diagnosis-accuracy] wave ${w + 1}/${WAVES} done, ${Math.round((Date.now() - startedAt) / 1000)} s`);
  }
  clearInterval(loadTimer);
  await browser?.close();
  await gw.close();
  await coturn?.stop();
  const scored = score(results, { load, durationS: Math.round((Date.now() - startedAt) / 1000) });
  // The table for bench/README.md.
  console.error(
    '| detector | injected | TP | FP | FN | precision | recall |\n| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const [d, t] of Object.entries(scored.detectors))
    console.error(
      `| \`${d}\` | ${t.injected} | ${t.tp} | ${t.fp} | ${t.fn} | ${t.precision ?? '–'} | ${t.recall ?? '–'} |`,
    );
  console.log(JSON.stringify(scored));
}

/**
 * The mean MOS of each audio stream of a call (the SFU's samples, `track_stats`), before `from` and from `from` to
 * `to`, keyed `whose direction`. Samples that carried no packet are left out.
 */
async function scores(room: Room, who: (p?: Peer) => string, from: number, to: number) {
  // Audio is scored by its MOS, video by its quality score (docs/operators.md, "Scores"), on the same 1–5 scale.
  const rows = await gw.query<{ peer_id: string; producer_id: string; direction: string; during: number; s: number }>(
    `SELECT peer_id, producer_id, direction, toUnixTimestamp64Milli(ts) >= {from:Int64} AS during,
            avg(if(kind = 'audio', mos, video_quality)) AS s
     FROM vigie.track_stats
     WHERE room = {room:String} AND call_id = {call:String} AND packets > 0
       AND if(kind = 'audio', mos, video_quality) IS NOT NULL AND toUnixTimestamp64Milli(ts) <= {to:Int64}
     GROUP BY peer_id, producer_id, direction, during`,
    { room: room.id, call: room.callId, from, to },
  );
  const ownerOf = (producerId: string) => [...room.peers.values()].find((p) => p.producers.has(producerId));
  const out: Record<string, { before: number; during: number }> = {};
  for (const r of rows) {
    // A stream is named by whose end it is, its direction and whose track it carries: `target outbound publisher`.
    const key = `${who(room.peers.get(r.peer_id))} ${r.direction} ${who(ownerOf(r.producer_id))}`;
    out[key] ??= { before: Number.NaN, during: Number.NaN };
    out[key][Number(r.during) ? 'during' : 'before'] = round3(r.s);
  }
  return out;
}

/**
 * Per fault: in how many trials the score of each stream the fault hits fell by at least `SCORE_DROP`, and the mean
 * change of those and of the streams it does not hit. A stream is hit when its name matches one of the fault's
 * patterns: a subscriber's stream carries what the publisher's uplink did to it, so an uplink fault hits every view of
 * the publisher's track; a downlink fault hits every stream the target receives.
 */
const SCORE_DROP = 0.1;
const HIT: Partial<Record<Fault, RegExp[]>> = {
  clean_audio: [],
  uplink_jitter: [/^\w+ \w+ publisher$/],
  downlink_jitter: [/^target outbound /],
  path_delay: [/^target outbound /],
  audio_uplink_loss: [/^\w+ \w+ publisher$/],
  audio_downlink_loss: [/^target outbound /],
  clean_browser: [],
  one_way_browser: [/^target outbound /],
  freeze_browser: [/^target outbound /],
  downlink_rate_browser: [/^target outbound /],
  uplink_rate_browser: [/^target inbound target$/, /^\w+ outbound target$/],
};
function scoreChanges(results: TrialResult[]) {
  const out: Record<string, { trials: number; hitFell: number; hitMean: number; othersMean: number | null }> = {};
  for (const [fault, hit] of Object.entries(HIT)) {
    const trials = results.filter((r) => r.fault === fault && r.scores);
    if (!trials.length) continue;
    const hitDeltas: number[] = [];
    const otherDeltas: number[] = [];
    let hitFell = 0;
    for (const r of trials) {
      const deltas = Object.entries(r.scores!).map(([k, v]) => ({ k, d: v.during - v.before }));
      const isHit = (k: string) => hit!.some((re) => re.test(k));
      const hits = deltas.filter((x) => isHit(x.k) && Number.isFinite(x.d));
      if (hits.length && hits.every((x) => x.d <= -SCORE_DROP)) hitFell++;
      hitDeltas.push(...hits.map((x) => x.d));
      otherDeltas.push(...deltas.filter((x) => !isHit(x.k) && Number.isFinite(x.d)).map((x) => x.d));
    }
    const mean = (xs: number[]) => (xs.length ? round3(xs.reduce((a, b) => a + b, 0) / xs.length) : null);
    out[fault] = { trials: trials.length, hitFell, hitMean: mean(hitDeltas) ?? 0, othersMean: mean(otherDeltas) };
  }
  return out;
}

function score(results: TrialResult[], run: { load: number[]; durationS: number }) {
  const table: Record<
    string,
    { injected: number; tp: number; fp: number; fn: number; precision: number | null; recall: number | null }
  > = {};
  for (const d of DETECTORS) table[d] = { injected: 0, tp: 0, fp: 0, fn: 0, precision: null, recall: null };
  const confusions = new Map<string, number>();
  const errors = new Set<string>();
  /** Each false positive: the trial's fault, what fired, when (ms from the injection; negative: before it), why. */
  const falseAlarms: string[] = [];
  const latencies: Record<string, number[]> = {};
  const byFault: Record<string, { trials: number; detected: number; setupFailed: number }> = {};
  for (const r of results) {
    byFault[r.fault] ??= { trials: 0, detected: 0, setupFailed: 0 };
    const f = byFault[r.fault]!;
    if (r.setupFailed) {
      f.setupFailed++;
      errors.add(r.setupFailed);
      continue;
    }
    f.trials++;
    const expected = expectedOf(r.fault);
    for (const kind of expected?.kinds ?? []) {
      table[kind]!.injected++;
      const hit = r.raised.find((x) => x.match && x.label.startsWith(`${kind} `));
      if (hit) {
        table[kind]!.tp++;
        latencies[kind] = [...(latencies[kind] ?? []), hit.afterMs];
      } else table[kind]!.fn++;
    }
    if (r.raised.some((x) => x.match)) f.detected++;
    for (const x of r.raised) {
      if (x.match || x.consistent) continue;
      const kind = x.label.split(' ')[0]!;
      table[kind] ??= { injected: 0, tp: 0, fp: 0, fn: 0, precision: null, recall: null };
      table[kind].fp++;
      const key = `${r.fault}${r.param ? ` ${r.param}` : ''} → ${x.label}`;
      confusions.set(key, (confusions.get(key) ?? 0) + 1);
      falseAlarms.push(`${r.fault} → ${x.label} at ${x.afterMs} ms ${x.evidence}`);
    }
  }
  for (const t of Object.values(table)) {
    t.precision = t.tp + t.fp > 0 ? round3(t.tp / (t.tp + t.fp)) : null;
    t.recall = t.injected > 0 ? round3(t.tp / t.injected) : null;
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return {
    bench: 'diagnosis-accuracy',
    date: new Date().toISOString(),
    waves: WAVES,
    faultMs: FAULT_MS,
    trials: results.length,
    byFault,
    detectors: table,
    detectionMsMedian: Object.fromEntries(Object.entries(latencies).map(([k, v]) => [k, median(v)])),
    confusions: Object.fromEntries(confusions),
    scoreChanges: scoreChanges(results),
    falseAlarms,
    ...(errors.size ? { errors: [...errors] } : {}),
    durationS: run.durationS,
    load1: {
      cores: os.cpus().length,
      min: Math.min(...run.load),
      max: Math.max(...run.load),
      mean: round3(run.load.reduce((a, b) => a + b, 0) / Math.max(1, run.load.length)),
    },
  };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NETNS_ENV = 'VIGIE_ACC_NETNS';
if (!process.env[NETNS_ENV]) {
  // Re-run this script inside a namespace of its own, with its loopback up, and remove the namespace after.
  const ns = `vigie-acc${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // With the loopback alone, Chromium counts itself offline and gathers no ICE candidate at all: a network (a veth
    // pair, both ends here; this kernel has no dummy device) with a default route. Media stays on the loopback.
    execFileSync('ip', ['-n', ns, 'link', 'add', 'acc0', 'type', 'veth', 'peer', 'name', 'acc1']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', '10.255.0.1/24', 'dev', 'acc0']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'acc0', 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'acc1', 'up']);
    execFileSync('ip', ['-n', ns, 'route', 'add', 'default', 'dev', 'acc0']);
    // nsenter changes the network namespace only (`ip netns exec` would also remount /sys, hiding the cgroups).
    const r = spawnSync(
      'nsenter',
      [
        `--net=/run/netns/${ns}`,
        process.execPath,
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        ...process.argv.slice(2),
      ],
      { stdio: 'inherit', env: { ...process.env, [NETNS_ENV]: ns } },
    );
    process.exitCode = r.status ?? 1;
  } finally {
    execFileSync('ip', ['netns', 'delete', ns]);
  }
} else {
  await main();
  // Done: after the browser trials something of Chromium's (playwright's connection) kept the process alive for
  // minutes after the results were printed, and the namespace waited for it.
  process.exit(process.exitCode ?? 0);
}
