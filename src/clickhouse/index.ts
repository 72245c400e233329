/**
 * ClickHouse: the one client every capability uses, and the schema migrations.
 *
 * Decorates `clickhouse` ({ client, database, schemaReady }). Migrations run at
 * start. When a remote server is unreachable the gateway still starts (media
 * must not depend on analytics), keeps retrying, and the writer spools rows
 * meanwhile; with the embedded engine a failed migration stops the start.
 */
import { EventEmitter } from 'node:events';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { createClickHouseClient, type ClickHouseClient } from './client.js';
import { migrate } from './migrations.js';

export { createClickHouseClient, sqlString, type ClickHouseClient } from './client.js';
export { migrate, MIGRATIONS, schemaContext } from './migrations.js';

export interface ClickHouseHandle {
  client: ClickHouseClient;
  database: string;
  /** True once every migration is applied. */
  readonly schemaReady: boolean;
  /** `ready` when the schema becomes ready after the start (a remote server that was down). */
  readonly observer: EventEmitter<{ ready: [] }>;
}

declare module 'fastify' {
  interface FastifyInstance {
    clickhouse: ClickHouseHandle;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const { clickhouse: cfg } = app.config;
    const client = await createClickHouseClient(app.config);
    const log = app.log.child({ component: 'clickhouse' });
    let schemaReady = false;
    let closed = false;
    const observer = new EventEmitter<{ ready: [] }>();
    const attempt = async (n: number): Promise<void> => {
      try {
        await migrate(client, { database: cfg.database, cluster: cfg.cluster, log });
        schemaReady = true;
        if (n > 0) observer.emit('ready');
      } catch (err) {
        // The embedded engine cannot be "down": a failure there is a schema bug, and must stop the start.
        if (!cfg.url) throw err;
        if (closed) return;
        const delay = Math.min(30_000, 500 * 2 ** n);
        log.error(
          { reason: (err as Error).message, retryInMs: delay },
          'ClickHouse migrations failed; retrying (telemetry is spooled meanwhile)',
        );
        setTimeout(() => void attempt(n + 1), delay).unref();
      }
    };
    await attempt(0);
    app.decorate('clickhouse', {
      client,
      database: cfg.database,
      get schemaReady() {
        return schemaReady;
      },
      observer,
    });
    app.addHook('onClose', async () => {
      closed = true;
      await client.close();
    });
  },
  { name: 'vigie-clickhouse', dependencies: ['vigie-core'] },
);
