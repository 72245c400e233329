import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Config } from '../config/index.js';

export type { ClickHouseClient } from '@clickhouse/client';

/**
 * A ClickHouse string literal, for the few places SQL must be built from text (DDL, SETTINGS); values go in
 * query_params.
 */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The one way to reach ClickHouse: `@clickhouse/client`, over HTTP to a
 * clickhouse-server when CLICKHOUSE_URL is set, otherwise to the ClickHouse
 * engine embedded by chdb (in-process, non-blocking, data in DATA_DIR).
 * Everything above this sees the same client either way.
 *
 * One difference to keep in mind: the embedded connection applies
 * `clickhouse_settings` as session-wide `SET` statements, so they outlive the
 * query. Settings that change what a query means or how it is formatted go in
 * the query's own SETTINGS clause (see compliance/exports.ts).
 */
export async function createClickHouseClient(
  config: Pick<Config, 'clickhouse' | 'dataDir'>,
): Promise<ClickHouseClient> {
  const ch = config.clickhouse;
  if (ch.url) {
    return createClient({
      url: ch.url,
      username: ch.user,
      password: ch.password ?? '',
      request_timeout: ch.requestTimeoutMs,
      // Retries are the writer's job (with its spool); the client must fail fast.
      keep_alive: { enabled: true },
      // Failures are logged once, structured, by whoever handles them (the writer, migrations).
      log: { level: ClickHouseLogLevel.OFF },
      compression: { request: false, response: true },
    });
  }
  // Loaded only when used: the engine is a ~500 MB library a server talking HTTP has no use for.
  const { createChdbConnection } = await import('chdb/connection');
  const dir = path.join(config.dataDir, 'clickhouse');
  mkdirSync(dir, { recursive: true });
  // chdb types its connection against its own copy of @clickhouse/client-common;
  // the runtime contract is the one @clickhouse/client expects.
  const connection = createChdbConnection({ path: dir }) as unknown as NonNullable<
    Parameters<typeof createClient>[0]
  >['connection'];
  return createClient({ connection });
}
