/**
 * Reads a stream's volume files in order as one byte stream, checking each
 * volume's size and sha256. Each volume's final chunk is held back until its
 * hash has matched, so a bad volume errors before its end is passed on.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ZferryError } from '../errors.js';
import type { VolumeEntry } from './manifest.js';
import { fileError } from '../fs/errors.js';
import { openRegular } from '../fs/safe.js';
import { bundlePath, getStream, isS3Url, parseS3Url } from '../store/s3.js';
import type { BufferPool } from '../pipeline/buffer-pool.js';
import { streamSha256, type StreamHash } from '../hash/sha256.js';

/** Bytes per read: a pool given to the reader holds buffers of this size. */
export const READ_CHUNK = 1 << 20;

export interface VolumeReaderOptions {
  /** Called with the stored bytes of every chunk read. */
  onBytes?: (n: number) => void;
  /**
   * Check each volume's sha256 (default true). Only a caller that verified
   * every volume moments before, and checks what it reads some other way
   * (import's tail gate on the raw sha256), may turn this off; sizes are
   * checked either way.
   */
  checkSha256?: boolean;
  /**
   * Read into these buffers (of READ_CHUNK bytes) instead of fresh ones; the
   * consumer gives each chunk back once used. Only for a consumer that does
   * (import's decompressor): otherwise reading stalls when the pool is empty.
   * A bucket's pieces are gathered into them too.
   */
  pool?: BufferPool;
}

export class VolumeReader extends Readable {
  private readonly iter: AsyncGenerator<Buffer, void, undefined>;
  /** The volume being read (for error messages downstream). */
  currentFile: string | null = null;

  constructor(private readonly bundleDir: string, private readonly volumes: readonly VolumeEntry[], private readonly opts: VolumeReaderOptions = {}) {
    super({ highWaterMark: READ_CHUNK });
    this.iter = this.chunks();
  }

  override _read(): void {
    this.iter.next().then(
      ({ value, done }) => {
        if (done) this.push(null);
        else this.push(value);
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    // Closes an open file handle through the generator's finally block.
    this.iter.return(undefined).then(() => done(err), () => done(err));
  }

  /** Which volume holds byte `offset` of the concatenated stream, and where in it. */
  locate(offset: number): { file: string; offset: number } | null {
    let start = 0;
    for (const v of this.volumes) {
      if (offset < start + v.bytes) return { file: bundlePath(this.bundleDir, v.file), offset: offset - start };
      start += v.bytes;
    }
    return null;
  }

  private async *chunks(): AsyncGenerator<Buffer, void, undefined> {
    if (isS3Url(this.bundleDir)) {
      yield* this.objectChunks();
      return;
    }
    for (const vol of this.volumes) {
      const path = join(this.bundleDir, vol.file);
      this.currentFile = path;
      let fh, size;
      try {
        // Only a regular file inside the bundle: a link to a file outside is refused before a byte of it is read.
        ({ fh, size } = await openRegular(path, this.bundleDir));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') throw new ZferryError(`missing volume ${path}`, { file: path });
        throw fileError(err, 'opening', path);
      }
      let hash: StreamHash | null = null;
      try {
        if (size !== vol.bytes) {
          throw new ZferryError(`${path}: size is ${size} bytes, manifest says ${vol.bytes} (${size < vol.bytes ? 'truncated' : 'too long'})`, {
            file: path,
            offset: Math.min(size, vol.bytes),
          });
        }
        hash = this.hashFor(vol.bytes);
        let pos = 0;
        let pending: Buffer | null = null;
        for (;;) {
          const want = Math.min(READ_CHUNK, vol.bytes - pos + 1);
          const buf = this.opts.pool ? await this.opts.pool.take() : Buffer.allocUnsafe(want);
          let n;
          try {
            ({ bytesRead: n } = await fh.read(buf, 0, want, pos));
          } catch (err) {
            throw fileError(err, 'reading', path, pos);
          }
          if (n === 0) {
            // Nothing read into it: the buffer goes straight back.
            this.opts.pool?.release(buf);
            break;
          }
          if (pos + n > vol.bytes) {
            throw new ZferryError(`${path}: grew beyond the ${vol.bytes} bytes the manifest says while being read`, { file: path, offset: vol.bytes });
          }
          const chunk = buf.subarray(0, n);
          const taken = hash?.update(chunk);
          if (taken) await taken;
          pos += n;
          this.opts.onBytes?.(n);
          if (pending) yield pending;
          pending = chunk;
        }
        if (pos !== vol.bytes) {
          throw new ZferryError(`${path}: ended after ${pos} bytes, manifest says ${vol.bytes} (truncated)`, { file: path, offset: pos });
        }
        const actual = hash ? await hash.digest() : undefined;
        if (actual !== undefined && actual !== vol.sha256) {
          throw new ZferryError(`${path}: sha256 is ${actual}, manifest says ${vol.sha256} (the volume is corrupt)`, { file: path });
        }
        if (pending) yield pending;
      } finally {
        hash?.discard();
        await fh.close().catch(() => undefined);
      }
    }
    this.currentFile = null;
  }

  /** The check of one volume's sha256, or null when the caller turned it off. */
  private hashFor(bytes: number): StreamHash | null {
    return this.opts.checkSha256 === false ? null : streamSha256(bytes);
  }

  /**
   * The same checks for a bundle in a bucket: each volume's object streamed
   * by one GET, its size and sha256 checked, its last chunk held back until
   * the hash matched.
   */
  private async *objectChunks(): AsyncGenerator<Buffer, void, undefined> {
    const place = parseS3Url(this.bundleDir);
    for (const vol of this.volumes) {
      const path = bundlePath(this.bundleDir, vol.file);
      this.currentFile = path;
      const got = await getStream(place, vol.file);
      if (!got) throw new ZferryError(`missing volume ${path}`, { file: path });
      let hash: StreamHash | null = null;
      let gather: Buffer | null = null;
      let gathered = 0;
      try {
        if (got.size !== vol.bytes) {
          throw new ZferryError(`${path}: size is ${got.size} bytes, manifest says ${vol.bytes} (${got.size < vol.bytes ? 'truncated' : 'too long'})`, { file: path, offset: Math.min(got.size, vol.bytes) });
        }
        hash = this.hashFor(vol.bytes);
        let pos = 0;
        let pending: Buffer | null = null;
        try {
          for await (const c of got.body) {
            const chunk = c as Buffer;
            if (pos + chunk.length > vol.bytes) throw new ZferryError(`${path}: longer than the ${vol.bytes} bytes the manifest says`, { file: path, offset: vol.bytes });
            const taken = hash?.update(chunk);
            if (taken) await taken;
            pos += chunk.length;
            this.opts.onBytes?.(chunk.length);
            // The HTTP body comes in pieces of 16-64 KiB: gathered into READ_CHUNK
            // buffers, as a file is read, so every later stage (zstd, the hash,
            // the pipe into zfs recv) works per MiB, not per piece.
            for (let at = 0; at < chunk.length; ) {
              gather ??= this.opts.pool ? await this.opts.pool.take() : Buffer.allocUnsafe(READ_CHUNK);
              const n = chunk.copy(gather, gathered, at);
              gathered += n;
              at += n;
              if (gathered === gather.length) {
                if (pending) yield pending;
                pending = gather;
                gather = null;
                gathered = 0;
              }
            }
          }
          if (gather && gathered > 0) {
            if (pending) yield pending;
            pending = gather.subarray(0, gathered);
            gather = null;
            gathered = 0;
          }
        } catch (err) {
          if (err instanceof ZferryError) throw err;
          throw new ZferryError(`${path}: reading failed at offset ${pos}: ${(err as Error).message}`, { file: path, offset: pos });
        }
        if (pos !== vol.bytes) throw new ZferryError(`${path}: ended after ${pos} bytes, manifest says ${vol.bytes} (truncated)`, { file: path, offset: pos });
        const actual = hash ? await hash.digest() : undefined;
        if (actual !== undefined && actual !== vol.sha256) {
          throw new ZferryError(`${path}: sha256 is ${actual}, manifest says ${vol.sha256} (the volume is corrupt)`, { file: path });
        }
        if (pending) yield pending;
      } finally {
        hash?.discard();
        if (gather) this.opts.pool?.release(gather);
        got.body.destroy();
      }
    }
    this.currentFile = null;
  }
}
