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
  sha256: string;
  lock?: { mode: LockMode; retainUntil: Date };
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
}
