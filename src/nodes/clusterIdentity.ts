/**
 * The nodes of one PostgreSQL must write to one ClickHouse: a node left on the
 * embedded engine, or pointed at another server, would split telemetry and the
 * audit log's analytical copy without anyone noticing. So the cluster has an
 * identity: an id the first node creates and keeps in PostgreSQL
 * (`shared_secrets`, name `cluster.identity`), after writing it into its
 * ClickHouse (table `cluster_identity`, owned here). A node whose ClickHouse
 * does not carry the cluster's id refuses to start (ConfigError, exit 78).
 *
 * The id is written to ClickHouse before it is published in PostgreSQL: a node
 * that reads it from PostgreSQL finds it in the cluster's ClickHouse already,
 * even when two nodes start together on a new cluster (the loser's row names an
 * id nobody uses, and is harmless). With a ClickHouse cluster (CLICKHOUSE_CLUSTER)
 * the table is replicated, so every replica carries the id.
 *
 * When a remote ClickHouse is down at start the check waits for it (the node
 * starts, as it does without ClickHouse), and a mismatch found then is logged
 * as an error, since the node is serving calls by then.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type ClickHouseClient, schemaContext } from '../clickhouse/index.js';
import { type Config, ConfigError } from '../config/index.js';
import type { Logger } from '../logging.js';
import { type Database, sharedValue } from '../store/index.js';

/** What PostgreSQL records about the cluster. */
export interface ClusterIdentity {
  id: string;
  /** The ClickHouse of the node that created the cluster's id, as `clickhouseEndpoint` names it. */
  clickhouse: string;
}

/** How a node reaches ClickHouse, for operators: the server's URL without credentials, or the embedded engine's dir. */
export function clickhouseEndpoint(config: Config): string {
  if (!config.clickhouse.url) return `embedded engine in ${path.join(config.dataDir, 'clickhouse')}`;
  const u = new URL(config.clickhouse.url);
  return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
}

export interface ClusterCheckOptions {
  db: Database;
  client: ClickHouseClient;
  database: string;
  /** CLICKHOUSE_CLUSTER: the table is created on every replica. */
  cluster?: string;
  endpoint: string;
  nodeId: string;
}

/** Returns the cluster's identity, or throws ConfigError when this node's ClickHouse is not the cluster's. */
export async function checkClusterIdentity(o: ClusterCheckOptions): Promise<ClusterIdentity> {
  const ctx = schemaContext(o.database, o.cluster);
  await o.client.command({
    query: `CREATE TABLE IF NOT EXISTS ${ctx.db}.cluster_identity${ctx.onCluster} (
      cluster_id String,
      node_id String COMMENT 'the node that wrote the row: which nodes write to this ClickHouse',
      clickhouse String COMMENT 'how that node named this ClickHouse',
      written_at DateTime64(3, 'UTC')
    ) ENGINE = ${ctx.engine('ReplacingMergeTree', 'written_at')} ORDER BY (cluster_id, node_id)`,
  });
  const record = (id: string) =>
    o.client.insert({
      table: `${ctx.db}.cluster_identity`,
      values: [{ cluster_id: id, node_id: o.nodeId, clickhouse: o.endpoint, written_at: Date.now() }],
      format: 'JSONEachRow',
    });
  const value = await sharedValue(o.db, 'cluster.identity', async () => {
    const id = randomUUID();
    await record(id);
    return JSON.stringify({ id, clickhouse: o.endpoint } satisfies ClusterIdentity);
  });
  const identity = JSON.parse(value) as ClusterIdentity;
  const rs = await o.client.query({
    query: `SELECT DISTINCT cluster_id FROM ${ctx.db}.cluster_identity ORDER BY cluster_id`,
    format: 'JSONEachRow',
  });
  const carried = (await rs.json<{ cluster_id: string }>()).map((r) => r.cluster_id);
  if (!carried.includes(identity.id))
    throw new ConfigError([
      `CLICKHOUSE_URL: this node's ClickHouse (${o.endpoint}) is not the cluster's. The nodes on this PostgreSQL ` +
        `are cluster ${identity.id}, whose ClickHouse is ${identity.clickhouse}; this node's ClickHouse carries ` +
        `${carried.length ? `cluster id ${carried.join(', ')}` : 'no cluster id'}. Every node of one PostgreSQL ` +
        'must write to one ClickHouse (set CLICKHOUSE_URL as on the other nodes), or telemetry and audit copies ' +
        "split. If this ClickHouse replaced the cluster's on purpose, record the cluster there: INSERT INTO " +
        `${ctx.db}.cluster_identity (cluster_id, node_id, clickhouse, written_at) ` +
        `VALUES ('${identity.id}', 'operator', '', now64(3))`,
    ]);
  await record(identity.id);
  return identity;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This node's cluster (undefined until a remote ClickHouse that was down at start is reached). */
    clusterIdentity?: ClusterIdentity;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const log: Logger = app.log.child({ component: 'cluster' });
    const check = () =>
      checkClusterIdentity({
        db: app.db,
        client: app.clickhouse.client,
        database: app.clickhouse.database,
        cluster: app.config.clickhouse.cluster,
        endpoint: clickhouseEndpoint(app.config),
        nodeId: app.config.node.id,
      });
    app.decorate('clusterIdentity', undefined);
    if (app.clickhouse.schemaReady) {
      app.clusterIdentity = await check();
      log.info({ cluster: app.clusterIdentity.id }, "this node writes to the cluster's ClickHouse");
      return;
    }
    log.warn("ClickHouse is unreachable: whether it is the cluster's is checked once it answers");
    app.clickhouse.observer.once('ready', () => {
      check().then(
        (identity) => {
          app.clusterIdentity = identity;
          log.info({ cluster: identity.id }, "this node writes to the cluster's ClickHouse");
        },
        (err) => log.error({ err }, "this node's ClickHouse is not the cluster's: fix CLICKHOUSE_URL and restart it"),
      );
    });
  },
  { name: 'vigie-cluster-identity', dependencies: ['vigie-store', 'vigie-clickhouse'] },
);
