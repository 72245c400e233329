import type { types as ms } from 'mediasoup';
import type { Logger } from '../logging.js';
import type { Peer, RefusedJoin, Room, Sfu } from '../media/index.js';
import type { ClickHouseWriter } from './ClickHouseWriter.js';
import type { CallKeys } from './rows.js';
import { watchMediaPlane } from './watchMediaPlane.js';

/**
 * The steps of a join after it entered its room, in the order a join goes through them; each is the column
 * `<step>_ms` of `join_funnel`. A refused join stops at `joined`.
 */
export const FUNNEL_STEPS = ['send_connected', 'recv_connected', 'first_rtp', 'first_frame', 'first_audio'] as const;
export type FunnelStep = 'joined' | (typeof FUNNEL_STEPS)[number];
export type JoinOutcome = 'joined' | 'failed' | 'abandoned';

/** Steps the SFU measures itself: still missing when the funnel times out, the join is stuck, not merely quiet. */
const SERVER_STEPS: ReadonlySet<FunnelStep> = new Set(['send_connected', 'recv_connected', 'first_rtp']);

interface Funnel {
  room: Room;
  peer: Peer;
  joinedAt: number;
  at: Partial<Record<FunnelStep, number>>;
  /** The steps this join began and should reach: a WebRTC transport, a producer, a consumer of each kind. */
  expected: Set<FunnelStep>;
  failure?: { step: FunnelStep; code: string; reason: string };
  timer: NodeJS.Timeout;
}

/**
 * One `join_funnel` row per join: when each step was reached, as milliseconds from the join's start (the join
 * request's arrival), and how it ended. The only writer of that table.
 *
 * A row is written once: when every step is reached, when the participant leaves, or `timeoutMs` after it entered
 * the room, whichever comes first; a step reached later is not recorded. A join refused after its token was verified
 * is written at once (outcome `failed`, step `joined`). A join refused before that has no tenant anyone vouched for
 * and is not written: an unauthenticated client could otherwise fill the table, under any tenant's name.
 */
export class JoinFunnelRecorder {
  readonly #funnels = new Map<Peer, Funnel>();
  #unwatch?: () => void;

  constructor(
    private readonly sfu: Sfu,
    private readonly writer: ClickHouseWriter,
    private readonly keys: CallKeys,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.#unwatch = watchMediaPlane(this.sfu, {
      peerJoined: (room, peer) => {
        const funnel: Funnel = {
          room,
          peer,
          joinedAt: Date.now(),
          at: {},
          expected: new Set(),
          timer: setTimeout(() => this.#write(funnel, 'timeout'), this.timeoutMs).unref(),
        };
        this.#funnels.set(peer, funnel);
      },
      // Refused after it was added (its receive transport could not be made): the refusal's row says so.
      peerLeft: (_room, peer, reason) =>
        reason === 'join-failed' ? this.#forget(peer) : this.#withFunnel(peer, (f) => this.#write(f, reason)),
      transportCreated: (_room, peer, t) => this.#withFunnel(peer, (f) => this.#watchTransport(f, t)),
      producerCreated: (_room, peer, p) =>
        this.#withFunnel(peer, (f) => {
          f.expected.add('first_rtp');
          // The worker emits a producer's first score when its first RTP packet creates the receiving stream.
          p.observer.once('score', () => this.#reach(f, 'first_rtp'));
        }),
      consumerCreated: (_room, peer, c) =>
        this.#withFunnel(peer, (f) => f.expected.add(c.kind === 'video' ? 'first_frame' : 'first_audio')),
      mediaStarted: (_room, peer, kind, at) =>
        this.#withFunnel(peer, (f) => this.#reach(f, kind === 'video' ? 'first_frame' : 'first_audio', at)),
      joinRefused: (join) => void this.#writeRefused(join),
    });
  }

  /** Writes what the joins still open have reached (the server is stopping). */
  stop(): void {
    this.#unwatch?.();
    for (const f of [...this.#funnels.values()]) this.#write(f, 'server-shutdown');
  }

  #withFunnel(peer: Peer, fn: (f: Funnel) => void): void {
    const f = this.#funnels.get(peer);
    if (f) fn(f);
  }

  #forget(peer: Peer): void {
    const f = this.#funnels.get(peer);
    if (!f) return;
    clearTimeout(f.timer);
    this.#funnels.delete(peer);
  }

  #watchTransport(f: Funnel, t: ms.WebRtcTransport | ms.PlainTransport): void {
    // A plain transport (an RTP bot) has no ICE or DTLS to connect.
    if (!('dtlsState' in t)) return;
    const step: FunnelStep = t.appData.direction === 'send' ? 'send_connected' : 'recv_connected';
    f.expected.add(step);
    t.observer.on('dtlsstatechange', (state) => {
      if (state === 'connected') this.#reach(f, step);
      else if (state === 'failed' && f.at[step] === undefined)
        f.failure ??= { step, code: 'DTLS_FAILED', reason: 'the DTLS handshake failed' };
    });
  }

  #reach(f: Funnel, step: FunnelStep, at = Date.now()): void {
    if (f.at[step] !== undefined || this.#funnels.get(f.peer) !== f) return;
    f.at[step] = at;
    if (FUNNEL_STEPS.every((s) => f.at[s] !== undefined)) this.#write(f);
  }

  /** `ended`: why the row is written before the funnel completed (the peer's leave reason, or 'timeout'). */
  #write(f: Funnel, ended?: string): void {
    if (this.#funnels.get(f.peer) !== f) return;
    this.#forget(f.peer);
    const missing = FUNNEL_STEPS.filter((s) => f.expected.has(s) && f.at[s] === undefined);
    let outcome: JoinOutcome = 'joined';
    let failed: { step: string; code: string; reason: string } = { step: '', code: '', reason: ended ?? '' };
    if (f.failure) {
      outcome = 'failed';
      failed = f.failure;
    } else if (ended === 'timeout' && missing.some((s) => SERVER_STEPS.has(s))) {
      outcome = 'failed';
      failed = { step: missing[0]!, code: 'TIMEOUT', reason: `not reached ${this.timeoutMs} ms after joining` };
    } else if (ended !== undefined && ended !== 'timeout' && missing.length > 0) {
      outcome = 'abandoned';
      failed = { step: missing[0]!, code: '', reason: ended };
    }
    const start = f.peer.joinStartedAt;
    const offset = (at: number | undefined) => (at === undefined ? null : Math.round(at - start));
    this.writer.write('join_funnel', {
      ts: start,
      ...this.keys.of(f.room, f.peer),
      outcome,
      failed_step: failed.step,
      error_code: failed.code,
      reason: failed.reason,
      ...this.#clientSteps(f.peer, start),
      joined_ms: offset(f.joinedAt),
      ...Object.fromEntries(FUNNEL_STEPS.map((s) => [`${s}_ms`, offset(f.at[s])])),
    });
  }

  async #writeRefused(join: RefusedJoin): Promise<void> {
    const { tenant, room, identity } = join.claims;
    // Never creates a salt: someone refused at their first join has no pseudonym, and gets none from a refusal.
    const participant = await this.keys.pseudonymizer.existing(tenant, identity).catch((err) => {
      this.log.warn({ err }, 'pseudonym lookup failed for a refused join; row left unkeyed');
      return undefined;
    });
    this.writer.write('join_funnel', {
      ts: join.startedAt,
      tenant,
      room,
      call_id: this.sfu.getRoom(tenant, room)?.callId ?? '',
      peer_id: '',
      participant: participant ?? '',
      node: this.keys.node,
      outcome: join.abandoned ? 'abandoned' : 'failed',
      failed_step: 'joined',
      error_code: join.abandoned ? '' : join.code,
      reason: join.abandoned ? 'disconnected' : join.reason,
      ...this.#clientSteps({ claims: join.claims, connectionOpenedAt: join.connectionOpenedAt }, join.startedAt),
      joined_ms: null,
      ...Object.fromEntries(FUNNEL_STEPS.map((s) => [`${s}_ms`, null])),
    });
  }

  /** The steps before the join request: the token's issue (`iat`, to the second) and the WebSocket's opening. */
  #clientSteps(p: Pick<Peer, 'claims' | 'connectionOpenedAt'>, start: number) {
    return {
      token_issued_ms: p.claims.issuedAt === undefined ? null : p.claims.issuedAt * 1000 - start,
      ws_open_ms: p.connectionOpenedAt - start,
    };
  }
}
