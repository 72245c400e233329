import type { Readable } from 'node:stream';

/** Where a storage target keeps data; compared with each tenant's allowed locations. */
export interface StorageLocation {
  /** ISO 3166-1 alpha-2, e.g. FR. */
  country: string;
  region: string;
  provider: string;
}

export type LockMode = 'GOVERNANCE' | 'COMPLIANCE';

export interface StoredObject {
  key: string;
  versionId: string;
  size: number;
  sha256?: string;
  retainUntil?: Date;
  lockMode?: LockMode;
  legalHold: boolean;
}

export interface PutOptions {
  contentType: string;
  /** SHA-256 (hex) of the file; the store refuses to keep bytes that do not hash to it. */
  sha256: string;
  lock?: { mode: LockMode; retainUntil: Date };
  /** Legal hold on the new version, set by the same request as the bytes (off when omitted). */
  legalHold?: boolean;
}

/** The store holds, or would hold, bytes other than the ones claimed: nothing was kept as a good version. */
export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntegrityError';
  }
}

/** Refused because of a retention lock or a legal hold: the object stays. */
export class ObjectLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ObjectLockedError';
  }
}

/**
 * An object store for recordings: S3 (MinIO in production, any S3 API) or a
 * local directory (the embedded default). Versioned, with retention locks and
 * legal holds enforced by the store itself.
 */
export interface ObjectStore {
  readonly name: string;
  readonly location: StorageLocation;
  init(): Promise<void>;
  /**
   * Stores `file` as a version of `key` whose bytes the store itself has
   * verified against `sha256`, with the lock and legal hold set on that same
   * version. Idempotent: when a verified version with these bytes already
   * exists (an earlier attempt whose answer was lost), that version is
   * returned and no other is written, so a retry never leaves an orphan.
   */
  put(key: string, file: string, options: PutOptions): Promise<{ versionId: string }>;
  stat(key: string, versionId: string): Promise<StoredObject>;
  read(key: string, versionId: string, range?: { start: number; end: number }): Promise<Readable>;
  /** A short-lived signed URL, or undefined when the store cannot sign (then stream through the gateway). */
  presign(key: string, versionId: string, ttlSeconds: number): Promise<string | undefined>;
  /** `bypassGovernance`: an erasure request may lift a GOVERNANCE lock; nothing lifts COMPLIANCE or a legal hold. */
  remove(key: string, versionId: string, options?: { bypassGovernance?: boolean }): Promise<void>;
  setLegalHold(key: string, versionId: string, on: boolean): Promise<void>;
  /** Every version stored under the key (delete markers included), catalogued or not: erasure removes them all. */
  versions(key: string): Promise<string[]>;

  // --- Audit anchors (src/compliance/anchors.ts) -------------------------------
  /**
   * Every stored version under `prefix`, including versions hidden behind a
   * delete marker. Stores that cannot list leave it out; audit anchors then
   * go to an append-only file instead.
   */
  listVersions?(prefix: string): Promise<Array<{ key: string; versionId: string }>>;
}
