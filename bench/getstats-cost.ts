/**
 * What one `getStats()` costs the gateway's Node process, the floor under any telemetry that samples every track:
 * one video producer (ffmpeg) and five subscribers on PlainTransports, then thousands of `consumer.getStats()` calls,
 * `BENCH_IN_FLIGHT` at a time (1, 4, 16, 64, 256 by default), and the same for `worker.getResourceUsage()`, the
 * smallest request there is (what the channel alone costs). Measured: `process.cpuUsage` per call.
 */
import { startGateway } from '../test/helpers/gateway.js';
import { startFfmpegBot } from '../test/helpers/ffmpegBot.js';
import { startPlainSubscriber } from '../test/helpers/plainSubscriber.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 3000);
const IN_FLIGHT = (process.env.BENCH_IN_FLIGHT ?? '1,4,16,64,256').split(',').map(Number);

const gw = await startGateway({ telemetry: { enabled: false } });
try {
  const room = await gw.app.sfu.getOrCreateRoom('acme', 'getstats');
  const bot = await startFfmpegBot(room, { kind: 'video', bitrateKbps: 500 });
  const subscribers: Array<Awaited<ReturnType<typeof startPlainSubscriber>>> = [];
  for (let i = 0; i < 5; i++) subscribers.push(await startPlainSubscriber(room, bot.producer.id, `s${i}`));
  await new Promise((r) => setTimeout(r, 3000));
  const worker = room.slotOf(room.ownerOf(bot.producer.id)!).worker;

  /** CPU microseconds of this process per call, `inFlight` calls at a time, after a warm-up. */
  async function perCall(fn: (i: number) => Promise<unknown>, inFlight: number): Promise<number> {
    for (let i = 0; i < 200; i++) await fn(i);
    const batches = Math.ceil(CALLS / inFlight);
    const c0 = process.cpuUsage();
    for (let b = 0; b < batches; b++) await Promise.all(Array.from({ length: inFlight }, (_, i) => fn(i)));
    const c = process.cpuUsage(c0);
    return Math.round(((c.user + c.system) / (batches * inFlight)) * 10) / 10;
  }
  const consumerUs: Record<string, number> = {};
  const channelUs: Record<string, number> = {};
  for (const n of IN_FLIGHT) {
    consumerUs[n] = await perCall((i) => subscribers[i % subscribers.length]!.consumer.getStats(), n);
    channelUs[n] = await perCall(() => worker.getResourceUsage(), n);
    console.error(
      `[getstats] ${n} in flight: consumer.getStats ${consumerUs[n]} µs, getResourceUsage ${channelUs[n]} µs`,
    );
  }
  console.log(
    JSON.stringify({
      bench: 'getstats-cost',
      calls: CALLS,
      cpuMicrosecondsPerCall: { 'consumer.getStats': consumerUs, 'worker.getResourceUsage': channelUs },
    }),
  );
  await bot.stop();
  for (const s of subscribers) await s.close();
} finally {
  await gw.close();
}
