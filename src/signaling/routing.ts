import { randomUUID } from 'node:crypto';
import { VigieError } from '../errors.js';
import type { RoomDirectory, Sfu } from '../media/index.js';
import { decideJoin, type NodeInfo, type NodeRegistry, signalingUrlOf } from '../nodes/index.js';

export interface RoutingContext {
  sfu: Sfu;
  rooms: RoomDirectory;
  registry: NodeRegistry;
  draining: boolean;
}

/**
 * Sends a join to the node that serves its room, before the room opens:
 * returns when it is served here (the placement is claimed for this node
 * first, so two nodes that both chose themselves do not open one room twice),
 * or throws REDIRECT naming the node to join instead. A room this node sends
 * elsewhere is placed there at once, so that every node sends its later joins
 * to the same node. A join into a room open here needs no round trip to the
 * control plane.
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
  // Draining with no node to send the join to: the join is refused as the drain says (UNAVAILABLE).
  if (decision.kind === 'local' && (openHere || ctx.draining)) return;
  const target = decision.kind === 'redirect' ? decision.node : undefined;
  let serving = target?.id ?? self;
  if (owner?.id !== serving) {
    // Claimed now for the chosen node (here: before the room opens). The room's own call id replaces this one when
    // it opens (RoomDirectory.follow).
    const { placed, placement: won } = await ctx.rooms.place(tenant, room, randomUUID(), serving);
    if (!placed) serving = won.nodeId;
  }
  if (serving === self) return;
  const node = serving === target?.id ? target : (await ctx.registry.liveNodes()).find((n) => n.id === serving);
  if (!node) throw new VigieError('UNAVAILABLE', 'the node serving this room just went away; join again in a moment');
  throw redirectTo(node);
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
