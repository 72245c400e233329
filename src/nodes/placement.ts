import type { NodeInfo } from './NodeRegistry.js';

/**
 * Where a join is served: here, or on another node that the client is sent to
 * (the signaling answer REDIRECT names it). One decision for the whole
 * cluster, so that every node sends the joins of one room to the same place.
 */
export type JoinDecision =
  | { kind: 'local' }
  | { kind: 'redirect'; node: NodeInfo }
  /** Served here, in the owner's call extended to this node (src/cascade: the owner is full, or region affinity). */
  | { kind: 'extend'; owner: NodeInfo };

export interface JoinSituation {
  /** The node that received the join. */
  self: string;
  /** Whether this node is draining: it takes no new rooms, and its rooms move as their participants reconnect. */
  draining: boolean;
  /** Whether the room's call is open on this node now. */
  openHere: boolean;
  /** The node that holds the room's placement, if any and alive (a dead node's placement is taken over). */
  owner?: NodeInfo;
  /** The live nodes, with their last published load (this node included when it heartbeats). */
  live: NodeInfo[];
  /** Whether a room that `owner` serves extends to this node rather than sending the join there (src/cascade). */
  extendsHere?: (owner: NodeInfo) => boolean;
}

/**
 * The rule, in order:
 * 1. a room open or placed here is served here, unless this node drains;
 * 2. a room placed on another live node is served there, unless it extends here (the owner is full, or the tenant
 *    keeps media in its participants' regions: src/cascade) and this node does not drain;
 * 3. otherwise the room goes to the least-loaded live node that does not drain (see `lessLoaded`), this node on a
 *    tie. A draining node with no other node to send to serves the join itself (and refuses it, as it drains).
 *    A node silent for half its dead-after time (not `beating`) is not chosen: killed, it would get every new room,
 *    as the least loaded, until it is declared dead.
 */
export function decideJoin(s: JoinSituation): JoinDecision {
  if (s.openHere && !s.draining) return { kind: 'local' };
  // Placed here by a join being redirected here, or by one opening the room now.
  if (s.owner?.id === s.self && !s.draining) return { kind: 'local' };
  if (s.owner && s.owner.id !== s.self)
    return !s.draining && s.extendsHere?.(s.owner)
      ? { kind: 'extend', owner: s.owner }
      : { kind: 'redirect', node: s.owner };
  const candidates = s.live.filter(
    (n) => !n.draining && (n.beating || n.id === s.self) && !(s.draining && n.id === s.self),
  );
  let best: NodeInfo | undefined;
  for (const n of candidates) {
    const order = best ? lessLoaded(n, best) : -1;
    if (order < 0 || (order === 0 && n.id === s.self)) best = n;
  }
  return !best || best.id === s.self ? { kind: 'local' } : { kind: 'redirect', node: best };
}

/**
 * Compares two nodes' published load: consumers per worker first (what a
 * worker's CPU follows), then peers per worker, then worker CPU in steps of
 * a tenth of a core, so that the noise of idle workers does not decide. 0 is
 * a tie, which the node that received the join wins.
 */
export function lessLoaded(a: NodeInfo, b: NodeInfo): number {
  const perWorker = (n: NodeInfo, v: number) => v / Math.max(1, n.load.workers);
  return (
    perWorker(a, a.load.consumers) - perWorker(b, b.load.consumers) ||
    perWorker(a, a.load.peers) - perWorker(b, b.load.peers) ||
    Math.floor(a.load.cpu * 10) - Math.floor(b.load.cpu * 10)
  );
}

/** A node's signaling WebSocket URL, from the public URL it registered (http → ws, https → wss). */
export function signalingUrlOf(publicUrl: string): string {
  const url = new URL(publicUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/ws`;
  return url.toString();
}
