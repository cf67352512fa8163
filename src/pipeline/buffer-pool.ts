/**
 * Reusing buffers across a stream boundary: a pool of buffers, and a copy
 * from a readable into a writable that tells when each chunk has been taken
 * by the kernel, the moment its buffer may be filled again.
 */
import { Writable } from 'node:stream';

/**
 * A fixed set of equal buffers handed out with `take` and given back with
 * `release` by whoever consumed the bytes last; `take` waits while all are
 * out. `release` accepts any chunk and ignores those not cut from this pool,
 * so a consumer can release everything it sees.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: Array<{ resolve: (b: Buffer) => void; reject: (err: Error) => void }> = [];
  private readonly owners = new Map<ArrayBufferLike, Buffer>();
  private closed = false;

  /** Buffers are made on first need, up to `count`: a small stream (one of 400 datasets) never makes most of them. */
  constructor(private readonly count: number, readonly size: number) {}

  /** Buffers not handed out now (all of them once every consumer gave its chunks back). */
  get available(): number {
    return this.free.length + this.count - this.owners.size;
  }

  /** Every buffer handed out has been given back (a stream before may start another on this pool). */
  get allBack(): boolean {
    return this.available === this.count;
  }

  take(): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('buffer pool closed'));
    let b = this.free.pop();
    if (!b && this.owners.size < this.count) {
      b = Buffer.allocUnsafeSlow(this.size);
      this.owners.set(b.buffer, b);
    }
    return b ? Promise.resolve(b) : new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** The consumer is gone: whoever waits for a buffer stops waiting. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(new Error('buffer pool closed'));
  }

  /** The consumer is done with `chunk`; if it came from this pool its buffer is free again. */
  release(chunk: Buffer): void {
    const b = this.owners.get(chunk.buffer);
    // Not ours, or given back already (a second release would hand one buffer to two users).
    if (!b || this.free.includes(b)) return;
    const next = this.waiting.shift();
    if (next) next.resolve(b);
    else this.free.push(b);
  }
}

/**
 * Copies `source` into `dest` with backpressure, like pipeline(), and calls
 * `written(chunk)` when each chunk has left for the kernel (its write
 * completed), which is when a pooled buffer may be reused. Ends `dest` when
 * `source` ends; rejects on either side's error.
 */
export async function drainInto(source: AsyncIterable<unknown> & { destroy(err?: Error): void }, dest: Writable, written: (chunk: Buffer) => void): Promise<void> {
  let failed: unknown = null;
  const onError = (err: unknown) => {
    failed ??= err;
    source.destroy(err as Error);
  };
  dest.on('error', onError);
  try {
    for await (const chunk of source) {
      if (failed) throw failed;
      // A destination already gone (the child exited before our first write)
      // emits nothing more: waiting for 'drain' would wait for ever.
      if (dest.destroyed || dest.writableEnded) throw failed ?? new Error('the other side closed early');
      const buf = chunk as Buffer;
      const ok = dest.write(buf, (err) => {
        if (err) onError(err);
        else written(buf);
      });
      if (!ok) await waitFor(dest, 'drain');
    }
    if (failed) throw failed;
    await new Promise<void>((resolve, reject) => {
      if (dest.destroyed) return reject(failed ?? new Error('the other side closed early'));
      dest.once('error', reject);
      dest.end(() => resolve());
    });
  } catch (err) {
    // As pipeline() would: both ends are torn down, so nothing (execa waiting
    // for a child's stdin to close, a pack waiting for a buffer) waits on them.
    source.destroy(err as Error);
    dest.destroy();
    throw err;
  } finally {
    dest.off('error', onError);
    // A late error (EPIPE once the peer is gone) has nobody left to tell; the caller already has the outcome.
    dest.on('error', () => undefined);
  }
}

/**
 * The end of a Node pipeline whose chunks are pooled: writes each chunk to
 * `dest` as it comes and calls `written(chunk)` once `dest` has taken it.
 * A Writable at the end of pipeline() gets every chunk as it was pushed,
 * where a Node Readable's async iterator (drainInto) would join buffered
 * chunks into a new buffer and never give the pooled ones back.
 */
export class ReleasingSink extends Writable {
  constructor(private readonly dest: Writable, private readonly written: (chunk: Buffer) => void) {
    super({ highWaterMark: 0 });
    dest.on('error', (err) => this.destroy(err));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.dest.destroyed || this.dest.writableEnded) return done(this.dest.errored ?? new Error('the other side closed early'));
    const ok = this.dest.write(chunk, (err) => {
      if (!err) this.written(chunk);
    });
    if (ok) done();
    else waitFor(this.dest, 'drain').then(() => done(), done);
  }

  /**
   * Every byte is written. A child that read its stream's end record may exit
   * before our end() completes, and Node destroys a child's stdin when it
   * exits: the pending end then fails with ERR_STREAM_DESTROYED although
   * nothing was lost (seen with receives side by side, whose event loop runs
   * late). Gone without an error of its own, the other side is done: the
   * caller judges by the child's exit status, as it must anyway.
   */
  override _final(done: (err?: Error | null) => void): void {
    if (this.dest.destroyed) return done((this.dest.errored as Error | null) ?? null);
    // An error while ending (EPIPE: zfs recv already gone) fails the pipeline, not only the 'error' listener.
    this.dest.end((err?: Error | null) => {
      const gone = (err as NodeJS.ErrnoException | null | undefined)?.code === 'ERR_STREAM_DESTROYED' && !this.dest.errored;
      done(gone ? null : err ?? null);
    });
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    // As pipeline() would with dest itself: torn down, so nothing (execa waiting for stdin to close) waits on it.
    if (err) this.dest.destroy();
    done(err);
  }
}

/**
 * Resolves on `event` ('drain', 'finish'); rejects if the stream errors or
 * closes first, and at once if it is already destroyed (a destroyed stream
 * emits nothing more). Works for Node and streamx streams alike.
 */
export function waitFor(stream: NodeJS.EventEmitter & { destroyed?: boolean; errored?: unknown }, event: 'drain' | 'finish'): Promise<void> {
  return new Promise((resolve, reject) => {
    const gone = () => (stream.errored as Error | null | undefined) ?? new Error('the other side closed early');
    if (stream.destroyed) return reject(gone());
    const done = (err?: unknown) => {
      stream.off(event, ok);
      stream.off('error', fail);
      stream.off('close', closed);
      if (err) reject(err);
      else resolve();
    };
    const ok = () => done();
    const fail = (err: unknown) => done(err ?? gone());
    const closed = () => done(gone());
    stream.once(event, ok);
    stream.once('error', fail);
    stream.once('close', closed);
  });
}
