import type { Peer, Room } from '../media/index.js';
import type { Pseudonymizer } from './Pseudonymizer.js';

/** The columns that say whose call a row belongs to. */
export interface CallKey {
  tenant: string;
  room: string;
  call_id: string;
  peer_id: string;
  participant: string;
}

/** Builds call keys, computing each peer's pseudonym once. */
export class CallKeys {
  readonly #pseudonyms = new WeakMap<Peer, string>();

  constructor(readonly pseudonymizer: Pseudonymizer) {}

  participant(peer: Peer): string {
    let p = this.#pseudonyms.get(peer);
    if (!p) {
      p = this.pseudonymizer.pseudonym(peer.claims.tenant, peer.identity);
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
    };
  }
}
