import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import * as Minio from 'minio';
import {
  IntegrityError,
  ObjectLockedError,
  type ObjectStore,
  type PutOptions,
  type StorageLocation,
  type StoredObject,
} from './ObjectStore.js';

const PART_SIZE = 8 * 1024 * 1024;

interface Part {
  offset: number;
  length: number;
  md5: Buffer;
  sha256: Buffer;
}

/** One entry of a versioned listing, as the minio client gives it. */
interface ListedVersion {
  name?: string;
  versionId?: string | null;
  size?: number;
  isDeleteMarker?: boolean;
  lastModified?: Date;
}

/** What the bytes of a file are, part by part, before anything is sent. */
interface Plan {
  size: number;
  sha256: string;
  parts: Part[];
  /** The ETag an S3 server computes from these bytes: MD5, or MD5 of the part MD5s and "-N" for multipart. */
  etag: string;
  /** The x-amz-checksum-sha256 it reports: the SHA-256, or SHA-256 of the part SHA-256s and "-N" for multipart. */
  checksum: string;
}

async function planUpload(file: string): Promise<Plan> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const whole = createHash('sha256');
    const parts: Part[] = [];
    for (let offset = 0; offset < size || parts.length === 0; offset += PART_SIZE) {
      const buf = await readPart(fh, offset, Math.min(PART_SIZE, size - offset));
      whole.update(buf);
      parts.push({
        offset,
        length: buf.length,
        md5: createHash('md5').update(buf).digest(),
        sha256: createHash('sha256').update(buf).digest(),
      });
    }
    const multipart = parts.length > 1;
    const composite = (alg: 'md5' | 'sha256', enc: 'hex' | 'base64') =>
      `${createHash(alg)
        .update(Buffer.concat(parts.map((p) => p[alg])))
        .digest(enc)}-${parts.length}`;
    return {
      size,
      sha256: whole.digest('hex'),
      parts,
      etag: multipart ? composite('md5', 'hex') : parts[0]!.md5.toString('hex'),
      checksum: multipart ? composite('sha256', 'base64') : parts[0]!.sha256.toString('base64'),
    };
  } finally {
    await fh.close();
  }
}

async function readPart(fh: Awaited<ReturnType<typeof open>>, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  if (bytesRead !== length)
    throw new IntegrityError(`file shrank while being uploaded (${bytesRead} of ${length} bytes at ${offset})`);
  return buf;
}

/** Per-request integrity headers: the server refuses a body that does not match them. */
function integrityHeaders(p: Pick<Part, 'md5' | 'sha256'>): Record<string, string> {
  // Content-MD5 is what Object Lock buckets require on AWS and what radosgw 16.2 verifies;
  // x-amz-checksum-sha256 is verified by AWS and newer servers (radosgw 16.2 ignores it).
  return { 'Content-MD5': p.md5.toString('base64'), 'x-amz-checksum-sha256': p.sha256.toString('base64') };
}

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
      // The client's own retry would repeat a PUT whose first answer was lost and write a
      // second version behind put()'s back; put() retries itself, idempotently.
      retryOptions: { disableRetry: true },
    });
    this.name = `s3:${u.host}/${o.bucket}`;
  }

  async init(): Promise<void> {
    if (!(await this.#client.bucketExists(this.o.bucket))) {
      await this.#client.makeBucket(this.o.bucket, this.o.region, { ObjectLocking: true });
    }
  }

  #sseHeaders(): Record<string, string> {
    if (this.o.sse === 'kms')
      return {
        'x-amz-server-side-encryption': 'aws:kms',
        'x-amz-server-side-encryption-aws-kms-key-id': this.o.kmsKeyId ?? '',
      };
    if (this.o.sse === 's3') return { 'x-amz-server-side-encryption': 'AES256' };
    return {};
  }

  /**
   * One request carries the bytes, their checksums, the Object Lock retention
   * and the legal hold (multipart: the create request carries the lock, and each
   * part its checksums). Then a HEAD of the version checks what the server
   * computed from the bytes it holds (ETag, and the SHA-256 checksum when the
   * server keeps one) against what was computed here from the file.
   */
  async put(key: string, file: string, o: PutOptions): Promise<{ versionId: string }> {
    const plan = await planUpload(file);
    if (plan.sha256 !== o.sha256)
      throw new IntegrityError(`${file} hashes to ${plan.sha256}, not to the claimed ${o.sha256}`);
    const existing = await this.#existingVersion(key, plan);
    const versionId = existing ?? (await this.#upload(key, file, plan, o));
    try {
      await this.#verify(key, versionId, plan, o);
    } catch (err) {
      if (existing || !(err instanceof IntegrityError)) throw err;
      // The server kept bytes other than the file's despite the checks: that version must not
      // stay behind as an orphan. A COMPLIANCE lock cannot be lifted; the error then names it.
      const left = await this.remove(key, versionId, { bypassGovernance: true }).then(
        () => '',
        (e: Error) => ` It could not be removed and is left in the bucket: ${e.message}`,
      );
      throw new IntegrityError(`${err.message}.${left}`);
    }
    return { versionId };
  }

  /** A version of `key` already holding these bytes: an earlier attempt that succeeded on the server. */
  async #existingVersion(key: string, plan: Plan): Promise<string | undefined> {
    const found: { versionId: string; lastModified: Date }[] = [];
    for await (const v of this.#versionListing(key, false)) {
      if (v.name !== key || v.isDeleteMarker || !v.versionId || v.size !== plan.size) continue;
      const head = await this.#head(key, v.versionId);
      if (head['x-amz-meta-sha256'] === plan.sha256 && this.#bytesMatch(head, plan))
        found.push({ versionId: v.versionId, lastModified: v.lastModified ?? new Date(0) });
    }
    found.sort((a, b) => b.lastModified.getTime() - a.lastModified.getTime());
    return found[0]?.versionId;
  }

  async #upload(key: string, file: string, plan: Plan, o: PutOptions): Promise<string> {
    const headers: Record<string, string> = {
      'Content-Type': o.contentType,
      'x-amz-meta-sha256': plan.sha256,
      ...this.#sseHeaders(),
    };
    if (o.lock) {
      headers['x-amz-object-lock-mode'] = o.lock.mode;
      headers['x-amz-object-lock-retain-until-date'] = o.lock.retainUntil.toISOString();
    }
    headers['x-amz-object-lock-legal-hold'] = o.legalHold ? 'ON' : 'OFF';
    const fh = await open(file, 'r');
    try {
      if (plan.parts.length === 1) {
        const body = await readPart(fh, 0, plan.size);
        const res = await this.#client.makeRequestAsync(
          {
            method: 'PUT',
            bucketName: this.o.bucket,
            objectName: key,
            headers: { ...headers, ...integrityHeaders(plan.parts[0]!) },
          },
          body,
          [200],
        );
        res.resume();
        return this.#versionOf(res.headers);
      }
      // An upload left open by a crashed attempt holds parts nobody completes: abort it first.
      for (
        let id = await this.#client.findUploadId(this.o.bucket, key), n = 0;
        id && n < 100;
        id = await this.#client.findUploadId(this.o.bucket, key), n++
      ) {
        await this.#client.abortMultipartUpload(this.o.bucket, key, id);
      }
      const uploadId = await this.#client.initiateNewMultipartUpload(this.o.bucket, key, {
        ...headers,
        'x-amz-checksum-algorithm': 'SHA256',
      });
      try {
        const done: string[] = [];
        for (const [i, part] of plan.parts.entries()) {
          const body = await readPart(fh, part.offset, part.length);
          const query = `partNumber=${i + 1}&uploadId=${encodeURIComponent(uploadId)}`;
          const res = await this.#client.makeRequestAsync(
            { method: 'PUT', bucketName: this.o.bucket, objectName: key, query, headers: integrityHeaders(part) },
            body,
            [200],
          );
          res.resume();
          done.push(
            `<Part><PartNumber>${i + 1}</PartNumber><ETag>${res.headers.etag ?? ''}</ETag>` +
              `<ChecksumSHA256>${part.sha256.toString('base64')}</ChecksumSHA256></Part>`,
          );
        }
        const xml =
          '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
          `${done.join('')}</CompleteMultipartUpload>`;
        const res = await this.#client.makeRequestAsync(
          {
            method: 'POST',
            bucketName: this.o.bucket,
            objectName: key,
            query: `uploadId=${encodeURIComponent(uploadId)}`,
            headers: {},
          },
          xml,
          [200],
        );
        let answer = '';
        for await (const chunk of res) answer += String(chunk);
        // S3 may answer 200 and put the failure in the body.
        if (/<Error>/.test(answer)) throw new Error(`completing the multipart upload failed: ${answer.slice(0, 300)}`);
        return this.#versionOf(res.headers);
      } catch (err) {
        await this.#client.abortMultipartUpload(this.o.bucket, key, uploadId).catch(() => undefined);
        throw err;
      }
    } finally {
      await fh.close();
    }
  }

  #versionOf(headers: IncomingHttpHeaders): string {
    const versionId = headers['x-amz-version-id'];
    if (typeof versionId !== 'string' || !versionId)
      throw new Error(`bucket ${this.o.bucket} is not versioned: recordings need Object Lock`);
    return versionId;
  }

  async #head(key: string, versionId: string): Promise<IncomingHttpHeaders> {
    const res = await this.#client.makeRequestAsync(
      {
        method: 'HEAD',
        bucketName: this.o.bucket,
        objectName: key,
        query: `versionId=${encodeURIComponent(versionId)}`,
        headers: { 'x-amz-checksum-mode': 'ENABLED' },
      },
      '',
      [200],
    );
    res.resume();
    return res.headers;
  }

  /**
   * Whether what the server computed from the bytes it holds matches the file.
   * At least one server-computed value must be there to compare: an MD5 ETag
   * (not one under SSE-KMS on AWS) or a SHA-256 checksum.
   */
  #bytesMatch(head: IncomingHttpHeaders, plan: Plan): boolean {
    if (Number(head['content-length']) !== plan.size) return false;
    const etag = String(head.etag ?? '').replace(/"/g, '');
    const checksum = head['x-amz-checksum-sha256'];
    const md5Etag = /^[0-9a-f]{32}(-\d+)?$/.test(etag);
    if (!md5Etag && typeof checksum !== 'string') return false;
    return (!md5Etag || etag === plan.etag) && (typeof checksum !== 'string' || checksum === plan.checksum);
  }

  async #verify(key: string, versionId: string, plan: Plan, o: PutOptions): Promise<void> {
    const head = await this.#head(key, versionId);
    if (!this.#bytesMatch(head, plan)) {
      throw new IntegrityError(
        `stored version ${versionId} of ${key} does not match the file: ${head['content-length']} bytes, ETag ` +
          `${head.etag}, checksum ${head['x-amz-checksum-sha256'] ?? 'none'}; expected ${plan.size} bytes, ETag ` +
          `${plan.etag}, checksum ${plan.checksum}`,
      );
    }
    // Some servers ignore the lock headers of a multipart create (radosgw 16.2, measured):
    // then the lock goes on this same version, never on a new upload.
    // A version adopted from an earlier attempt keeps its lock, raised to COMPLIANCE if the policy asks for it now.
    const mode = head['x-amz-object-lock-mode'];
    if (o.lock && (!mode || (mode === 'GOVERNANCE' && o.lock.mode === 'COMPLIANCE'))) {
      await this.#client.putObjectRetention(this.o.bucket, key, {
        versionId,
        mode: o.lock.mode as Minio.RETENTION_MODES,
        retainUntilDate: o.lock.retainUntil.toISOString(),
      });
    }
    if (o.legalHold && head['x-amz-object-lock-legal-hold'] !== 'ON') await this.setLegalHold(key, versionId, true);
  }

  async stat(key: string, versionId: string): Promise<StoredObject> {
    const s = await this.#client.statObject(this.o.bucket, key, { versionId });
    const retention = (await this.#client
      .getObjectRetention(this.o.bucket, key, { versionId })
      .catch(() => undefined)) as { mode?: string; retainUntilDate?: string } | undefined;
    // minio-js returns { Status } despite its string type, and throws when no hold was ever set.
    const hold = (await this.#client
      .getObjectLegalHold(this.o.bucket, key, { versionId })
      .catch(() => undefined)) as unknown;
    const held = hold === 'ON' || (hold as { Status?: string } | undefined)?.Status === 'ON';
    return {
      key,
      versionId,
      size: s.size,
      sha256: (s.metaData as Record<string, string>).sha256,
      retainUntil: retention?.retainUntilDate ? new Date(retention.retainUntilDate) : undefined,
      lockMode: retention?.mode as StoredObject['lockMode'],
      legalHold: held,
    };
  }

  async read(key: string, versionId: string, range?: { start: number; end: number }): Promise<Readable> {
    return range
      ? this.#client.getPartialObject(this.o.bucket, key, range.start, range.end - range.start + 1, { versionId })
      : this.#client.getObject(this.o.bucket, key, { versionId });
  }

  async presign(key: string, versionId: string, ttlSeconds: number): Promise<string> {
    return this.#client.presignedGetObject(this.o.bucket, key, ttlSeconds, { versionId });
  }

  async remove(key: string, versionId: string, options: { bypassGovernance?: boolean } = {}): Promise<void> {
    try {
      await this.#client.removeObject(this.o.bucket, key, { versionId, governanceBypass: options.bypassGovernance });
    } catch (err) {
      if ((err as { code?: string }).code === 'AccessDenied')
        throw new ObjectLockedError(`object version is locked or on legal hold (${(err as Error).message})`);
      throw err;
    }
  }

  async versions(key: string): Promise<string[]> {
    const out: string[] = [];
    for await (const o of this.#versionListing(key, false)) {
      if (o.name === key && o.versionId) out.push(o.versionId);
    }
    return out;
  }

  async setLegalHold(key: string, versionId: string, on: boolean): Promise<void> {
    await this.#client.setObjectLegalHold(this.o.bucket, key, {
      versionId,
      status: (on ? 'ON' : 'OFF') as Minio.LEGAL_HOLD_STATUS,
    });
  }

  // --- Audit anchors (ObjectStore.listVersions) ---------------------------------
  async listVersions(prefix: string): Promise<Array<{ key: string; versionId: string }>> {
    const out: Array<{ key: string; versionId: string }> = [];
    for await (const item of this.#versionListing(prefix, true)) {
      if (item.name && item.versionId && !item.isDeleteMarker) out.push({ key: item.name, versionId: item.versionId });
    }
    return out;
  }

  /** Every version (delete markers included) of the keys under `prefix`; `recursive` goes below the next "/". */
  #versionListing(prefix: string, recursive: boolean): AsyncIterable<ListedVersion> {
    return this.#client.listObjects(this.o.bucket, prefix, recursive, {
      IncludeVersion: true,
    }) as AsyncIterable<ListedVersion>;
  }
}
