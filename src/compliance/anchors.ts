import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ObjectStore } from '../recording/ObjectStore.js';

/** A signed checkpoint: the chain's head `{tenant, seq, hash}` at `ts`, and the JWS over it. */
export interface SignedCheckpoint {
  tenant: string;
  seq: number;
  hash: string;
  ts: number;
  jws: string;
}

/**
 * A copy of every signed checkpoint kept outside ClickHouse, where whoever can
 * rewrite the audit tables cannot reach it: verification compares the chain
 * with these, so deleting the newest entries together with their checkpoint
 * rows is still seen.
 */
export interface CheckpointAnchors {
  /** Where the anchors are, for verification reports. */
  readonly where: string;
  /** Durable when it resolves. */
  append(cp: SignedCheckpoint): Promise<void>;
  list(tenant: string): Promise<SignedCheckpoint[]>;
}

/**
 * Anchors in an append-only file, one JSON line per checkpoint, fsynced before
 * `append` resolves (the local default). A torn last line (a crash mid-write)
 * is ignored; the checkpoint it held is signed again at the next one.
 */
export class FileAnchors implements CheckpointAnchors {
  constructor(private readonly file: string) {}

  get where(): string {
    return `file ${this.file}`;
  }

  async append(cp: SignedCheckpoint): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    const fh = await open(this.file, 'a', 0o600);
    try {
      await fh.write(`${JSON.stringify(cp)}\n`);
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  async list(tenant: string): Promise<SignedCheckpoint[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SignedCheckpoint[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const cp = JSON.parse(line) as SignedCheckpoint;
        if (cp.tenant === tenant) out.push(cp);
      } catch {
        // A torn line: nothing signed can be read from it.
      }
    }
    return out;
  }
}

/**
 * Anchors as objects in the recordings bucket, each under a COMPLIANCE Object
 * Lock: nobody, not even the bucket's owner, can delete or shorten it before
 * `retainDays` have passed. Listed by version, so a delete marker hides nothing.
 */
export class ObjectStoreAnchors implements CheckpointAnchors {
  constructor(
    private readonly store: ObjectStore & Required<Pick<ObjectStore, 'listVersions'>>,
    private readonly retainDays: number,
    private readonly prefix = 'audit-anchors',
  ) {}

  get where(): string {
    return `object store ${this.store.name} (${this.prefix}/, COMPLIANCE lock)`;
  }

  async append(cp: SignedCheckpoint): Promise<void> {
    const body = JSON.stringify(cp);
    const file = path.join(tmpdir(), `vigie-anchor-${process.pid}-${cp.tenant}-${cp.seq}.json`);
    await writeFile(file, body);
    try {
      await this.store.put(`${this.prefix}/${cp.tenant}/${String(cp.seq).padStart(20, '0')}.json`, file, {
        contentType: 'application/json',
        sha256: createHash('sha256').update(body).digest('hex'),
        lock: { mode: 'COMPLIANCE', retainUntil: new Date(Date.now() + this.retainDays * 86_400_000) },
      });
    } finally {
      await rm(file, { force: true });
    }
  }

  async list(tenant: string): Promise<SignedCheckpoint[]> {
    const out: SignedCheckpoint[] = [];
    for (const v of await this.store.listVersions(`${this.prefix}/${tenant}/`)) {
      const chunks: Buffer[] = [];
      for await (const c of await this.store.read(v.key, v.versionId)) chunks.push(c as Buffer);
      out.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as SignedCheckpoint);
    }
    return out;
  }
}
