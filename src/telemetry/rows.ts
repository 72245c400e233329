import type { Peer, Room } from '../media/index.js';
import type { Logger } from '../logging.js';
import type { Pseudonymizer } from './Pseudonymizer.js';

/** The columns that say whose call a row belongs to. */
export interface CallKey {
  tenant: string;
  room: string;
  call_id: string;
  peer_id: string;
  participant: string;
  /** The node that wrote the row (config.node.id): one call's rows may come from several nodes. */
  node: string;
}

/** Builds call keys, computing each peer's pseudonym once. */
export class CallKeys {
  readonly #pseudonyms = new WeakMap<Peer, string>();

  constructor(
    readonly pseudonymizer: Pseudonymizer,
    private readonly log: Logger,
    readonly node: string,
  ) {}

  /**
   * The peer's pseudonym, without waiting: its salt was fetched or created
   * before the peer entered the room (the join hook). Only an erasure of this
   * very person between that and now leaves it missing; the row is then keyed
   * by no one rather than by a pseudonym the store does not hold, and the salt
   * is made again for the rows that follow.
   */
  participant(peer: Peer): string {
    let p = this.#pseudonyms.get(peer);
    if (!p) {
      p = this.pseudonymizer.cached(peer.claims.tenant, peer.identity);
      if (p === undefined) {
        this.log.warn({ peerId: peer.id }, 'pseudonym not prepared for a participant in a room; row left unkeyed');
        void this.pseudonymizer
          .pseudonym(peer.claims.tenant, peer.identity)
          .catch((err) => this.log.error({ err, peerId: peer.id }, 'pseudonym could not be prepared'));
        return '';
      }
      this.#pseudonyms.set(peer, p);
    }
    return p;
  }

  of(room: Room, peer?: Peer): CallKey {
    return {
      tenant: room.tenant,
      room: room.id,
      call_id: room.callId,
      peer_id: peer?.id ?? '',
      participant: peer ? this.participant(peer) : '',
      node: this.node,
    };
  }
}
