/**
 * Requests per second and p99 latency of token minting and room listing, as
 * ratios to a bare fastify route served by the same process in the same run.
 * autocannon runs in a child process so it does not share the event loop.
 * After a short warm-up of each target, every round measures the three targets,
 * rotating which goes first, so that the baseline is measured as often as the
 * routes and a drift of the machine's load moves all three.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import { ACME_KEY, ROOMS_ONLY_KEY, startGateway } from '../test/helpers/gateway.js';
import { median, ratioInterval, rotated } from './common.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARM_UP_S = 2;
const CONNECTIONS = 20;

const gw = await startGateway({ api: { ratePerMinute: 100_000_000 }, telemetry: { enabled: false } });
for (let i = 0; i < 20; i++) await gw.app.rooms.declare('acme', `room-${i}`, { maxParticipants: 10 });
const bare = Fastify({ logger: false });
bare.get('/bare', async () => ({ status: 'ok' }));
await bare.listen({ host: '127.0.0.1', port: 0 });
const barePort = (bare.server.address() as { port: number }).port;

// Asynchronous on purpose: the servers under test live in this process's event loop.
async function autocannon(url: string, seconds: number, extra: string[] = []): Promise<{ rps: number; p99: number }> {
  const { stdout } = await promisify(execFile)(
    'npx',
    ['--no-install', 'autocannon', '--json', '-c', String(CONNECTIONS), '-d', String(seconds), ...extra, url],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const r = JSON.parse(stdout);
  if (r.non2xx > 0 || r.errors > 0)
    throw new Error(`${url}: ${r.non2xx} non-2xx (${JSON.stringify(r.statusCodeStats)}), ${r.errors} errors`);
  return { rps: Math.round(r.requests.average), p99: r.latency.p99 };
}

const body = JSON.stringify({ room: 'bench', identity: 'user-1', grants: ['publish', 'subscribe'], ttlSeconds: 600 });
const targets = {
  bareRoute: (d: number) => autocannon(`http://127.0.0.1:${barePort}/bare`, d),
  mintToken: (d: number) =>
    autocannon(`${gw.url}/v1/tokens`, d, [
      '-m',
      'POST',
      '-H',
      `x-api-key=${ACME_KEY.key}`,
      '-H',
      'content-type=application/json',
      '-b',
      body,
    ]),
  listRooms: (d: number) => autocannon(`${gw.url}/v1/rooms`, d, ['-H', `x-api-key=${ROOMS_ONLY_KEY.key}`]),
};
type Target = keyof typeof targets;
const names = Object.keys(targets) as Target[];
const results = Object.fromEntries(names.map((t) => [t, [] as Array<{ rps: number; p99: number }>])) as Record<
  Target,
  Array<{ rps: number; p99: number }>
>;
try {
  for (const t of names) await targets[t](WARM_UP_S); // warm-up, not counted
  for (let i = 0; i < ROUNDS; i++)
    for (const t of rotated(names, i)) {
      results[t].push(await targets[t](DURATION_S));
      console.error(`[api-throughput] round ${i + 1} ${t.padEnd(9)} ${JSON.stringify(results[t].at(-1))}`);
    }
} finally {
  await bare.close();
  await gw.close();
}
const rps = (t: Target) => results[t].map((r) => r.rps);
const p99 = (t: Target) => results[t].map((r) => r.p99);
// Medians over the rounds; each ratio is the ratio of the medians, with a paired bootstrap interval over the rounds.
const summary = (t: Target) => ({
  rps: Math.round(median(rps(t))),
  p99: median(p99(t)),
  ...(t === 'bareRoute'
    ? {}
    : {
        rpsRatio: Number((median(rps(t)) / median(rps('bareRoute'))).toFixed(3)),
        rpsRatioCi95: ratioInterval(rps(t), rps('bareRoute')),
        p99Ratio: Number((median(p99(t)) / Math.max(1, median(p99('bareRoute')))).toFixed(2)),
      }),
});
console.log(
  JSON.stringify({
    bench: 'api-throughput',
    connections: CONNECTIONS,
    durationS: DURATION_S,
    rounds: ROUNDS,
    bareRoute: summary('bareRoute'),
    mintToken: summary('mintToken'),
    listRooms: summary('listRooms'),
  }),
);
