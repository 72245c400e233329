import type { WebSocket } from 'ws';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { tracer } from '../telemetry/otel.js';
import type { Logger } from '../logging.js';
import { hasGrant, iceServersFor, type AccessClaims, type TokenService } from '../auth/index.js';
import type { Config } from '../config/index.js';
import type { RecordingService } from '../recording/index.js';
import { VigieError, toVigieError } from '../errors.js';
import { Peer, type Room, type RoomBans, type RoomDirectory, type RoomOptions, type Sfu } from '../media/index.js';
import {
  envelopeSchema,
  REQUESTS,
  REQUIRED_GRANT,
  type Method,
  type RequestData,
  type ResponseFrame,
} from './protocol.js';
import { TokenBucket } from './TokenBucket.js';
import type { NodeInfo, NodeRegistry } from '../nodes/index.js';
import { confirmPlacement, otherNodesUrls, routeJoin } from './routing.js';

export interface SessionContext {
  sfu: Sfu;
  rooms: RoomDirectory;
  recording?: RecordingService;
  tokens: TokenService;
  config: Config;
  log: Logger;
  /** Live sessions by peer id, so a reconnect can evict the session it replaces. */
  sessions: Map<string, SignalingSession>;
  /** Identities removed from a room, refused at join. */
  bans: RoomBans;
  /**
   * Set on SIGTERM: this node takes no new rooms and sends joins to other nodes (routing.ts); with no other node,
   * joins are refused while the calls in progress end.
   */
  draining: boolean;
  /** The cluster's nodes: where each join is served (routing.ts), and where the SDK may rejoin. */
  registry: NodeRegistry;
  /** Whether a join here for a room `owner` serves extends the room to this node (src/cascade) instead of moving. */
  extendsHere?: (tenant: string, owner: NodeInfo) => boolean;
  /** The room a join enters (src/cascade: it may extend another node's room); the SFU's own when unset. */
  openRoom?: (tenant: string, room: string, options: RoomOptions) => Promise<Room>;
}

/** One join request on its way in: when it began, and its verified claims once known. */
interface JoinAttempt {
  startedAt: number;
  connectionOpenedAt: number;
  claims?: AccessClaims;
}

/**
 * Close codes the SDK understands. `serverRestart` (1012, "service restart")
 * is not final: the SDK rejoins, on another server or on this one restarted.
 */
export const CLOSE_CODES = {
  replaced: 4000,
  removed: 4001,
  rateLimited: 4008,
  tooBig: 1009,
  serverRestart: 1012,
} as const;

/**
 * Refused frames a connection may accumulate, in units of its burst, before it
 * is dropped; the debt is forgiven at half the sustained rate. A burst is
 * refused and forgiven; a connection that keeps sending above its rate is closed.
 */
const STRIKE_BURSTS = 4;

/**
 * One WebSocket connection. Validates every frame, authorizes every request
 * against the joined token's tenant, room and grants, and turns media-plane
 * events into notifications.
 */
export class SignalingSession {
  #peer?: Peer;
  #room?: Room;
  readonly #bucket: TokenBucket;
  /** Refused frames, as a bucket: empty means the connection keeps flooding. */
  readonly #strikes: TokenBucket;
  #closed = false;
  /** Requests are handled one at a time, in order, as a client expects. */
  #queue: Promise<void> = Promise.resolve();
  /** Last time the client showed it is alive (a frame or a pong). */
  #lastSeen = Date.now();
  readonly #heartbeat: NodeJS.Timeout;
  #refreshTimer?: NodeJS.Timeout;
  /** When the WebSocket opened: the join funnel's "WebSocket open" step. */
  readonly #openedAt = Date.now();

  constructor(
    private readonly socket: WebSocket,
    private readonly ctx: SessionContext,
    private log: Logger,
  ) {
    const { ratePerSecond, rateBurst } = ctx.config.signaling;
    this.#bucket = new TokenBucket(ratePerSecond, rateBurst);
    this.#strikes = new TokenBucket(ratePerSecond / 2, rateBurst * STRIKE_BURSTS);
    socket.on('message', (raw, isBinary) => this.#onFrame(raw as Buffer, isBinary));
    socket.on('close', () => this.#onClose());
    socket.on('error', (err) => this.log.debug({ err }, 'websocket error'));
    // A half-open connection (a laptop closed, a network cut) sends no close
    // frame: without pings its peer, ports and recorder would stay forever.
    // Pinged every third of the timeout, a client that missed two pongs is gone.
    socket.on('pong', () => (this.#lastSeen = Date.now()));
    const timeoutMs = ctx.config.signaling.heartbeatTimeoutMs;
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastSeen > (timeoutMs * 2) / 3) return this.#timedOut();
      if (socket.readyState === socket.OPEN) socket.ping();
    }, timeoutMs / 3).unref();
  }

  get peer(): Peer | undefined {
    return this.#peer;
  }

  /** Ends this session because the same identity joined again elsewhere. */
  evict(reason: string): void {
    this.#notify('sessionReplaced', { reason });
    this.#leave(reason);
    this.socket.close(CLOSE_CODES.replaced, reason);
  }

  /**
   * The server is going away: participants hear it now, and are told to reconnect elsewhere if still here at the
   * deadline.
   */
  announceDrain(deadlineSeconds: number): void {
    this.#notify('serverDraining', { reason: 'server-shutdown', deadlineSeconds });
  }

  /** Closes with 1012: the SDK takes it as "rejoin", not as the end of the call. */
  closeForRestart(): void {
    this.#leave('server-shutdown');
    this.socket.close(CLOSE_CODES.serverRestart, 'server-shutdown');
  }

  #timedOut(): void {
    this.log.info({ silentMs: Date.now() - this.#lastSeen }, 'connection silent: dropped');
    this.#leave('timeout');
    this.socket.terminate();
  }

  #onFrame(raw: Buffer, isBinary: boolean): void {
    if (this.#closed) return;
    this.#lastSeen = Date.now();
    // Every frame spends budget, whatever it holds: oversized, binary and invalid ones too.
    if (!this.#bucket.take()) {
      this.#refuseOverLimit(raw, isBinary);
      return;
    }
    if (raw.length > this.ctx.config.signaling.maxFrameBytes) {
      this.#send({
        id: null,
        ok: false,
        error: {
          code: 'INVALID_REQUEST',
          message: `frame of ${raw.length} bytes exceeds the ${this.ctx.config.signaling.maxFrameBytes}-byte limit`,
        },
      });
      return;
    }
    if (isBinary) {
      this.#send({
        id: null,
        ok: false,
        error: { code: 'INVALID_REQUEST', message: 'binary frames are not accepted' },
      });
      return;
    }
    let parsedJson: unknown;
    try {
      parsedJson = JSON.parse(raw.toString('utf8'));
    } catch {
      this.#send({ id: null, ok: false, error: { code: 'INVALID_REQUEST', message: 'frame is not valid JSON' } });
      return;
    }
    const envelope = envelopeSchema.safeParse(parsedJson);
    if (!envelope.success) {
      const maybeId = (parsedJson as { id?: unknown } | null)?.id;
      const id = typeof maybeId === 'number' || typeof maybeId === 'string' ? maybeId : null;
      this.#send({
        id,
        ok: false,
        error: { code: 'INVALID_REQUEST', message: `bad request envelope: ${summarize(envelope.error)}` },
      });
      return;
    }
    const { id, method, data } = envelope.data;
    this.#queue = this.#queue.then(() => this.#handle(id, method, data ?? {}));
  }

  /** Refuses a frame over the rate limit, or closes a connection that keeps flooding. */
  #refuseOverLimit(raw: Buffer, isBinary: boolean): void {
    if (!this.#strikes.take()) {
      this.#closed = true;
      this.log.warn('signaling connection closed: it kept sending above its rate limit');
      this.socket.close(CLOSE_CODES.rateLimited, 'rate limited');
      return;
    }
    // Name the refused request when it is small enough to read, so that the client's pending call ends now.
    let id: unknown = null;
    if (!isBinary && raw.length <= this.ctx.config.signaling.maxFrameBytes) {
      try {
        id = (JSON.parse(raw.toString('utf8')) as { id?: unknown } | null)?.id;
      } catch {
        // not JSON: refused without an id
      }
    }
    this.#send({
      id: typeof id === 'number' || typeof id === 'string' ? id : null,
      ok: false,
      error: { code: 'RATE_LIMITED', message: 'too many requests; slow down' },
    });
  }

  /** One span per request, with tenant and room once known; never the request's data (it can hold a token). */
  async #handle(id: number | string, method: string, rawData: unknown): Promise<void> {
    const name = Object.hasOwn(REQUESTS, method) ? method : 'unknown';
    await tracer().startActiveSpan(
      `signaling ${name}`,
      { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'vigie-signaling', 'rpc.method': name } },
      async (span) => {
        try {
          if (name === 'unknown') throw new VigieError('INVALID_REQUEST', `unknown method "${method.slice(0, 64)}"`);
          const m = method as Method;
          const parsed = REQUESTS[m].safeParse(rawData);
          if (!parsed.success)
            throw new VigieError('INVALID_REQUEST', `invalid ${m} request: ${summarize(parsed.error)}`);
          const result = await this.#dispatch(m, parsed.data);
          this.#send({ id, ok: true, data: result ?? {} });
        } catch (err) {
          const e = toVigieError(err);
          span.setAttribute('vigie.error_code', e.code);
          if (e.code === 'INTERNAL') {
            span.setStatus({ code: SpanStatusCode.ERROR });
            // Not the client's doing: logged with its stack and what the request was (never its data, which can hold a
            // token).
            this.log.error({ err, method: name, requestId: id }, 'signaling request failed');
          } else this.log.debug({ method: name, code: e.code, reason: e.message }, 'signaling request refused');
          this.#send({ id, ok: false, error: e.toJSON() });
        } finally {
          const claims = this.#peer?.claims;
          if (claims) span.setAttributes({ 'vigie.tenant': claims.tenant, 'vigie.room': claims.room });
          span.end();
        }
      },
    );
  }

  async #dispatch(method: Method, data: unknown): Promise<unknown> {
    if (method === 'join') return this.#join(data as RequestData<'join'>);
    if (method === 'ping') return {};
    const peer = this.#peer;
    const room = this.#room;
    if (!peer || !room || peer.closed) throw new VigieError('UNAUTHORIZED', 'join a room first');
    if (Date.now() / 1000 > peer.expiresAt + this.ctx.config.auth.clockSkewSeconds) {
      throw new VigieError('UNAUTHORIZED', 'access token expired; join again with a fresh token');
    }
    const grant = REQUIRED_GRANT[method];
    if (grant && !hasGrant(peer.claims, grant))
      throw new VigieError('FORBIDDEN', `the ${grant} grant is required for ${method}`);

    switch (method) {
      case 'getRouterRtpCapabilities':
        return { rtpCapabilities: room.router.rtpCapabilities };
      case 'createWebRtcTransport': {
        const { direction } = data as RequestData<'createWebRtcTransport'>;
        const needed = direction === 'send' ? 'publish' : 'subscribe';
        if (!hasGrant(peer.claims, needed))
          throw new VigieError('FORBIDDEN', `the ${needed} grant is required for a ${direction} transport`);
        return room.createWebRtcTransport(peer, { direction });
      }
      case 'connectTransport': {
        const d = data as RequestData<'connectTransport'>;
        await room.connectTransport(peer, d.transportId, d.dtlsParameters);
        return {};
      }
      case 'restartIce':
        return { iceParameters: await room.restartIce(peer, (data as RequestData<'restartIce'>).transportId) };
      case 'produce': {
        const d = data as RequestData<'produce'>;
        return { producerId: await room.produce(peer, d as never) };
      }
      case 'closeProducer':
        room.closeProducer(peer, (data as RequestData<'closeProducer'>).producerId);
        return {};
      case 'pauseProducer':
      case 'resumeProducer':
        await room.setProducerPaused(
          peer,
          (data as RequestData<'pauseProducer'>).producerId,
          method === 'pauseProducer',
        );
        return {};
      case 'consume':
        return room.consume(peer, data as never);
      case 'pauseConsumer':
      case 'resumeConsumer':
        await room.setConsumerPaused(
          peer,
          (data as RequestData<'pauseConsumer'>).consumerId,
          method === 'pauseConsumer',
        );
        return {};
      case 'setPreferredLayers': {
        const d = data as RequestData<'setPreferredLayers'>;
        await room.setPreferredLayers(peer, d.consumerId, {
          spatialLayer: d.spatialLayer,
          temporalLayer: d.temporalLayer,
        });
        return {};
      }
      case 'leave':
        this.#leave('left');
        return {};
      case 'startRecording':
      case 'stopRecording': {
        if (!this.ctx.recording) throw new VigieError('FORBIDDEN', 'recording is unavailable on this gateway');
        return method === 'startRecording'
          ? this.ctx.recording.start(room, 'participant')
          : this.ctx.recording.stop(room, 'stopped-by-participant');
      }
      case 'recordingConsent':
        if (!this.ctx.recording) throw new VigieError('FORBIDDEN', 'recording is unavailable on this gateway');
        this.ctx.recording.consent(room, peer, (data as RequestData<'recordingConsent'>).given);
        return {};
      case 'clientStats':
        return { accepted: peer.reportClientStats(data as RequestData<'clientStats'>) };
      case 'mediaStarted':
        return { accepted: peer.reportMediaStarted((data as RequestData<'mediaStarted'>).consumerId) };
    }
  }

  /**
   * A join, and its report to the media plane when it fails after its token was verified (the join funnel counts it
   * for the token's tenant). A REDIRECT is no failure: the node it names records the join.
   */
  async #join(req: RequestData<'join'>): Promise<unknown> {
    const attempt: JoinAttempt = { startedAt: Date.now(), connectionOpenedAt: this.#openedAt };
    try {
      return await this.#enter(req, attempt);
    } catch (err) {
      const e = toVigieError(err);
      if (attempt.claims && e.code !== 'REDIRECT')
        this.ctx.sfu.joinRefused({
          ...attempt,
          claims: attempt.claims,
          code: e.code,
          // Our own bug's message is for the log, not for a table read by dashboards.
          reason: e.code === 'INTERNAL' ? 'internal error' : e.message.slice(0, 200),
          abandoned: this.#closed,
        });
      throw err;
    }
  }

  async #enter(req: RequestData<'join'>, attempt: JoinAttempt): Promise<unknown> {
    if (this.#peer && !this.#peer.closed) throw new VigieError('INVALID_REQUEST', 'already joined; leave first');
    // Not #assertMayEnter yet: a draining node still answers a join, with REDIRECT to a node that takes rooms.
    if (this.#closed) throw new VigieError('INVALID_REQUEST', 'the connection closed during join');
    const claims = await this.ctx.tokens.verify(req.token, { tenant: req.tenant, room: req.room });
    attempt.claims = claims;
    if (this.ctx.bans.isBanned(claims.tenant, claims.room, claims.identity))
      throw new VigieError('FORBIDDEN', 'you were removed from this room');
    // Served here (a room of its own, or another node's room extended here, src/cascade), or answered REDIRECT to
    // the node that serves the room; after the token check, so that only a participant of the room learns where it is.
    await routeJoin(this.ctx, claims.tenant, claims.room);
    this.#assertMayEnter();
    const options = this.ctx.rooms.optionsFor(claims.tenant, claims.room);
    const opening = this.ctx.openRoom
      ? this.ctx.openRoom(claims.tenant, claims.room, options)
      : this.ctx.sfu.getOrCreateRoom(claims.tenant, claims.room, options);
    // Awaited below; marked handled now so that a failure while prepareJoin runs is not an unhandled rejection.
    opening.catch(() => undefined);
    // In parallel with the room's creation: the capabilities' preparations (e.g. the participant's pseudonym).
    try {
      await this.ctx.sfu.prepareJoin(claims);
    } catch (err) {
      opening.then(closeIfUnused, () => undefined);
      throw err;
    }
    const room = await opening;
    // The connection may have closed, or the server begun to drain, while the
    // token was verified or the router created: such a session adds no peer.
    try {
      this.#assertMayEnter();
      await confirmPlacement(this.ctx, room);
    } catch (err) {
      closeIfUnused(room);
      throw err;
    }

    // The new session enters before the old one leaves: a participant alone in
    // the room who reconnects must not close it by leaving first.
    const previous = room.findPeerByIdentity(claims.identity);
    // A name typed on the pre-join screen fills in for a token without one; it never overrides the name the token
    // vouches for.
    const peer = new Peer(
      claims.name === undefined && req.name ? { ...claims, name: req.name } : claims,
      (method, data) => this.#notify(method, data),
      undefined,
      attempt,
    );
    try {
      room.addPeer(peer, { replacing: previous });
    } catch (err) {
      // A listener of the room may have thrown after the peer was added: take it out again.
      if (room.peers.has(peer.id)) room.removePeer(peer, 'join-failed');
      else closeIfUnused(room);
      throw err;
    }
    this.#peer = peer;
    this.#room = room;
    this.ctx.sessions.set(peer.id, this);
    this.log = this.log.child({ tenant: claims.tenant, room: claims.room, peerId: peer.id });
    // The peer closes when it is removed or its room closes (leaving clears #peer first):
    // one listener on the peer, which goes with it, rather than one per join on the room.
    peer.observer.once('close', (reason) => {
      clearTimeout(this.#refreshTimer);
      if (this.#peer !== peer) return;
      this.#peer = undefined;
      this.#room = undefined;
      this.ctx.sessions.delete(peer.id);
      // Removed through the API: say so, then hang up.
      if (reason === 'removed') {
        this.#notify('removed', { reason });
        this.socket.close(CLOSE_CODES.removed, 'removed');
      }
    });
    try {
      if (previous) {
        const oldSession = this.ctx.sessions.get(previous.id);
        if (oldSession) oldSession.evict('replaced');
        else room.removePeer(previous, 'replaced');
      }
      this.#scheduleTokenRefresh(peer, peer.expiresAt - (claims.issuedAt ?? Math.floor(peer.joinedAt / 1000)));
      // Asked for by the SDK: its first consume then needs no createWebRtcTransport round trip first. Created as that
      // request would create it (same room method, same grant), once the peer is in the room and watched.
      const recvTransport =
        req.recvTransport && hasGrant(claims, 'subscribe')
          ? await room.createWebRtcTransport(peer, { direction: 'recv' })
          : undefined;
      this.log.info({ callId: room.callId }, 'peer joined');
      return {
        ...(recvTransport ? { recvTransport } : {}),
        peerId: peer.id,
        callId: room.callId,
        tenant: claims.tenant,
        room: claims.room,
        name: peer.displayName,
        grants: [...claims.grants],
        rtpCapabilities: room.router.rtpCapabilities,
        recording: {
          active: this.ctx.recording?.isRecording(room) ?? false,
          consentRequired: room.options.consentRequired,
          policy: room.options.recordingPolicy,
        },
        clientStatsIntervalMs: this.ctx.config.telemetry.enabled ? this.ctx.config.telemetry.clientStatsIntervalMs : 0,
        heartbeatTimeoutMs: this.ctx.config.signaling.heartbeatTimeoutMs,
        iceServers: iceServersFor(this.ctx.config.ice, peer.id),
        peers: room.otherPeers(peer),
        nodes: otherNodesUrls(this.ctx.registry),
      };
    } catch (err) {
      this.#leave('join-failed');
      throw err;
    }
  }

  #assertMayEnter(): void {
    if (this.#closed) throw new VigieError('INVALID_REQUEST', 'the connection closed during join');
    if (this.ctx.draining) throw new VigieError('UNAVAILABLE', 'this server is shutting down; join again in a moment');
  }

  /**
   * Sends the participant a fresh token before its own expires (as LiveKit
   * does), so a call can outlast its first token: the SDK uses the new one for
   * its requests and rejoins. The new token has the same claims and the same
   * lifetime, and is sent half that lifetime or `tokenRefreshLeadSeconds`
   * before expiry, whichever is sooner.
   */
  #scheduleTokenRefresh(peer: Peer, lifetimeSeconds: number): void {
    clearTimeout(this.#refreshTimer);
    // At least 10 s: a token joined moments before its expiry must not start a refresh every few milliseconds.
    const lifetime = Math.max(10, Math.min(lifetimeSeconds, this.ctx.config.auth.maxTokenTtlSeconds));
    const lead = Math.min(this.ctx.config.signaling.tokenRefreshLeadSeconds, lifetime / 2);
    const delayMs = Math.max(0, (peer.expiresAt - lead) * 1000 - Date.now());
    this.#refreshTimer = setTimeout(() => void this.#refreshToken(peer, lifetime), delayMs).unref();
  }

  async #refreshToken(peer: Peer, lifetimeSeconds: number): Promise<void> {
    if (this.#peer !== peer || peer.closed) return;
    const c = peer.claims;
    try {
      const { token, expiresAt } = await this.ctx.tokens.mint({
        tenant: c.tenant,
        room: c.room,
        identity: c.identity,
        grants: [...c.grants],
        name: c.name,
        metadata: c.metadata,
        ttlSeconds: Math.round(lifetimeSeconds),
      });
      if (this.#peer !== peer || peer.closed) return;
      peer.expiresAt = expiresAt;
      this.#notify('tokenRefreshed', { token, expiresAt });
      this.log.debug({ expiresAt }, 'access token refreshed');
      this.#scheduleTokenRefresh(peer, lifetimeSeconds);
    } catch (err) {
      // A tenant whose tokens come only from its identity provider has no key here to sign with:
      // its application hands participants fresh tokens, as the README says. Not a bug of ours.
      if (err instanceof VigieError && err.code === 'FORBIDDEN')
        this.log.warn({ reason: err.message }, 'access token not refreshed');
      else this.log.error({ err }, 'access token refresh failed');
    }
  }

  #leave(reason: string): void {
    const peer = this.#peer;
    const room = this.#room;
    this.#peer = undefined;
    this.#room = undefined;
    if (!peer || !room) return;
    this.ctx.sessions.delete(peer.id);
    room.removePeer(peer, reason);
    this.log.info({ reason }, 'peer left');
  }

  #onClose(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#refreshTimer);
    this.#leave('disconnected');
  }

  #notify(method: string, data: Record<string, unknown>): void {
    this.#sendRaw({ notification: true, method, data });
  }

  #send(frame: ResponseFrame): void {
    this.#sendRaw(frame);
  }

  #sendRaw(frame: unknown): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(JSON.stringify(frame));
  }
}

function summarize(error: { issues: Array<{ path: PropertyKey[]; message: string }> }): string {
  return error.issues
    .slice(0, 3)
    .map((i) => (i.path.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message))
    .join('; ');
}

/**
 * A room a failed join opened and no one entered closes. Deferred: another
 * join may hold the same new room and add its peer in this very tick.
 */
function closeIfUnused(room: Room): void {
  setImmediate(() => {
    if (room.peers.size === 0) room.close('empty');
  });
}
