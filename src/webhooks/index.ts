/**
 * Webhooks: signed, retried, durable deliveries of call lifecycle and quality
 * events to each tenant's endpoints.
 *
 * Needs `config`, `db`, `sfu`, `tenants` and (optionally) `telemetry`;
 * decorates `webhooks`. Pending deliveries are in the PostgreSQL outbox every
 * node shares (table `webhook_outbox`, owner `webhooks`, src/webhooks/schema.ts).
 * Events come from the media plane's observers and from the telemetry quality
 * monitor; recording and retention publish theirs through
 * `app.webhooks.publish`.
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { migrateStore } from '../store/index.js';
import { watchMediaPlane } from '../telemetry/watchMediaPlane.js';
import { DeliveryQueue } from './DeliveryQueue.js';
import { STORE_MIGRATIONS } from './schema.js';
import { WebhookDispatcher } from './WebhookDispatcher.js';

export { WebhookDispatcher, WEBHOOK_EVENTS, type WebhookEvent } from './WebhookDispatcher.js';
export { signatureHeader } from './signing.js';
export { assertPublicTarget, isPrivateAddress } from './ssrf.js';

declare module 'fastify' {
  interface FastifyInstance {
    webhooks: WebhookDispatcher;
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const log = app.log.child({ component: 'webhooks' });
    await migrateStore(app.db, 'webhooks', STORE_MIGRATIONS, log);
    const queue = new DeliveryQueue(app.db, app.config.node.id, log);
    // The fsynced journal of the versions before the outbox: its pending deliveries move in, keeping their ids.
    await queue.releaseStale();
    await queue.importJournal(path.join(app.config.dataDir, 'webhooks', 'deliveries.jsonl'));
    const dispatcher = new WebhookDispatcher(queue, app.tenants, app.config.webhooks, app.telemetry?.writer, log);
    const publish = dispatcher.publish.bind(dispatcher);
    const unwatch = watchMediaPlane(app.sfu, {
      roomCreated: (room) => publish(room.tenant, 'room.started', { room: room.id, callId: room.callId }),
      roomClosed: (room, reason) =>
        publish(room.tenant, 'room.ended', {
          room: room.id,
          callId: room.callId,
          reason,
          durationMs: Date.now() - room.createdAt,
        }),
      peerJoined: (room, peer) =>
        publish(room.tenant, 'participant.joined', {
          room: room.id,
          callId: room.callId,
          participantId: peer.id,
          identity: peer.identity,
          name: peer.displayName,
        }),
      peerLeft: (room, peer, reason) =>
        publish(room.tenant, 'participant.left', {
          room: room.id,
          callId: room.callId,
          participantId: peer.id,
          identity: peer.identity,
          reason,
        }),
      producerCreated: (room, peer, producer) => {
        const track = {
          room: room.id,
          callId: room.callId,
          participantId: peer.id,
          trackId: producer.id,
          kind: producer.kind,
          source: producer.appData.source ?? null,
        };
        publish(room.tenant, 'track.published', track);
        producer.observer.once('close', () => publish(room.tenant, 'track.unpublished', track));
      },
    });
    app.telemetry?.quality.observer.on('alert', (a) =>
      publish(a.room.tenant, 'quality.alert', {
        room: a.room.id,
        callId: a.room.callId,
        participantId: a.peer.id,
        identity: a.peer.identity,
        trackId: a.trackId,
        direction: a.direction,
        mos: Number(a.mos.toFixed(2)),
        belowForSeconds: Math.round(a.belowForSeconds),
        threshold: a.threshold,
      }),
    );
    app.diagnosis.observer.on('issue', (i) =>
      publish(i.room.tenant, 'quality.issue', {
        room: i.room.id,
        callId: i.room.callId,
        issueId: i.id,
        issue: i.kind,
        direction: i.direction,
        participantId: i.peer?.id ?? null,
        identity: i.peer?.identity ?? null,
        trackId: i.trackId || null,
        worker: i.worker ?? null,
        kind: i.mediaKind,
        startedAt: new Date(i.startedAt).toISOString(),
        affectedParticipantIds: i.affected.map((p) => p.id),
        evidence: i.evidence,
      }),
    );
    await dispatcher.start(app.db);
    app.decorate('webhooks', dispatcher);
    app.addHook('onClose', async () => {
      unwatch();
      await dispatcher.close();
    });
  },
  { name: 'vigie-webhooks', dependencies: ['vigie-store', 'vigie-core', 'vigie-diagnosis'] },
);
