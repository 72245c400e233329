/**
 * Recording: room recordings through PlainTransports into ffmpeg, stored in
 * an object store (S3/MinIO, or a local directory by default) under the
 * tenant's retention policy and data-residency rules, catalogued in PostgreSQL
 * (with an analytical copy in ClickHouse).
 *
 * Needs `db`, `sfu`, `tenants`, `clickhouse`, `telemetry`, `webhooks`, `retention`;
 * decorates `recording` ({ service, store, sweeper, catalog }). Control is exposed by the
 * REST API and by signaling; retrieval by the REST API.
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Sweeper } from '../retention/index.js';
import { importWhenReady } from '../store/index.js';
import { RecordingCatalog } from './catalog.js';
import { LocalObjectStore } from './LocalObjectStore.js';
import type { ObjectStore } from './ObjectStore.js';
import { RecordingService } from './RecordingService.js';
import { S3ObjectStore } from './S3ObjectStore.js';

export { Recorder, containerFor } from './Recorder.js';
export { RecordingService, type CatalogRow } from './RecordingService.js';
export { RecordingCatalog, RECORDINGS_MIGRATIONS } from './catalog.js';
export { ObjectLockedError, type ObjectStore, type StorageLocation } from './ObjectStore.js';
export { LocalObjectStore } from './LocalObjectStore.js';
export { S3ObjectStore } from './S3ObjectStore.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Undefined when telemetry is off: the catalog is written through its writer. */
    recording?: { service: RecordingService; store: ObjectStore; sweeper: Sweeper; catalog: RecordingCatalog };
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const { config } = app;
    const telemetry = app.telemetry;
    if (!telemetry) {
      app.log.warn(
        'recording unavailable: VIGIE_TELEMETRY=false (the recording catalog is written through the telemetry writer)',
      );
      return;
    }
    const s = config.storage;
    const location = { country: s.country, region: s.region, provider: s.provider };
    const store: ObjectStore =
      s.driver === 's3'
        ? new S3ObjectStore(
            {
              endpoint: s.s3Endpoint!,
              accessKey: s.s3AccessKey!,
              secretKey: s.s3SecretKey!,
              bucket: s.s3Bucket,
              region: s.s3Region,
              sse: s.sse,
              kmsKeyId: s.kmsKeyId,
            },
            location,
          )
        : new LocalObjectStore(path.join(config.dataDir, 'objects'), location);
    const log = app.log.child({ component: 'recording' });
    await store
      .init()
      .catch((err) => log.error({ err, store: store.name }, 'object store not reachable at start; uploads will retry'));
    const rows = {
      write: (t: string, r: unknown) => telemetry.writer.write(t, r),
      flush: () => telemetry.writer.flush(),
    };
    const webhook = app.webhooks.publish.bind(app.webhooks);
    const catalog = new RecordingCatalog({ db: app.db, copy: rows, log });
    await catalog.migrate();
    // The catalog of the version before is in ClickHouse: imported once, as soon as ClickHouse can be read.
    await importWhenReady(app.clickhouse, 'the recordings catalog', log, () =>
      catalog.importFromClickHouse(app.clickhouse),
    );
    const service = new RecordingService({
      sfu: app.sfu,
      store,
      tenants: app.tenants,
      policies: () => app.retention.policies(),
      catalog,
      pseudonym: (peer) => telemetry.keys.participant(peer),
      event: (room, peer, event, id, reason, attrs) => telemetry.events.record(room, peer, event, id, reason, attrs),
      webhook,
      dataDir: config.dataDir,
      segmentSeconds: config.recording.segmentSeconds,
      log,
    });
    await service.resumePending();
    // Rooms whose policy is "always" start recording with their call.
    app.sfu.observer.on('newroom', (room) => {
      if (room.options.recordingPolicy !== 'always') return;
      room.observer.once(
        'newpeer',
        () =>
          void service
            .start(room, 'policy:always')
            .catch((err) => log.error({ err, room: room.id }, 'automatic recording refused')),
      );
    });
    const sweeper = new Sweeper({
      catalog,
      store,
      rows,
      webhook,
      log: app.log.child({ component: 'retention-sweeper' }),
    });
    sweeper.start(config.retention.sweepIntervalSeconds, await app.nodes.singleton('retention-sweeper'));
    app.decorate('recording', { service, store, sweeper, catalog });
    app.addHook('preClose', async () => {
      sweeper.stop();
      await service.close();
    });
  },
  {
    name: 'vigie-recording',
    dependencies: [
      'vigie-store',
      'vigie-core',
      'vigie-clickhouse',
      'vigie-telemetry',
      'vigie-webhooks',
      'vigie-retention',
      'vigie-nodes',
    ],
  },
);
