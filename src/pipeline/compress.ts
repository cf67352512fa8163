/**
 * zstd compression stage: one zstd stream with a content checksum,
 * multi-threaded. zstd-napi's CompressStream sizes each output buffer by
 * zstd's "bytes left to flush" hint, which in multi-threaded mode is a whole
 * job (8 MB at level 3), and keeps it alive behind a small slice: peak memory
 * grew with the stream. This stage uses the same binding with fixed-size
 * output buffers and waits for the consumer when its buffer is full.
 *
 * Contexts are reused from stream to stream: a multi-threaded context starts
 * its worker threads and allocates its job buffers on first use, and an
 * export of 400 small streams spent more time on that (and on the garbage
 * collections its external memory triggered) than on compressing.
 *
 * The first HEAD_BYTES of a stream are held back before zstd sees any: a
 * stream that ends within them is handed over whole with the end directive,
 * and zstd then compresses it on the calling thread (it does so for inputs
 * of known size up to its minimum job size). Handing a small stream to the
 * worker threads cost a thread round trip at the end of every stream, the
 * main thread blocked meanwhile: most of the time of an export of many
 * small datasets.
 */
import type { TransformCallback } from 'node:stream';
import { PacedTransform } from './paced-transform.js';
import binding from 'zstd-napi/binding.js';
import type { BufferPool } from './buffer-pool.js';
import { IdleContexts } from './idle-contexts.js';

/** Bytes per output buffer (zstd's recommendation): a pool given to compress() holds buffers of this size. */
export const COMPRESS_OUT_SIZE = binding.cStreamOutSize();
/** zstd's ZSTDMT_JOBSIZE_MIN (512 KiB): a whole input up to this size is compressed single-threaded. */
export const HEAD_BYTES = 512 * 1024;

export interface CompressOptions {
  /** zstd level, 1..19; 3 is zstd's default. */
  level?: number;
  /** zstd worker threads; 2 matched `zstd -T0 -3` on a 2-core machine. */
  workers?: number;
  /**
   * Bytes per worker job. zstd's default at level 3 (8 MiB) put peak RSS
   * near 170 MB; 2 MiB measured 114 MB at the same speed and ratio within 1%.
   */
  jobSize?: number;
  /**
   * zstd --long: long-distance matching over a 128 MiB window (windowLog 27,
   * which stock `zstd -d` still reads without --long). Measured by estimate.
   */
  long?: boolean;
  /**
   * Output buffers come from this pool (of COMPRESS_OUT_SIZE buffers); the
   * consumer gives each back once written. A fresh buffer per call faulted
   * its pages in anew each time, and zstd's 128 KiB is just past glibc's
   * mmap threshold: a map and unmap per buffer.
   */
  pool?: BufferPool;
}

/** Idle contexts by parameters (idle-contexts.ts). */
const contexts = new IdleContexts<binding.CCtx>();

/** Contexts made so far by this process (tests pin the reuse with it). */
export function compressContextsCreated(): number {
  return contexts.created;
}

function takeContext(level: number, workers: number, jobSize: number, long: boolean): { key: string; cctx: binding.CCtx } {
  const key = `${level}/${workers}/${jobSize}${long ? '/long' : ''}`;
  const cctx = contexts.take(key, () => {
    const made = new binding.CCtx();
    made.setParameter(binding.CParameter.compressionLevel, level);
    made.setParameter(binding.CParameter.checksumFlag, 1);
    made.setParameter(binding.CParameter.nbWorkers, workers);
    if (workers > 0) made.setParameter(binding.CParameter.jobSize, jobSize);
    if (long) {
      made.setParameter(binding.CParameter.enableLongDistanceMatching, 1);
      made.setParameter(binding.CParameter.windowLog, 27);
    }
    return made;
  });
  return { key, cctx };
}

export class ZstdCompress extends PacedTransform {
  private readonly key: string;
  private cctx: binding.CCtx | null;
  /**
   * The output buffer of the next call, kept while calls produce nothing (in
   * multi-threaded mode most do, until a job completes): allocating one per
   * 64 KiB pipe read was most of this stage's garbage.
   */
  private scratch: Buffer | null = null;
  /** The stream's first bytes, until there are more than HEAD_BYTES or the stream ends. */
  private head: Buffer[] | null = [];
  private headBytes = 0;
  private readonly pool: BufferPool | undefined;

  constructor({ level = 3, workers = 2, jobSize = 2 << 20, long = false, pool }: CompressOptions = {}) {
    super();
    this.pool = pool;
    const { key, cctx } = takeContext(level, workers, jobSize, long);
    this.key = key;
    this.cctx = cctx;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.head) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
      if (this.headBytes <= HEAD_BYTES) return done();
      chunk = this.takeHead();
    }
    this.run(chunk, binding.EndDirective.continue).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    this.run(this.head ? this.takeHead() : Buffer.alloc(0), binding.EndDirective.end).then(() => {
      this.release();
      done();
    }, done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.release();
    super._destroy(err, done);
  }

  private takeHead(): Buffer {
    const head = this.head ?? [];
    this.head = null;
    return head.length === 1 ? head[0] : Buffer.concat(head, this.headBytes);
  }

  protected release(): void {
    const cctx = this.cctx;
    this.cctx = null;
    if (this.scratch) this.pool?.release(this.scratch);
    this.scratch = null;
    this.head = null;
    if (cctx) contexts.giveBack(this.key, cctx);
  }

  protected async run(src: Buffer, directive: number): Promise<void> {
    const flushing = directive !== binding.EndDirective.continue;
    for (;;) {
      const cctx = this.cctx;
      // Destroyed while waiting for the consumer: the context is already back in the pool.
      if (!cctx) return;
      const dst = this.scratch ?? (this.pool ? await this.pool.take() : Buffer.allocUnsafe(COMPRESS_OUT_SIZE));
      this.scratch = null;
      const [remaining, produced, consumed] = cctx.compressStream2(dst, src, directive);
      src = src.subarray(consumed);
      let out = dst.subarray(0, produced);
      if (produced === 0) {
        this.scratch = dst;
      } else if (produced < dst.length >> 2) {
        // A small output is copied out so the big buffer can be used again.
        out = Buffer.from(out);
        this.scratch = dst;
      } else {
        this.scratch = null;
      }
      if (!(await this.pushPaced(out))) return;
      if (src.length === 0 && (!flushing || remaining === 0)) return;
    }
  }
}

export function compress(opts: CompressOptions = {}): ZstdCompress {
  return new ZstdCompress(opts);
}
