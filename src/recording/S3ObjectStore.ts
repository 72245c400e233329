import type { Readable } from 'node:stream';
import * as Minio from 'minio';
import { ObjectLockedError, type ObjectStore, type PutOptions, type StorageLocation, type StoredObject } from './ObjectStore.js';

export interface S3Options {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
  /** none, SSE-S3 (AES256), or SSE-KMS with a key id. */
  sse: 'none' | 's3' | 'kms';
  kmsKeyId?: string;
}

/**
 * Recordings in an S3 bucket (MinIO in production) through the `minio` client:
 * a bucket with Object Lock (hence versioning), multipart uploads for large
 * files, server-side encryption, retention and legal hold per version.
 */
export class S3ObjectStore implements ObjectStore {
  readonly name: string;
  readonly #client: Minio.Client;

  constructor(
    private readonly o: S3Options,
    readonly location: StorageLocation,
  ) {
    const u = new URL(o.endpoint);
    this.#client = new Minio.Client({
      endPoint: u.hostname,
      port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
      useSSL: u.protocol === 'https:',
      accessKey: o.accessKey,
      secretKey: o.secretKey,
      region: o.region,
      pathStyle: true,
      // Files above 8 MiB go up in 8 MiB parts.
      partSize: 8 * 1024 * 1024,
    });
    this.name = `s3:${u.host}/${o.bucket}`;
  }

  async init(): Promise<void> {
    if (!(await this.#client.bucketExists(this.o.bucket))) {
      await this.#client.makeBucket(this.o.bucket, this.o.region, { ObjectLocking: true });
    }
  }

  #sseHeaders(): Record<string, string> {
    if (this.o.sse === 'kms') return { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': this.o.kmsKeyId ?? '' };
    if (this.o.sse === 's3') return { 'x-amz-server-side-encryption': 'AES256' };
    return {};
  }

  async put(key: string, file: string, o: PutOptions): Promise<{ versionId: string }> {
    const res = await this.#client.fPutObject(this.o.bucket, key, file, { 'Content-Type': o.contentType, 'x-amz-meta-sha256': o.sha256, ...this.#sseHeaders() });
    const versionId = res.versionId ?? '';
    if (!versionId) throw new Error(`bucket ${this.o.bucket} is not versioned: recordings need Object Lock`);
    if (o.lock) await this.#client.putObjectRetention(this.o.bucket, key, { versionId, mode: o.lock.mode as Minio.RETENTION_MODES, retainUntilDate: o.lock.retainUntil.toISOString() });
    return { versionId };
  }

  async stat(key: string, versionId: string): Promise<StoredObject> {
    const s = await this.#client.statObject(this.o.bucket, key, { versionId });
    const retention = (await this.#client.getObjectRetention(this.o.bucket, key, { versionId }).catch(() => undefined)) as { mode?: string; retainUntilDate?: string } | undefined;
    // minio-js returns { Status } despite its string type, and throws when no hold was ever set.
    const hold = (await this.#client.getObjectLegalHold(this.o.bucket, key, { versionId }).catch(() => undefined)) as unknown;
    const held = hold === 'ON' || (hold as { Status?: string } | undefined)?.Status === 'ON';
    return {
      key,
      versionId,
      size: s.size,
      sha256: (s.metaData as Record<string, string>)['sha256'],
      retainUntil: retention?.retainUntilDate ? new Date(retention.retainUntilDate) : undefined,
      lockMode: retention?.mode as StoredObject['lockMode'],
      legalHold: held,
    };
  }

  async read(key: string, versionId: string, range?: { start: number; end: number }): Promise<Readable> {
    return range ? this.#client.getPartialObject(this.o.bucket, key, range.start, range.end - range.start + 1, { versionId }) : this.#client.getObject(this.o.bucket, key, { versionId });
  }

  async presign(key: string, versionId: string, ttlSeconds: number): Promise<string> {
    return this.#client.presignedGetObject(this.o.bucket, key, ttlSeconds, { versionId });
  }

  async remove(key: string, versionId: string, options: { bypassGovernance?: boolean } = {}): Promise<void> {
    try {
      await this.#client.removeObject(this.o.bucket, key, { versionId, governanceBypass: options.bypassGovernance });
    } catch (err) {
      if ((err as { code?: string }).code === 'AccessDenied') throw new ObjectLockedError(`object version is locked or on legal hold (${(err as Error).message})`);
      throw err;
    }
  }

  async versions(key: string): Promise<string[]> {
    const out: string[] = [];
    for await (const o of this.#client.listObjects(this.o.bucket, key, false, { IncludeVersion: true }) as AsyncIterable<{ name?: string; versionId?: string | null }>) {
      if (o.name === key && o.versionId) out.push(o.versionId);
    }
    return out;
  }

  async setLegalHold(key: string, versionId: string, on: boolean): Promise<void> {
    await this.#client.setObjectLegalHold(this.o.bucket, key, { versionId, status: (on ? 'ON' : 'OFF') as Minio.LEGAL_HOLD_STATUS });
  }
}
