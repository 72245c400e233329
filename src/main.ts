/**
 * `npm start`: runs the gateway with embedded defaults and prints how to join
 * the demo room. Configuration errors are printed in full and exit 78 (EX_CONFIG).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { buildApp } from './app.js';
import { generateApiKey } from './auth/index.js';
import { ConfigError, loadConfig, type Config } from './config/index.js';
import { startOpenTelemetry } from './telemetry/index.js';

/**
 * With no tenants configured, a "demo" tenant is created once, with an API key
 * whose hash is kept in the data directory. The clear key is shown only then.
 */
function ensureDemoTenant(config: Config): void {
  if (config.tenants.length > 0) return;
  const file = path.join(config.dataDir, 'demo-tenant.json');
  if (!existsSync(file)) {
    const { id, key, hash } = generateApiKey();
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(file, JSON.stringify({ id: 'demo', name: 'Demo tenant', embedOrigins: [], apiKeys: [{ id, hash, scopes: ['admin'] }] }, null, 2), { mode: 0o600 });
    // Printed at once: only the hash is kept, so a failed start must not lose it.
    console.log(`Demo API key for tenant "demo" (shown once; only its hash is stored in ${file}): ${key}`);
  }
  config.tenants.push(JSON.parse(readFileSync(file, 'utf8')));
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(78);
    }
    throw err;
  }
  ensureDemoTenant(config);
  // Before the app: the tracer and meter providers must be registered first.
  const otel = await startOpenTelemetry();
  const app = await buildApp(config);
  await app.listen({ host: config.server.host, port: config.server.port });
  // VIGIE_PORT=0 picks a free port: the links handed out must name the one picked.
  if (config.server.port === 0) config.server.publicUrl = config.server.publicUrl.replace(/:0$/, `:${(app.server.address() as AddressInfo).port}`);

  const demoTenant = config.tenants[0]!;
  const { token } = await app.tokens.mint({ tenant: demoTenant.id, room: 'demo', identity: `demo-${Date.now().toString(36)}`, name: 'Demo user', grants: ['publish', 'subscribe'], ttlSeconds: 12 * 3600 });
  const base = config.server.publicUrl;
  console.log(`\nVigie is running at ${base}`);
  console.log(`  Demo join page (valid 12 h): ${base}/join?token=${token}`);
  console.log(`  Demo token: ${token}`);
  console.log(`  Mint more:  curl -X POST ${base}/v1/tokens -H 'x-api-key: <key>' -H 'content-type: application/json' -d '{"room":"demo","identity":"alice"}'`);
  console.log('');

  const shutdown = async (signal: string) => {
    app.log.info({ signal }, 'shutting down');
    // SIGTERM (an orchestrator's stop) lets calls end first, up to VIGIE_DRAIN_DEADLINE_S; Ctrl-C does not wait.
    if (signal === 'SIGTERM') await app.drainSignaling();
    await app.close();
    await otel?.shutdown();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

await main();
