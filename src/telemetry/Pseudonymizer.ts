import { createHmac, hkdfSync } from 'node:crypto';

/**
 * Pseudonymous identities for stats and events: HMAC-SHA256 of the identity
 * with a key of the participant's tenant. Tenant keys are derived with HKDF
 * from one master secret, so two tenants never share a pseudonym space and the
 * clear identity lives only in the `participants` mapping table.
 */
export class Pseudonymizer {
  readonly #keys = new Map<string, Buffer>();

  constructor(private readonly masterSecret: string) {}

  #keyFor(tenant: string): Buffer {
    let key = this.#keys.get(tenant);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.masterSecret, 'vigie-pseudonym-v1', `tenant:${tenant}`, 32));
      this.#keys.set(tenant, key);
    }
    return key;
  }

  /** 128 bits, hex: enough to never collide within a tenant, short enough to index. */
  pseudonym(tenant: string, identity: string): string {
    return createHmac('sha256', this.#keyFor(tenant)).update(identity).digest('hex').slice(0, 32);
  }
}
