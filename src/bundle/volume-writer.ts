/**
 * Splits one byte stream into volume files of `volumeSize` bytes (the last
 * one smaller), hashing each, fsyncing each on close. Volumes are byte ranges,
 * not frame-aligned: `cat` of them in name order restores the stream.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ZferryError } from '../errors.js';
import { volumeFileName, type VolumeEntry } from './manifest.js';
import { fileError } from '../fs/errors.js';
import { createExclusive, ensureFolder } from '../fs/safe.js';
import { testPause } from '../test-hook.js';

/** Volume numbers have three digits. */
export const MAX_VOLUMES = 1000;

export interface VolumeWriterOptions {
  /** Bundle folder; files go to `dir/streams/`. */
  dir: string;
  index: number;
  kind: 'full' | 'incremental';
  volumeSize: number;
  /** The bytes are age-encrypted: volumes are named `.zst.age.NNN`. */
  encrypted?: boolean;
}

interface OpenVolume {
  file: string;
  fh: FileHandle;
  hash: Hash;
  bytes: number;
}

export class VolumeWriter extends Writable {
  /** Entries of the closed volumes, in order; complete after 'finish'. */
  readonly volumes: VolumeEntry[] = [];
  private current: OpenVolume | null = null;

  constructor(private readonly opts: VolumeWriterOptions) {
    super({ highWaterMark: 1 << 20 });
    if (!Number.isSafeInteger(opts.volumeSize) || opts.volumeSize < 1) throw new RangeError(`volumeSize must be a positive integer, got ${opts.volumeSize}`);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.closeCurrent().then(() => done(), done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const cur = this.current;
    this.current = null;
    if (!cur) return done(err);
    cur.fh.close().then(() => done(err), () => done(err));
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    while (chunk.length > 0) {
      const vol = this.current ?? (await this.openNext());
      const n = Math.min(chunk.length, this.opts.volumeSize - vol.bytes);
      const part = chunk.subarray(0, n);
      await this.writeAll(vol, part);
      vol.hash.update(part);
      vol.bytes += n;
      chunk = chunk.subarray(n);
      if (vol.bytes === this.opts.volumeSize) await this.closeCurrent();
    }
  }

  private async writeAll(vol: OpenVolume, buf: Buffer): Promise<void> {
    let off = 0;
    try {
      while (off < buf.length) {
        const { bytesWritten } = await vol.fh.write(buf, off, buf.length - off);
        off += bytesWritten;
      }
    } catch (err) {
      throw fileError(err, 'writing', join(this.opts.dir, vol.file), vol.bytes + off);
    }
  }

  private async openNext(): Promise<OpenVolume> {
    const n = this.volumes.length;
    if (n >= MAX_VOLUMES) {
      throw new ZferryError(`stream ${this.opts.index} needs more than ${MAX_VOLUMES} volumes of ${this.opts.volumeSize} bytes: choose a larger volume size`);
    }
    const file = volumeFileName(this.opts.index, this.opts.kind, n, this.opts.encrypted);
    const path = join(this.opts.dir, file);
    try {
      if (n === 0) {
        // The bundle folder is its maker's (export makes it fresh); streams/ in it must be a real folder.
        await mkdir(this.opts.dir, { recursive: true });
        await ensureFolder(join(this.opts.dir, 'streams'));
      }
      const fh = await createExclusive(path);
      this.current = { file, fh, hash: createHash('sha256'), bytes: 0 };
      return this.current;
    } catch (err) {
      throw fileError(err, 'creating', path);
    }
  }

  private async closeCurrent(): Promise<void> {
    const vol = this.current;
    if (!vol) return;
    this.current = null;
    const path = join(this.opts.dir, vol.file);
    try {
      await vol.fh.sync();
    } catch (err) {
      await vol.fh.close().catch(() => undefined);
      throw fileError(err, 'flushing', path);
    }
    try {
      await vol.fh.close();
    } catch (err) {
      throw fileError(err, 'closing', path);
    }
    this.volumes.push({ file: vol.file, bytes: vol.bytes, sha256: vol.hash.digest('hex') });
    if (this.volumes.length === 1) await testPause(`export:stream:${this.opts.index}`);
  }
}
