import type { NodeInfo } from '../nodes/index.js';

/** Why a join that reached this node for a room another node holds is served here, by extending the room. */
export type ExtendReason = 'owner-full' | 'region-affinity';

export interface ExtendInput {
  /** This node. */
  self: { id: string; region: string };
  /** The node that holds the room's placement, as the registry shows it; undefined when it is not registered. */
  owner: NodeInfo | undefined;
  /** The tenant's `regionAffinity`. */
  regionAffinity: boolean;
  /** `nodes.consumerCapacity`: consumers a node carries before it counts as full; 0 for no limit. */
  consumerCapacity: number;
}

/**
 * Whether this node extends the room instead of leaving the join to the owner: only when the owner is another,
 * live, not draining node, and either it is full or the tenant keeps media in its participants' regions and the
 * owner is in another region than this node. Undefined otherwise: a dead owner's room is taken over here, and a
 * live owner with room to spare serves the join (placement and redirects decide how it gets there).
 */
export function shouldExtend({ self, owner, regionAffinity, consumerCapacity }: ExtendInput): ExtendReason | undefined {
  if (!owner || owner.id === self.id || !owner.alive || owner.draining) return undefined;
  if (consumerCapacity > 0 && owner.load.consumers >= consumerCapacity) return 'owner-full';
  if (regionAffinity && owner.region !== self.region) return 'region-affinity';
  return undefined;
}
