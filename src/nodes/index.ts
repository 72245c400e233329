/**
 * Nodes: the registry of the gateways that share one PostgreSQL (their public
 * URL, region, liveness and load, for placement and for operators), and the
 * singletons, jobs that run on one node at a time under an advisory lock.
 *
 * Decorates `nodes` ({ registry, singleton(name) }). Owns the `nodes` table.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { migrateStore } from '../store/index.js';
import { sfuLoad } from './load.js';
import { NodeRegistry } from './NodeRegistry.js';
import { STORE_MIGRATIONS } from './schema.js';
import { Singleton } from './Singleton.js';

export { isNodeLive, NodeRegistry, type NodeInfo, type NodeRegistryOptions } from './NodeRegistry.js';
export { Singleton, type SingletonObserverEvents } from './Singleton.js';
export { sfuLoad, type NodeLoad } from './load.js';
export { decideJoin, lessLoaded, signalingUrlOf, type JoinDecision, type JoinSituation } from './placement.js';
export { STORE_MIGRATIONS } from './schema.js';

export interface Nodes {
  registry: NodeRegistry;
  /**
   * The singleton `name` of this node (one instance per name), started: it
   * holds `vigie:<name>` when it resolves if no other node does, and keeps
   * trying otherwise. Released when the gateway closes.
   */
  singleton(name: string): Promise<Singleton>;
}

declare module 'fastify' {
  interface FastifyInstance {
    nodes: Nodes;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const { config } = app;
    const log = app.log.child({ component: 'nodes' });
    await migrateStore(app.db, 'nodes', STORE_MIGRATIONS, log);
    const registry = new NodeRegistry(
      app.db,
      {
        id: config.node.id,
        region: config.node.region,
        publicUrl: () => config.server.publicUrl,
        heartbeatSeconds: config.nodes.heartbeatSeconds,
        deadAfterSeconds: config.nodes.deadAfterSeconds,
        retrySeconds: config.nodes.singletonRetrySeconds,
        load: sfuLoad(app.sfu),
        draining: () => app.signalingDraining?.() ?? false,
      },
      log,
    );
    await registry.start();
    const singletons = new Map<string, Promise<Singleton>>();
    const singleton = (name: string) => {
      let s = singletons.get(name);
      if (!s) {
        const created = new Singleton(app.db, name, { retrySeconds: config.nodes.singletonRetrySeconds, log });
        s = created.start().then(() => created);
        singletons.set(name, s);
      }
      return s;
    };
    app.decorate('nodes', { registry, singleton });
    // Registered after the store: runs before it closes. Singletons are released first, so another node
    // takes their jobs over at its next attempt rather than after this node's connection times out.
    app.addHook('onClose', async () => {
      await Promise.all([...singletons.values()].map(async (s) => (await s).stop()));
      await registry.stop();
    });
  },
  { name: 'vigie-nodes', dependencies: ['vigie-store', 'vigie-core'] },
);
