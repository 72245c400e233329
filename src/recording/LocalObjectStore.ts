import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { sha256File, writeFileAtomic } from '../files.js';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  IntegrityError,
  ObjectLockedError,
  type ObjectStore,
  type PutOptions,
  type StorageLocation,
  type StoredObject,
} from './ObjectStore.js';

interface Sidecar {
  size: number;
  sha256: string;
  contentType: string;
  retainUntil?: string;
  lockMode?: StoredObject['lockMode'];
  legalHold: boolean;
}

/**
 * Objects under a local directory, one folder per key, one file per version,
 * with a JSON sidecar for checksum, lock and legal hold. It enforces locks the
 * way S3 Object Lock does, so behaviour is the same on a laptop and in production.
 */
export class LocalObjectStore implements ObjectStore {
  readonly name = 'local';

  constructor(
    private readonly root: string,
    readonly location: StorageLocation,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  #paths(key: string, versionId: string) {
    if (key.split('/').some((p) => p === '..' || p === '') || !/^[A-Za-z0-9-]+$/.test(versionId))
      throw new Error('invalid object key or version');
    const dir = path.join(this.root, key);
    return { data: path.join(dir, `${versionId}.data`), meta: path.join(dir, `${versionId}.json`), dir };
  }

  /**
   * The SHA-256 kept in the sidecar is read back from the stored copy, never
   * taken from the caller; the sidecar (lock, legal hold) is written before the
   * version exists, and what a failed attempt left of this key is removed.
   */
  async put(key: string, file: string, o: PutOptions): Promise<{ versionId: string }> {
    const dir = this.#paths(key, randomUUID()).dir;
    await mkdir(dir, { recursive: true });
    const names = await readdir(dir);
    for (const name of names) {
      // Leftovers of an attempt that failed before its data file was in place: no version, no lock.
      if (name.endsWith('.tmp') || (name.endsWith('.json') && !names.includes(name.replace(/\.json$/, '.data'))))
        await rm(path.join(dir, name), { force: true });
    }
    for (const name of names.filter((n) => n.endsWith('.data'))) {
      const versionId = name.slice(0, -'.data'.length);
      const m = await this.#meta(key, versionId).catch(() => undefined);
      if (m?.sha256 !== o.sha256) continue;
      // A version adopted from an earlier attempt keeps its lock, raised to COMPLIANCE if the policy asks for it now.
      const raise = o.lock && (!m.lockMode || (m.lockMode === 'GOVERNANCE' && o.lock.mode === 'COMPLIANCE'));
      if (raise || (o.legalHold && !m.legalHold)) {
        const lock = raise ? { lockMode: o.lock!.mode, retainUntil: o.lock!.retainUntil.toISOString() } : {};
        await this.#writeMeta(this.#paths(key, versionId).meta, {
          ...m,
          ...lock,
          legalHold: m.legalHold || Boolean(o.legalHold),
        });
      }
      return { versionId };
    }
    const versionId = randomUUID();
    const p = this.#paths(key, versionId);
    await copyFile(file, `${p.data}.tmp`);
    const sha256 = await sha256File(`${p.data}.tmp`);
    if (sha256 !== o.sha256) {
      await rm(`${p.data}.tmp`, { force: true });
      throw new IntegrityError(`stored copy of ${key} hashes to ${sha256}, not to the claimed ${o.sha256}`);
    }
    const size = (await stat(`${p.data}.tmp`)).size;
    await this.#writeMeta(p.meta, {
      size,
      sha256,
      contentType: o.contentType,
      retainUntil: o.lock?.retainUntil.toISOString(),
      lockMode: o.lock?.mode,
      legalHold: o.legalHold ?? false,
    });
    await rename(`${p.data}.tmp`, p.data);
    return { versionId };
  }

  async stat(key: string, versionId: string): Promise<StoredObject> {
    const m = await this.#meta(key, versionId);
    return {
      key,
      versionId,
      size: m.size,
      sha256: m.sha256,
      retainUntil: m.retainUntil ? new Date(m.retainUntil) : undefined,
      lockMode: m.lockMode,
      legalHold: m.legalHold,
    };
  }

  async read(key: string, versionId: string, range?: { start: number; end: number }): Promise<Readable> {
    await this.#meta(key, versionId);
    return createReadStream(this.#paths(key, versionId).data, range ? { start: range.start, end: range.end } : {});
  }

  async presign(): Promise<string | undefined> {
    return undefined;
  }

  async remove(key: string, versionId: string, options: { bypassGovernance?: boolean } = {}): Promise<void> {
    const p = this.#paths(key, versionId);
    const m = await this.#meta(key, versionId).catch(async (err: { code?: string }) => {
      // A data file whose sidecar was never written (a put that died half way) has no lock: it goes.
      if (err.code === 'NoSuchVersion' && (await stat(p.data).catch(() => undefined))) return undefined;
      throw err;
    });
    if (!m) return rm(p.data, { force: true });
    if (m.legalHold) throw new ObjectLockedError('object is under legal hold');
    const locked = m.retainUntil && new Date(m.retainUntil) > new Date();
    if (locked && !(options.bypassGovernance && m.lockMode === 'GOVERNANCE'))
      throw new ObjectLockedError(`object is locked (${m.lockMode}) until ${m.retainUntil}`);
    await rm(p.data, { force: true });
    await rm(p.meta, { force: true });
  }

  async setLegalHold(key: string, versionId: string, on: boolean): Promise<void> {
    const m = await this.#meta(key, versionId);
    await this.#writeMeta(this.#paths(key, versionId).meta, { ...m, legalHold: on });
  }

  async versions(key: string): Promise<string[]> {
    const { dir } = this.#paths(key, 'x');
    const names = await readdir(dir).catch((err: NodeJS.ErrnoException) =>
      err.code === 'ENOENT' ? [] : Promise.reject(err),
    );
    // A data file without its sidecar (a put that died half way) is a version too.
    return [
      ...new Set(
        names.filter((n) => /^[A-Za-z0-9-]+\.(data|json)$/.test(n)).map((n) => n.replace(/\.(data|json)$/, '')),
      ),
    ];
  }

  async #meta(key: string, versionId: string): Promise<Sidecar> {
    try {
      return JSON.parse(await readFile(this.#paths(key, versionId).meta, 'utf8')) as Sidecar;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw Object.assign(new Error('no such object version'), { code: 'NoSuchVersion' });
      throw err;
    }
  }

  async #writeMeta(file: string, m: Sidecar): Promise<void> {
    await writeFileAtomic(file, JSON.stringify(m));
  }
}
