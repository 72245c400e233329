import { randomUUID } from 'node:crypto';
import { VigieError } from '../errors.js';
import type { Room, RoomDirectory, Sfu } from '../media/index.js';
import { decideJoin, type NodeInfo, type NodeRegistry, signalingUrlOf } from '../nodes/index.js';

export interface RoutingContext {
  sfu: Sfu;
  rooms: RoomDirectory;
  registry: NodeRegistry;
  draining: boolean;
}

/**
 * Sends a join to the node that serves its room, before the room opens:
 * returns when it is served here, or throws REDIRECT naming the node to join
 * instead. A room this node sends elsewhere is placed there at once, so that
 * every node sends its later joins to the same node (with a call id that the
 * room's own replaces when it opens there). A room served here is placed as it
 * opens; confirmPlacement then checks that no other node won it meanwhile. A
 * join into a room open here needs no round trip to the control plane.
 */
export async function routeJoin(ctx: RoutingContext, tenant: string, room: string): Promise<void> {
  const open = ctx.sfu.getRoom(tenant, room);
  const openHere = open !== undefined && !open.closed;
  if (openHere && !ctx.draining) return;
  const self = ctx.registry.id;
  const [placement, live] = await Promise.all([ctx.rooms.placement(tenant, room), ctx.registry.liveNodes()]);
  // A placement on a dead node is not an owner: the room is placed again, and taken over where it opens.
  const owner = placement && live.find((n) => n.id === placement.nodeId);
  const decision = decideJoin({ self, draining: ctx.draining, openHere, owner, live });
  // Here; or, draining with no node to send the join to, refused as the drain says (UNAVAILABLE).
  if (decision.kind === 'local') return;
  let target = decision.node;
  if (owner?.id !== target.id) {
    const { placed, placement: won } = await ctx.rooms.place(tenant, room, randomUUID(), target.id);
    if (!placed) {
      const winner = won.nodeId === self ? undefined : await liveNode(ctx, won.nodeId);
      if (!winner) return;
      target = winner;
    }
  }
  throw redirectTo(target);
}

/**
 * After a room opened here for a join: when two nodes opened it at once, the
 * one whose placement won serves it, and this join is sent there.
 */
export async function confirmPlacement(ctx: RoutingContext, room: Room): Promise<void> {
  const placement = await ctx.rooms.placedWhere(room);
  if (!placement || placement.nodeId === ctx.registry.id) return;
  const winner = await liveNode(ctx, placement.nodeId);
  if (winner) throw redirectTo(winner);
}

async function liveNode(ctx: RoutingContext, id: string): Promise<NodeInfo | undefined> {
  return (await ctx.registry.liveNodes()).find((n) => n.id === id);
}

export function redirectTo(node: NodeInfo): VigieError {
  return new VigieError('REDIRECT', `this room is served by node ${node.id}; join there`, {
    nodeId: node.id,
    url: signalingUrlOf(node.publicUrl),
  });
}

/**
 * The signaling URLs of the other live nodes that take rooms, as this node last read the registry: the SDK rejoins
 * through them when this node is gone. Read without a round trip (the registry refreshes it at each heartbeat).
 */
export function otherNodesUrls(registry: NodeRegistry): string[] {
  return registry
    .lastLive()
    .filter((n) => n.id !== registry.id && !n.draining)
    .map((n) => signalingUrlOf(n.publicUrl));
}
