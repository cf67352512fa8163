/**
 * VolumeWriter's twin for a bundle in a bucket: the same volumes (names,
 * sizes, sha256), each streamed into its object by multipart upload as the
 * bytes come, with no local copy. Backpressure: a chunk is taken only once
 * the upload has room for it.
 */
import { createHash, type Hash } from 'node:crypto';
import { Writable } from 'node:stream';
import { once } from 'node:events';
import { ZferryError } from '../errors.js';
import { volumeFileName, type VolumeEntry } from './manifest.js';
import { MAX_VOLUMES } from './volume-writer.js';
import { PART_SIZE, uploadObject, urlOf, type ObjectUpload, type S3Place } from '../store/s3.js';
import { testPause } from '../test-hook.js';

export interface VolumeUploaderOptions {
  /** The bundle's place; objects go to `streams/` under it. */
  place: S3Place;
  index: number;
  kind: 'full' | 'incremental';
  volumeSize: number;
  encrypted?: boolean;
}

interface OpenVolume {
  file: string;
  upload: ObjectUpload;
  hash: Hash;
  bytes: number;
}

const UPLOAD_PAUSE_BYTES = 2 * PART_SIZE + (1 << 20);

export class VolumeUploader extends Writable {
  readonly volumes: VolumeEntry[] = [];
  private current: OpenVolume | null = null;

  constructor(private readonly opts: VolumeUploaderOptions) {
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
    // A stream that failed half way: its multipart upload goes, no part kept.
    cur.upload.abort().then(() => done(err), () => done(err));
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    while (chunk.length > 0) {
      const vol = this.current ?? this.openNext();
      const n = Math.min(chunk.length, this.opts.volumeSize - vol.bytes);
      const part = chunk.subarray(0, n);
      vol.hash.update(part);
      vol.bytes += n;
      if (!vol.upload.body.write(part)) await Promise.race([once(vol.upload.body, 'drain'), vol.upload.done]);
      chunk = chunk.subarray(n);
      // The crash test's point: a multipart upload is under way (two parts' worth handed over).
      if (vol.bytes - n < UPLOAD_PAUSE_BYTES && vol.bytes >= UPLOAD_PAUSE_BYTES) await testPause('export:upload');
      if (vol.bytes === this.opts.volumeSize) await this.closeCurrent();
    }
  }

  private openNext(): OpenVolume {
    const n = this.volumes.length;
    if (n >= MAX_VOLUMES) {
      throw new ZferryError(`stream ${this.opts.index} needs more than ${MAX_VOLUMES} volumes of ${this.opts.volumeSize} bytes: choose a larger volume size`);
    }
    const file = volumeFileName(this.opts.index, this.opts.kind, n, this.opts.encrypted);
    this.current = { file, upload: uploadObject(this.opts.place, file), hash: createHash('sha256'), bytes: 0 };
    return this.current;
  }

  private async closeCurrent(): Promise<void> {
    const vol = this.current;
    if (!vol) return;
    vol.upload.body.end();
    await vol.upload.done;
    this.current = null;
    this.volumes.push({ file: vol.file, bytes: vol.bytes, sha256: vol.hash.digest('hex') });
    if (this.volumes.length === 1) await testPause(`export:stream:${this.opts.index}`);
  }
}

export { urlOf };
