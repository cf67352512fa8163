/**
 * What every volume sink shares: one byte stream split into volumes of
 * `volumeSize` bytes (the last one smaller), each hashed as it is written and
 * entered in `volumes` once its sink has made it durable. Volumes are byte
 * ranges, not frame-aligned: `cat` of them in name order restores the stream.
 * A sink (a file on disk, an object in a bucket) says only how to open, write,
 * finish and discard one volume.
 */
import { createHash, type Hash } from 'node:crypto';
import { Writable } from 'node:stream';
import { ZferryError } from '../errors.js';
import { volumeFileName, type VolumeEntry } from './manifest.js';
import { testPause } from '../test-hook.js';
import type { BufferPool } from '../pipeline/buffer-pool.js';

/** Volume numbers have three digits. */
export const MAX_VOLUMES = 1000;

export interface SplitOptions {
  index: number;
  kind: 'full' | 'incremental';
  volumeSize: number;
  /** The bytes are age-encrypted: volumes are named `.zst.age.NNN`. */
  encrypted?: boolean;
  /** Chunks cut from this pool are given back once written (compress()'s output pool). */
  pool?: BufferPool;
}

interface OpenVolume<S> {
  file: string;
  sink: S;
  hash: Hash;
  bytes: number;
}

export abstract class VolumeSplitter<S> extends Writable {
  /** Entries of the closed volumes, in order; complete after 'finish'. */
  readonly volumes: VolumeEntry[] = [];
  private current: OpenVolume<S> | null = null;

  constructor(protected readonly split: SplitOptions) {
    super({ highWaterMark: 1 << 20 });
    if (!Number.isSafeInteger(split.volumeSize) || split.volumeSize < 1) throw new RangeError(`volumeSize must be a positive integer, got ${split.volumeSize}`);
  }

  /** Opens volume `n` under its file name (`streams/…`). */
  protected abstract openVolume(file: string, n: number): Promise<S>;
  /** Writes `part` whole, `offset` bytes into the volume; resolves when the sink can take more. */
  protected abstract writeVolume(sink: S, part: Buffer, file: string, offset: number): Promise<void>;
  /** Makes the volume durable (fsync, upload completed) and lets go of it. */
  protected abstract finishVolume(sink: S, file: string): Promise<void>;
  /** Lets go of a volume that will never be finished; must not throw. */
  protected abstract discardVolume(sink: S): Promise<void>;
  /** Called after each write with the volume's size before and after it (test hook points). */
  protected async wrote(_before: number, _after: number): Promise<void> {}

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => {
      // Every part of it is written (a chunk may span two volumes): its buffer may be filled again.
      this.split.pool?.release(chunk);
      done();
    }, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.closeCurrent().then(() => done(), done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const cur = this.current;
    this.current = null;
    if (!cur) return done(err);
    this.discardVolume(cur.sink).then(() => done(err), () => done(err));
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    while (chunk.length > 0) {
      const vol = this.current ?? (await this.openNext());
      const n = Math.min(chunk.length, this.split.volumeSize - vol.bytes);
      const part = chunk.subarray(0, n);
      await this.writeVolume(vol.sink, part, vol.file, vol.bytes);
      vol.hash.update(part);
      vol.bytes += n;
      chunk = chunk.subarray(n);
      await this.wrote(vol.bytes - n, vol.bytes);
      if (vol.bytes === this.split.volumeSize) await this.closeCurrent();
    }
  }

  private async openNext(): Promise<OpenVolume<S>> {
    const n = this.volumes.length;
    if (n >= MAX_VOLUMES) {
      throw new ZferryError(`stream ${this.split.index} needs more than ${MAX_VOLUMES} volumes of ${this.split.volumeSize} bytes: choose a larger volume size`);
    }
    const file = volumeFileName(this.split.index, this.split.kind, n, this.split.encrypted);
    this.current = { file, sink: await this.openVolume(file, n), hash: createHash('sha256'), bytes: 0 };
    return this.current;
  }

  private async closeCurrent(): Promise<void> {
    const vol = this.current;
    if (!vol) return;
    this.current = null;
    try {
      await this.finishVolume(vol.sink, vol.file);
    } catch (err) {
      await this.discardVolume(vol.sink);
      throw err;
    }
    this.volumes.push({ file: vol.file, bytes: vol.bytes, sha256: vol.hash.digest('hex') });
    if (this.volumes.length === 1) await testPause(`export:stream:${this.split.index}`);
  }
}
