/**
 * Requests per second and p99 latency of token minting and room listing, as
 * ratios to a bare fastify route served by the same process in the same run.
 * autocannon runs in a child process so it does not share the event loop.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import { ACME_KEY, ROOMS_ONLY_KEY, startGateway } from '../test/helpers/gateway.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const CONNECTIONS = 20;

const gw = await startGateway({ api: { ratePerMinute: 100_000_000 }, telemetry: { enabled: false } });
for (let i = 0; i < 20; i++) await gw.app.rooms.declare('acme', `room-${i}`, { maxParticipants: 10 });
const bare = Fastify({ logger: false });
bare.get('/bare', async () => ({ status: 'ok' }));
await bare.listen({ host: '127.0.0.1', port: 0 });
const barePort = (bare.server.address() as { port: number }).port;

// Asynchronous on purpose: the servers under test live in this process's event loop.
async function autocannon(url: string, extra: string[] = []): Promise<{ rps: number; p99: number }> {
  const { stdout } = await promisify(execFile)(
    'npx',
    ['--no-install', 'autocannon', '--json', '-c', String(CONNECTIONS), '-d', String(DURATION_S), ...extra, url],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const r = JSON.parse(stdout);
  if (r.non2xx > 0 || r.errors > 0)
    throw new Error(`${url}: ${r.non2xx} non-2xx (${JSON.stringify(r.statusCodeStats)}), ${r.errors} errors`);
  return { rps: Math.round(r.requests.average), p99: r.latency.p99 };
}

const body = JSON.stringify({ room: 'bench', identity: 'user-1', grants: ['publish', 'subscribe'], ttlSeconds: 600 });
const baseline = await autocannon(`http://127.0.0.1:${barePort}/bare`);
const mint = await autocannon(`${gw.url}/v1/tokens`, [
  '-m',
  'POST',
  '-H',
  `x-api-key=${ACME_KEY.key}`,
  '-H',
  'content-type=application/json',
  '-b',
  body,
]);
const list = await autocannon(`${gw.url}/v1/rooms`, ['-H', `x-api-key=${ROOMS_ONLY_KEY.key}`]);
await bare.close();
await gw.close();
console.log(
  JSON.stringify({
    bench: 'api-throughput',
    connections: CONNECTIONS,
    durationS: DURATION_S,
    bareRoute: baseline,
    mintToken: {
      ...mint,
      rpsRatio: Number((mint.rps / baseline.rps).toFixed(3)),
      p99Ratio: Number((mint.p99 / Math.max(1, baseline.p99)).toFixed(2)),
    },
    listRooms: {
      ...list,
      rpsRatio: Number((list.rps / baseline.rps).toFixed(3)),
      p99Ratio: Number((list.p99 / Math.max(1, baseline.p99)).toFixed(2)),
    },
  }),
);
