/**
 * `npm start`: runs the gateway with embedded defaults and prints how to join
 * the demo room. Configuration errors are printed in full and exit 78 (EX_CONFIG).
 */
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.js';
import { demoLink, prepareDemo } from './demo/index.js';
import { ConfigError, loadConfig, type Config } from './config/index.js';
import { loggerOptions } from './logging.js';
import { startOpenTelemetry } from './telemetry/index.js';

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
  const demo = prepareDemo(config);
  // Printed at once: only the key's hash is kept, so a failed start must not lose it.
  if (demo?.createdApiKey)
    console.log(
      `Demo API key for tenant "demo" (shown once; only its hash is stored in ${demo.tenantFile}): ` +
        `${demo.createdApiKey}`,
    );
  // Before the app: the tracer and meter providers must be registered first.
  const otel = await startOpenTelemetry(process.env, { metrics: config.metrics, logger: loggerOptions(config) });
  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    app = await buildApp(config, { demo });
  } catch (err) {
    // A start refused for its configuration (e.g. a node id another live node has) is EX_CONFIG too.
    if (err instanceof ConfigError) {
      console.error(err.message);
      await otel?.shutdown();
      process.exit(78);
    }
    throw err;
  }
  await app.listen({ host: config.server.host, port: config.server.port });
  // VIGIE_PORT=0 picks a free port: the links handed out must name the one picked.
  if (config.server.port === 0)
    config.server.publicUrl = config.server.publicUrl.replace(/:0$/, `:${(app.server.address() as AddressInfo).port}`);

  const base = config.server.publicUrl;
  console.log(`\nVigie is running at ${base}`);
  if (otel?.metricsUrl) console.log(`  Prometheus metrics (OpenMetrics), on their own listener: ${otel.metricsUrl}`);
  // Credentials are printed for the embedded demo only: never for configured
  // tenants and never in production, where this output ends up in logs.
  if (demo) {
    console.log(
      `  Demo join link (each page that opens it joins the demo room as a new guest): ${demoLink(config, demo)}`,
    );
    console.log(
      `  Mint tokens:  curl -X POST ${base}/v1/tokens -H 'x-api-key: <demo key>' -H 'content-type: ` +
        `application/json' -d '{"room":"demo","identity":"alice"}'`,
    );
  } else if (config.tenants.length === 0) {
    console.log(
      '  No tenant is configured: declare tenants in VIGIE_CONFIG_FILE, or create them with the admin API ' +
        '(VIGIE_ADMIN_KEY_HASH).',
    );
  }
  console.log('');

  const shutdown = async (signal: string) => {
    app.log.info({ signal }, 'shutting down');
    // SIGTERM (an orchestrator's stop) lets calls end first, up to VIGIE_DRAIN_DEADLINE_S; Ctrl-C does not wait.
    // The drain tells the node registry at once, so placement on other nodes stops choosing this one.
    if (signal === 'SIGTERM') await app.drainSignaling();
    await app.close();
    await otel?.shutdown();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

await main();
