import { afterAll, beforeAll } from 'vitest';
import { launchBrowser } from './browser.js';
import { startGateway, type TestGateway } from './gateway.js';

export interface TelemetrySuite {
  gw: TestGateway;
  browser: Awaited<ReturnType<typeof launchBrowser>>;
}

/**
 * For a file whose tests read a call's telemetry: a gateway that samples stats and client stats every second and
 * flushes rows within 200 ms, and a Chromium. Both start before the file's tests and close after them; read the
 * fields inside a test.
 */
export function telemetrySuite(): TelemetrySuite {
  const suite = {} as TelemetrySuite;
  beforeAll(async () => {
    suite.gw = await startGateway({
      telemetry: { statsIntervalMs: 1000, clientStatsIntervalMs: 1000 },
      writer: { flushIntervalMs: 200 },
    });
    suite.browser = await launchBrowser();
  });
  afterAll(async () => {
    await suite.browser?.close();
    await suite.gw?.close();
  });
  return suite;
}
