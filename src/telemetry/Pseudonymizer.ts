import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { readJsonLines, writeFileAtomicSync } from '../files.js';

/**
 * One random salt per data subject, in an fsynced JSON Lines file
 * (DATA_DIR/secrets/subject-salts.jsonl, 0600), found by a lookup key (an HMAC
 * of the identity). Erasure removes the subject's salt and rewrites the file
 * without it: from then on the identity no longer leads to the pseudonym.
 */
class SubjectSalts {
  readonly #salts = new Map<string, string>();

  constructor(private readonly file?: string) {
    if (!file) return;
    // A torn last line is skipped: that salt was never used (its append did not return).
    for (const e of readJsonLines<{ k: string; s?: string }>(file)) {
      if (e.s) this.#salts.set(e.k, e.s);
      else this.#salts.delete(e.k);
    }
  }

  get(key: string): string | undefined {
    return this.#salts.get(key);
  }

  /** Durable before it is returned: a pseudonym is never written with a salt a crash could lose. */
  create(key: string): string {
    const salt = randomBytes(16).toString('base64url');
    if (this.file) {
      mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      const fd = openSync(this.file, 'a', 0o600);
      try {
        appendFileSync(fd, `${JSON.stringify({ k: key, s: salt })}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    this.#salts.set(key, salt);
    return salt;
  }

  erase(key: string): boolean {
    if (!this.#salts.delete(key)) return false;
    // Rewritten whole: an appended tombstone would leave the salt in the file.
    if (this.file)
      writeFileAtomicSync(this.file, [...this.#salts].map(([k, s]) => `${JSON.stringify({ k, s })}\n`).join(''), {
        mode: 0o600,
      });
    return true;
  }
}

/**
 * Pseudonymous identities for stats, events, recordings and the audit trail:
 * HMAC-SHA256, with a key of the participant's tenant, of a random salt of
 * that person and the identity. Tenant keys are derived with HKDF from one
 * master secret, so two tenants never share a pseudonym space; the clear
 * identity lives only in the `participants` mapping table. Because of the
 * salt, knowing the identity and the secret is not enough to find a person's
 * rows: once erasure destroys the salt (`forget`), what is kept (the audit
 * trail, records of requests) can no longer be linked back to the person.
 */
export class Pseudonymizer {
  readonly #keys = new Map<string, Buffer>();
  readonly #salts: SubjectSalts;

  /** `saltsFile`: where the per-subject salts are kept; in memory only without it. */
  constructor(
    private readonly masterSecret: string,
    saltsFile?: string,
  ) {
    this.#salts = new SubjectSalts(saltsFile);
  }

  #keyFor(tenant: string): Buffer {
    let key = this.#keys.get(tenant);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.masterSecret, 'vigie-pseudonym-v1', `tenant:${tenant}`, 32));
      this.#keys.set(tenant, key);
    }
    return key;
  }

  #lookup(tenant: string, identity: string): string {
    return createHmac('sha256', this.#keyFor(tenant)).update(`salt-lookup\0${identity}`).digest('hex');
  }

  #hash(tenant: string, salt: string, identity: string): string {
    return createHmac('sha256', this.#keyFor(tenant)).update(`${salt}\0${identity}`).digest('hex').slice(0, 32);
  }

  /**
   * The subject's pseudonym, creating their salt on first use. 128 bits, hex: enough to never collide within a tenant,
   * short enough to index.
   */
  pseudonym(tenant: string, identity: string): string {
    const key = this.#lookup(tenant, identity);
    return this.#hash(tenant, this.#salts.get(key) ?? this.#salts.create(key), identity);
  }

  /** The subject's pseudonym if they have one (data-subject requests must not create one). */
  existing(tenant: string, identity: string): string | undefined {
    const salt = this.#salts.get(this.#lookup(tenant, identity));
    return salt === undefined ? undefined : this.#hash(tenant, salt, identity);
  }

  /** Destroys the subject's salt (erasure). A later call of `pseudonym` gives a new, unrelated pseudonym. */
  forget(tenant: string, identity: string): boolean {
    return this.#salts.erase(this.#lookup(tenant, identity));
  }
}
