import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { VigieError } from '../errors.js';
import { sha256File, writeFileAtomic } from '../files.js';
import type { Logger } from '../logging.js';
import type { Peer, Room, Sfu } from '../media/index.js';
import { policyFor, type RetentionPolicy } from '../retention/policy.js';
import type { TenantRegistry } from '../tenants/index.js';
import type { CallEventName } from '../telemetry/CallEventRecorder.js';
import type { WebhookEvent } from '../webhooks/index.js';
import type { RecordingCatalog } from './catalog.js';
import type { ObjectStore } from './ObjectStore.js';
import { containerFor, Recorder } from './Recorder.js';

/** What the service needs from the rest of the gateway, kept narrow on purpose. */
export interface RecordingDeps {
  sfu: Sfu;
  store: ObjectStore;
  tenants: TenantRegistry;
  policies: () => Map<string, RetentionPolicy>;
  /** The catalog on PostgreSQL (which also writes its analytical copy to ClickHouse). */
  catalog: RecordingCatalog;
  pseudonym: (peer: Peer) => string;
  event: (
    room: Room,
    peer: Peer | undefined,
    event: CallEventName,
    objectId: string,
    reason?: string,
    attrs?: Record<string, string>,
  ) => void;
  webhook: (tenant: string, event: WebhookEvent, data: Record<string, unknown>) => void;
  dataDir: string;
  segmentSeconds: number;
  log: Logger;
}

interface Session {
  id: string;
  room: Room;
  startedAt: number;
  recorders: Map<string, { peer: Peer; recorder: Recorder }>;
  consent: Map<string, boolean>;
  restartTimers: Map<string, NodeJS.Timeout>;
  /** Removes the listeners the session put on its room and participants. */
  detach: () => void;
}

/** A finished file waiting to be uploaded; kept on disk so a restart resumes it. */
interface UploadManifest {
  id: string;
  sessionId: string;
  tenant: string;
  room: string;
  callId: string;
  participants: string[];
  tracks: string[];
  codecs: string[];
  startedAt: number;
  endedAt: number;
  file: string;
  contentType: string;
  attempts: number;
}

export interface CatalogRow {
  id: string;
  session_id: string;
  tenant: string;
  room: string;
  call_id: string;
  participants: string[];
  tracks: string[];
  codecs: string[];
  started_at: number | string;
  ended_at: number | string;
  duration_s: number;
  size_bytes: number;
  sha256: string;
  content_type: string;
  storage_target: string;
  storage_country: string;
  object_key: string;
  version_id: string;
  retain_until: number | string | null;
  lock_mode: string;
  legal_hold: number;
  retention_policy: string;
  /** `deleting`: claimed by a node that is removing the object (PostgreSQL only; never copied to ClickHouse). */
  status: 'uploading' | 'ready' | 'failed' | 'deleting' | 'deleted';
  deleted_at: number | string | null;
  deletion_reason: string;
  updated_at: number | string;
}

export interface RecordingServiceObserverEvents {
  /** A room's recording began here; `relayed` when another node of a room that spans nodes started it. */
  started: [room: Room, recordingId: string, relayed: boolean];
  /** A room's recording stops here (its files are being finished). */
  stopped: [room: Room, recordingId: string, reason: string];
}

export interface StartOptions {
  /** The session id: a room that spans nodes is one recording session, started on each node (src/cascade). */
  recordingId?: string;
  /** Started because another node of the room did: that node sent the `recording.started` webhook. */
  relayed?: boolean;
}

/**
 * Room recordings: one file per participant (audio and video muxed), cut into
 * segments, uploaded to the object store under the tenant's retention policy,
 * and catalogued in PostgreSQL. Local files are removed only once the upload
 * is verified; pending uploads survive a restart.
 */
export class RecordingService {
  readonly observer = new EventEmitter<RecordingServiceObserverEvents>();
  readonly #sessions = new Map<string, Session>();
  readonly #pendingDir: string;
  #uploading = new Set<string>();
  /** Pending recordings an erasure request removed: an upload in progress stops at its next attempt. */
  readonly #discarded = new Set<string>();
  #closed = false;
  /** Recorders being finished from event handlers; close() waits for them. */
  readonly #finishing = new Set<Promise<void>>();

  constructor(private readonly d: RecordingDeps) {
    this.#pendingDir = path.join(d.dataDir, 'recordings');
  }

  /** ffmpeg pids of a room's recorders, by peer id (supervision, tests). */
  recorderPids(room: Room): Map<string, number | undefined> {
    return new Map([...(this.#sessions.get(room.key)?.recorders ?? new Map())].map(([id, e]) => [id, e.recorder.pid]));
  }

  isRecording(room: Room): boolean {
    return this.#sessions.has(room.key);
  }

  /** The id of the room's recording session here, if it is being recorded. */
  recordingId(room: Room): string | undefined {
    return this.#sessions.get(room.key)?.id;
  }

  /** Starts recording a room; refuses when the room or the tenant's residency rules forbid it. */
  async start(room: Room, actor: string, o: StartOptions = {}): Promise<{ recordingId: string }> {
    if (this.#sessions.has(room.key)) throw new VigieError('INVALID_REQUEST', 'the room is already being recorded');
    if (room.options.recordingPolicy === 'off') throw new VigieError('FORBIDDEN', 'recording is off for this room');
    const tenant = this.d.tenants.require(room.tenant);
    const where = this.d.store.location;
    if (!tenant.allowedLocations.includes(where.country)) {
      throw new VigieError(
        'FORBIDDEN',
        `recording refused: storage target ${this.d.store.name} is in ${where.country} (${where.region}, ` +
          `${where.provider}), and tenant ${tenant.id} allows only ${tenant.allowedLocations.join(', ')}`,
      );
    }
    const onProducer = new Map<Peer, () => void>();
    const watchPeer = (peer: Peer) => {
      const restart = () => this.#schedule(session, peer, 1500);
      onProducer.set(peer, restart);
      peer.observer.on('newproducer', restart);
    };
    const onClose = () => void this.stop(room, 'room-closed').catch(() => undefined);
    const detach = () => {
      room.observer.off('newpeer', watchPeer);
      room.observer.off('close', onClose);
      for (const [peer, restart] of onProducer) peer.observer.off('newproducer', restart);
    };
    const session: Session = {
      id: o.recordingId ?? randomUUID(),
      room,
      startedAt: Date.now(),
      recorders: new Map(),
      consent: new Map(),
      restartTimers: new Map(),
      detach,
    };
    this.#sessions.set(room.key, session);
    for (const peer of room.peers.values()) this.#schedule(session, peer, 0);
    room.observer.on('newpeer', watchPeer);
    for (const peer of room.peers.values()) watchPeer(peer);
    room.observer.once('close', onClose);
    room.broadcast('recordingStarted', { recordingId: session.id, consentRequired: room.options.consentRequired });
    this.d.event(room, undefined, 'recording.started', session.id, '', { actor });
    if (!o.relayed)
      this.d.webhook(room.tenant, 'recording.started', { room: room.id, callId: room.callId, recordingId: session.id });
    this.d.log.info({ tenant: room.tenant, room: room.id, recordingId: session.id, actor }, 'recording started');
    this.observer.emit('started', room, session.id, o.relayed ?? false);
    return { recordingId: session.id };
  }

  async stop(room: Room, reason: string): Promise<{ recordingId: string; files: number }> {
    const session = this.#sessions.get(room.key);
    if (!session) throw new VigieError('INVALID_REQUEST', 'the room is not being recorded');
    this.#sessions.delete(room.key);
    session.detach();
    // Before the files are finished: the other nodes of a room that spans nodes stop theirs at the same time.
    this.observer.emit('stopped', room, session.id, reason);
    for (const t of session.restartTimers.values()) clearTimeout(t);
    let files = 0;
    for (const [peerId] of session.recorders) files += await this.#finishPeer(session, peerId);
    if (!room.closed) room.broadcast('recordingStopped', { recordingId: session.id, reason });
    this.d.event(room, undefined, 'recording.stopped', session.id, reason, { files: String(files) });
    this.d.log.info(
      { tenant: room.tenant, room: room.id, recordingId: session.id, reason, files },
      'recording stopped',
    );
    return { recordingId: session.id, files };
  }

  /** A participant's answer when the room requires consent; recorded as an event either way. */
  consent(room: Room, peer: Peer, given: boolean): void {
    this.d.event(room, peer, given ? 'recording.consent_given' : 'recording.consent_refused', peer.id);
    const session = this.#sessions.get(room.key);
    if (!session) return;
    session.consent.set(peer.id, given);
    if (given) this.#schedule(session, peer, 0);
    else if (session.recorders.has(peer.id)) void this.#finishPeer(session, peer.id);
  }

  /** Starts, or restarts with its current tracks, the recorder of one participant. */
  #schedule(session: Session, peer: Peer, delayMs: number): void {
    // A participant of another node, in a room that spans nodes: its own node records it.
    if (peer.remote) return;
    if (session.room.options.consentRequired && session.consent.get(peer.id) !== true) return;
    clearTimeout(session.restartTimers.get(peer.id));
    session.restartTimers.set(
      peer.id,
      setTimeout(
        () =>
          void this.#startPeer(session, peer).catch((err) =>
            this.d.log.error({ err, peerId: peer.id }, 'could not start a recorder'),
          ),
        delayMs,
      ),
    );
  }

  async #startPeer(session: Session, peer: Peer): Promise<void> {
    if (this.#sessions.get(session.room.key) !== session || peer.closed) return;
    const producers = [...peer.producers.values()].filter((p) => !p.closed);
    if (producers.length === 0) return;
    if (session.recorders.has(peer.id)) await this.#finishPeer(session, peer.id);
    const dir = path.join(this.#pendingDir, 'active', randomUUID());
    // Where the participant's tracks are: a room may span several routers.
    const recorder = new Recorder(
      session.room.routerOf(peer),
      producers,
      dir,
      this.d.segmentSeconds,
      this.d.log.child({ component: 'recorder', peerId: peer.id }),
    );
    recorder.observer.once('crashed', (code, signal) => {
      this.d.event(session.room, peer, 'recording.failed', session.id, 'ffmpeg-exited', {
        code: String(code),
        signal: String(signal),
      });
      this.d.webhook(session.room.tenant, 'recording.failed', {
        room: session.room.id,
        callId: session.room.callId,
        recordingId: session.id,
        participantId: peer.id,
        reason: `ffmpeg exited (code ${code}, signal ${signal})`,
      });
      this.#finishInBackground(session, peer.id);
    });
    session.recorders.set(peer.id, { peer, recorder });
    await recorder.start();
    peer.observer.once('close', () => {
      if (session.recorders.get(peer.id)?.recorder === recorder) this.#finishInBackground(session, peer.id);
    });
  }

  /**
   * Finishes a participant's recorder from an event handler (the participant left, ffmpeg crashed): tracked, so
   * close() waits for it, and a failure is logged rather than left as an unhandled rejection.
   */
  #finishInBackground(session: Session, peerId: string): void {
    const done = this.#finishPeer(session, peerId)
      .then(() => undefined)
      .catch((err) => this.d.log.error({ err, recordingId: session.id, peerId }, 'could not finish a recorder'))
      .finally(() => this.#finishing.delete(done));
    this.#finishing.add(done);
  }

  /** Stops one participant's recorder and queues its files for upload. Returns how many. */
  async #finishPeer(session: Session, peerId: string): Promise<number> {
    const entry = session.recorders.get(peerId);
    if (!entry) return 0;
    session.recorders.delete(peerId);
    const files = await entry.recorder.stop();
    const { from: startedAt, to: endedAt } = entry.recorder.span;
    const { contentType } = containerFor(entry.recorder.codecs);
    let queued = 0;
    for (const file of files) {
      if ((await stat(file)).size === 0) continue;
      const manifest: UploadManifest = {
        id: randomUUID(),
        sessionId: session.id,
        tenant: session.room.tenant,
        room: session.room.id,
        callId: session.room.callId,
        participants: [this.d.pseudonym(entry.peer)],
        tracks: [...entry.peer.producers.keys()],
        codecs: entry.recorder.codecs,
        startedAt,
        endedAt,
        file,
        contentType,
        attempts: 0,
      };
      await this.#saveManifest(manifest);
      queued++;
      void this.#upload(manifest);
    }
    return queued;
  }

  async #saveManifest(m: UploadManifest): Promise<void> {
    await mkdir(path.join(this.#pendingDir, 'pending'), { recursive: true });
    const file = path.join(this.#pendingDir, 'pending', `${m.id}.json`);
    await writeFileAtomic(file, JSON.stringify(m));
  }

  /** Uploads recordings left pending by an earlier run. */
  async resumePending(): Promise<number> {
    let n = 0;
    for (const f of await readdir(path.join(this.#pendingDir, 'pending')).catch(() => [] as string[])) {
      if (!f.endsWith('.json')) continue;
      const m = JSON.parse(await readFile(path.join(this.#pendingDir, 'pending', f), 'utf8')) as UploadManifest;
      n++;
      void this.#upload(m);
    }
    if (n) this.d.log.info({ recordings: n }, 'resuming recording uploads left pending');
    return n;
  }

  /**
   * Erasure: the tenant's recordings of `pseudonym` that are still waiting for
   * upload are deleted here and never uploaded. Returns their ids.
   */
  async discardPending(tenant: string, pseudonym: string): Promise<string[]> {
    const dir = path.join(this.#pendingDir, 'pending');
    const ids: string[] = [];
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      if (!f.endsWith('.json')) continue;
      const m = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as UploadManifest;
      if (m.tenant !== tenant || !m.participants.includes(pseudonym)) continue;
      this.#discarded.add(m.id);
      await rm(m.file, { force: true });
      await rm(path.join(dir, f), { force: true });
      ids.push(m.id);
    }
    if (ids.length)
      this.d.log.info({ tenant, recordings: ids.length }, 'pending recordings discarded by an erasure request');
    return ids;
  }

  /**
   * Uploads one file, then verifies it (size and SHA-256 read back from the
   * store) before the local copy is deleted. Retries forever with backoff:
   * a recording is never dropped because the store is down.
   */
  async #upload(m: UploadManifest): Promise<void> {
    if (this.#uploading.has(m.id)) return;
    this.#uploading.add(m.id);
    try {
      const size = (await stat(m.file)).size;
      const sha256 = await sha256File(m.file);
      const tenant = this.d.tenants.get(m.tenant);
      const policy = policyFor(this.d.policies(), m.tenant, tenant?.retentionPolicy);
      const rule = policy.categories.recordings;
      const day = new Date(m.startedAt);
      const ext = path.extname(m.file);
      // Every path segment is ours: tenant ids are validated, the rest are dates and UUIDs.
      const two = (n: number) => String(n).padStart(2, '0');
      const date = `${day.getUTCFullYear()}/${two(day.getUTCMonth() + 1)}/${two(day.getUTCDate())}`;
      const key = `${m.tenant}/${date}/${m.callId}/${m.id}${ext}`;
      const base: Omit<CatalogRow, 'version_id' | 'retain_until' | 'status' | 'updated_at'> = {
        id: m.id,
        session_id: m.sessionId,
        tenant: m.tenant,
        room: m.room,
        call_id: m.callId,
        participants: m.participants,
        tracks: m.tracks,
        codecs: m.codecs,
        started_at: m.startedAt,
        ended_at: m.endedAt,
        duration_s: (m.endedAt - m.startedAt) / 1000,
        size_bytes: size,
        sha256,
        content_type: m.contentType,
        storage_target: this.d.store.name,
        storage_country: this.d.store.location.country,
        object_key: key,
        lock_mode: rule.lockMode,
        legal_hold: 0,
        retention_policy: policy.name,
        deleted_at: null,
        deletion_reason: '',
      };
      let listed = false;
      for (;;) {
        if (this.#closed || this.#discarded.has(m.id)) return;
        try {
          if (!listed) {
            await this.d.catalog.putUpload({
              ...base,
              version_id: '',
              retain_until: null,
              status: 'uploading',
              updated_at: Date.now(),
            });
            listed = true;
          }
          // The lock runs from the upload, so a late upload is never protected for less than the policy says.
          const retainUntil = rule.lockMode === 'none' ? undefined : new Date(Date.now() + rule.duration * 1000);
          const lock = retainUntil
            ? { mode: rule.lockMode.toUpperCase() as 'GOVERNANCE' | 'COMPLIANCE', retainUntil }
            : undefined;
          // The store verifies the bytes and sets lock and hold in the same request; a retry
          // after a lost answer gets back the version already written, not a second one.
          const { versionId } = await this.d.store.put(key, m.file, {
            contentType: m.contentType,
            sha256,
            lock,
            legalHold: false,
          });
          const stored = await this.d.store.stat(key, versionId);
          if (stored.size !== size || stored.sha256 !== sha256)
            throw new Error(
              `verification failed: stored ${stored.size} bytes sha256 ${stored.sha256}, expected ${size} ${sha256}`,
            );
          if (lock && ((stored.lockMode !== lock.mode && stored.lockMode !== 'COMPLIANCE') || !stored.retainUntil))
            throw new Error(
              `verification failed: stored version ${versionId} has lock ${stored.lockMode ?? 'none'}, expected ` +
                `${lock.mode}`,
            );
          // A version adopted from an earlier attempt is locked from that attempt: the catalog says what the store
          // holds.
          const expiresAt = stored.retainUntil ?? retainUntil ?? new Date(Date.now() + rule.duration * 1000);
          // Catalogued before the local copy goes: a crash in between uploads again and adopts this version.
          await this.d.catalog.putUpload({
            ...base,
            version_id: versionId,
            retain_until: expiresAt.getTime(),
            status: 'ready',
            updated_at: Date.now(),
          });
          await rm(m.file, { force: true });
          await rm(path.join(this.#pendingDir, 'pending', `${m.id}.json`), { force: true });
          this.d.webhook(m.tenant, 'recording.ready', {
            recordingId: m.id,
            sessionId: m.sessionId,
            room: m.room,
            callId: m.callId,
            sizeBytes: size,
            sha256,
            durationS: base.duration_s,
            retainUntil: expiresAt.toISOString(),
          });
          this.d.log.info(
            { tenant: m.tenant, recording: m.id, key, versionId, size, attempts: m.attempts + 1 },
            'recording uploaded and verified',
          );
          return;
        } catch (err) {
          if (this.#discarded.has(m.id)) return;
          m.attempts++;
          await this.#saveManifest(m);
          const delay = Math.min(60_000, 500 * 2 ** Math.min(m.attempts, 7));
          this.d.log.warn(
            { recording: m.id, attempt: m.attempts, retryInMs: delay, reason: (err as Error).message?.slice(0, 200) },
            'recording upload failed; will retry',
          );
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    } finally {
      this.#uploading.delete(m.id);
    }
  }

  /** Resolves when every queued upload has finished (tests, shutdown with a live store). */
  async drain(timeoutMs = 60_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#uploading.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return this.#uploading.size === 0;
  }

  async close(): Promise<void> {
    for (const s of [...this.#sessions.values()]) await this.stop(s.room, 'shutdown').catch(() => undefined);
    await Promise.all(this.#finishing);
    this.#closed = true;
  }
}
