/**
 * Rooms that span nodes (cascading). A join that reaches this node for a room another live node holds is served
 * here when that node is full (`nodes.consumerCapacity`) or the tenant has `regionAffinity` and the nodes are in
 * different regions (`shouldExtend`): the room opens here with the owner's call id and is linked to the owner's
 * (CascadeLink). The link is a WebSocket from this node to `GET /internal/cascade` on the owner's public URL,
 * authenticated with a short-lived HS256 token signed with a secret every node shares (`cascade-link.secret`);
 * never a tenant's key.
 *
 * Needs `sfu`, `rooms`, `tenants`, `config`, `db`, `nodes`, WebSocket support, and `recording` when it records
 * (a room's recording is started and stopped on every node the room spans, each node recording its own
 * participants); decorates `cascade` (Cascade), which signaling asks to open a room at each join.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { jwtVerify, SignJWT } from 'jose';
import WebSocket from 'ws';
import { z } from 'zod';
import type { Config } from '../config/index.js';
import { VigieError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Room, RoomDirectory, RoomOptions, Sfu } from '../media/index.js';
import type { NodeInfo, NodeRegistry } from '../nodes/index.js';
import type { RecordingService } from '../recording/index.js';
import { sharedSecret } from '../store/index.js';
import type { TenantRegistry } from '../tenants/index.js';
import { CascadeLink } from './CascadeLink.js';
import { type ExtendReason, shouldExtend } from './decide.js';

export { CascadeLink, linkMessageSchema, type LinkMessage } from './CascadeLink.js';
export { shouldExtend, type ExtendInput, type ExtendReason } from './decide.js';

declare module 'fastify' {
  interface FastifyInstance {
    cascade: Cascade;
  }
}

export const LINK_PATH = '/internal/cascade';
/** A link token is good for this long: enough to open the WebSocket, too short to be worth stealing. */
const TOKEN_TTL_SECONDS = 30;
/** How long an edge waits for the owner's participants before the join is refused. */
const READY_TIMEOUT_MS = 15_000;

const linkQuerySchema = z.object({
  tenant: z.string().min(1).max(64),
  room: z.string().min(1).max(256),
  callId: z.string().min(1).max(64),
});

export interface CascadeDeps {
  sfu: Sfu;
  rooms: RoomDirectory;
  tenants: TenantRegistry;
  registry: NodeRegistry;
  config: Config;
  /** The HS256 key every node shares for link tokens. */
  key: Uint8Array;
  /** This node's recordings, if it records: a room's recording starts and stops on every node it spans. */
  recording?: RecordingService;
  log: Logger;
}

export class Cascade {
  readonly #d: CascadeDeps;
  /** Rooms being opened by a join, so that concurrent joins share one room and one link. */
  readonly #opening = new Map<string, Promise<Room>>();
  readonly #links = new Set<CascadeLink>();

  constructor(deps: CascadeDeps) {
    this.#d = deps;
  }

  /** The room links of this node, either role. */
  get links(): ReadonlySet<CascadeLink> {
    return this.#links;
  }

  /** Whether a join here for a room `owner` serves extends the room to this node (routing asks before it redirects). */
  extendsHere(tenant: string, owner: NodeInfo): boolean {
    return this.#reason(tenant, owner) !== undefined;
  }

  #reason(tenant: string, owner: NodeInfo | undefined): ExtendReason | undefined {
    const { config } = this.#d;
    return shouldExtend({
      self: { id: config.node.id, region: config.node.region },
      owner,
      regionAffinity: this.#d.tenants.get(tenant)?.regionAffinity ?? false,
      consumerCapacity: config.nodes.consumerCapacity,
    });
  }

  /**
   * The room a join enters on this node: the local room when it is open; else, when another node holds the room and
   * `shouldExtend` says so, the room opened here with that node's call id and linked to it; else a new local room.
   */
  async openRoom(tenant: string, roomId: string, options: RoomOptions): Promise<Room> {
    const open = this.#d.sfu.getRoom(tenant, roomId);
    if (open) return open;
    const key = `${tenant}/${roomId}`;
    let opening = this.#opening.get(key);
    if (!opening) {
      opening = this.#open(tenant, roomId, options).finally(() => this.#opening.delete(key));
      this.#opening.set(key, opening);
    }
    return opening;
  }

  async #open(tenant: string, roomId: string, options: RoomOptions): Promise<Room> {
    const { sfu, rooms, registry, config } = this.#d;
    const placement = await rooms.placement(tenant, roomId);
    const owner =
      placement && placement.nodeId !== config.node.id
        ? (await registry.list()).find((n) => n.id === placement.nodeId)
        : undefined;
    const reason = this.#reason(tenant, owner);
    if (!reason || !owner || !placement) return sfu.getOrCreateRoom(tenant, roomId, options);
    const room = await sfu.getOrCreateRoom(tenant, roomId, options, placement.callId);
    try {
      await this.#dial(room, owner.id, owner.publicUrl);
    } catch (err) {
      if (room.peers.size === 0) room.close('cascade-link-failed');
      this.#d.log.warn(
        { err, tenant, room: roomId, callId: room.callId, owner: owner.id },
        'could not extend the room to this node',
      );
      throw new VigieError('UNAVAILABLE', 'the room could not be extended to this node; join again in a moment');
    }
    this.#d.log.info({ tenant, room: roomId, callId: room.callId, owner: owner.id, reason }, 'room extended here');
    return room;
  }

  /** Opens the link to the owner and waits until its participants stand in here. */
  async #dial(room: Room, ownerId: string, ownerUrl: string): Promise<void> {
    const token = await new SignJWT({ callId: room.callId })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(this.#d.config.node.id)
      .setAudience(ownerId)
      .setSubject(`${room.tenant}/${room.id}`)
      .setIssuedAt()
      .setExpirationTime(`${TOKEN_TTL_SECONDS}s`)
      .sign(this.#d.key);
    const url = new URL(LINK_PATH, ownerUrl.replace(/^http/, 'ws'));
    url.search = new URLSearchParams({ tenant: room.tenant, room: room.id, callId: room.callId }).toString();
    const socket = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: 10_000 });
    // The owner speaks first, as soon as the link is up: frames that come with the upgrade's answer are read before
    // this function resumes after 'open', and would find no listener. They are kept, then handed to the link.
    const early: WebSocket.RawData[] = [];
    const keep = (raw: WebSocket.RawData) => early.push(raw);
    socket.on('message', keep);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('unexpected-response', (_req, res) => {
        reject(new Error(`the owner refused the link: HTTP ${res.statusCode}`));
        socket.terminate();
      });
      socket.once('error', reject);
    });
    socket.off('message', keep);
    const link = this.#adopt(room, socket, ownerId, 'edge');
    for (const raw of early) socket.emit('message', raw, false);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the owner did not announce its participants')),
        READY_TIMEOUT_MS,
      );
      link.observer.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
      link.observer.once('close', (reason) => {
        clearTimeout(timer);
        reject(new Error(`the link closed: ${reason}`));
      });
    }).catch((err) => {
      link.close('link-failed');
      throw err;
    });
  }

  #adopt(room: Room, socket: WebSocket, remoteNodeId: string, role: 'owner' | 'edge'): CascadeLink {
    const link = new CascadeLink({
      room,
      socket,
      remoteNodeId,
      role,
      transport: this.#d.config.media,
      deadAfterMs: this.#d.config.nodes.deadAfterSeconds * 1000,
      recording: this.#d.recording,
      log: this.#d.log,
    });
    this.#links.add(link);
    link.observer.once('close', () => this.#links.delete(link));
    return link;
  }

  /**
   * Checks a link request before the WebSocket upgrade: a token of a node of this cluster, for this node, for this
   * very room and call; and the room open here under that call. The token is never logged.
   */
  async authorize(req: FastifyRequest): Promise<{ room: Room; from: string }> {
    const query = linkQuerySchema.safeParse(req.query);
    if (!query.success) throw new VigieError('INVALID_REQUEST', 'tenant, room and callId are required');
    const { tenant, room: roomId, callId } = query.data;
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer ')) throw new VigieError('UNAUTHORIZED', 'a node link token is required');
    let from: string;
    try {
      const { payload } = await jwtVerify(header.slice(7), this.#d.key, {
        algorithms: ['HS256'],
        audience: this.#d.config.node.id,
        subject: `${tenant}/${roomId}`,
        maxTokenAge: `${TOKEN_TTL_SECONDS}s`,
        clockTolerance: this.#d.config.auth.clockSkewSeconds,
      });
      if (payload.callId !== callId || typeof payload.iss !== 'string') throw new Error('claims do not match');
      from = payload.iss;
    } catch {
      throw new VigieError('UNAUTHORIZED', 'invalid node link token');
    }
    const room = this.#d.sfu.getRoom(tenant, roomId);
    if (!room || room.callId !== callId) throw new VigieError('NOT_FOUND', 'no such call on this node');
    return { room, from };
  }

  accept(socket: WebSocket, room: Room, from: string): void {
    if (room.closed) {
      socket.close(1000, 'room closed');
      return;
    }
    this.#adopt(room, socket, from, 'owner');
    this.#d.log.info({ tenant: room.tenant, room: room.id, callId: room.callId, edge: from }, 'room link accepted');
  }

  close(): void {
    for (const link of [...this.#links]) link.close('shutdown');
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const cascade = new Cascade({
      sfu: app.sfu,
      rooms: app.rooms,
      tenants: app.tenants,
      registry: app.nodes.registry,
      config: app.config,
      key: new TextEncoder().encode(await sharedSecret(app.db, 'cascade-link.secret', app.config.dataDir)),
      recording: app.recording?.service,
      log: app.log.child({ component: 'cascade' }),
    });
    app.decorate('cascade', cascade);
    const accepted = new WeakMap<FastifyRequest, { room: Room; from: string }>();
    app.get(
      LINK_PATH,
      {
        websocket: true,
        // Before the upgrade: a refused caller gets a plain HTTP error and never a socket.
        preValidation: async (req: FastifyRequest, reply: FastifyReply) => {
          try {
            accepted.set(req, await cascade.authorize(req));
          } catch (err) {
            if (!(err instanceof VigieError)) throw err;
            req.log.warn({ code: err.code, reason: err.message }, 'room link refused');
            return reply.code(err.httpStatus).send({ error: err.toJSON() });
          }
        },
      },
      (socket, req) => {
        const ok = accepted.get(req)!;
        cascade.accept(socket, ok.room, ok.from);
      },
    );
    app.addHook('preClose', async () => cascade.close());
  },
  { name: 'vigie-cascade', dependencies: ['vigie-core', 'vigie-store', 'vigie-nodes', '@fastify/websocket'] },
);
