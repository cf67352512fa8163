/**
 * Stages for a stream written in parts (export --max-size/--fill): the
 * compressor that never lets the stored bytes pass a budget, and the stage
 * that skips the bytes an earlier part already holds.
 *
 * A part is its own zstd stream of a range of the raw send stream, so the
 * next export can re-run the same `zfs send`, skip what earlier parts hold
 * (checking its sha256) and go on; nothing depends on zstd or age writing
 * the same bytes twice.
 */
import type { Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import binding from 'zstd-napi/binding.js';
import { ZferryError } from '../errors.js';
import { ZstdCompress, type CompressOptions } from './compress.js';

const EMPTY = Buffer.alloc(0);
/** Below this much room, the part ends rather than flush ever smaller pieces. */
const MIN_STEP = 4096;

/** The most zstd can make of `raw` bytes given with flushes between: its compress bound, a block header per flush, the frame's head and end. */
export function compressedBound(raw: number): number {
  return raw + Math.ceil(raw / 128) + 4096;
}

/** Stored bytes of an age file holding `plain` bytes: 16 bytes a 64 KiB chunk, and a header (bounded generously: hybrid recipients are large). */
export function ageBound(plain: number, recipients: number): number {
  return plain + 16 * (Math.floor(plain / 65536) + 1) + 4096 + 2048 * recipients;
}

export interface BudgetOptions extends CompressOptions {
  /** The most bytes the stored stream may take. */
  maxStored: number;
  /** Stored bytes for so many compressed bytes (age's overhead); identity without encryption. */
  stored?: (zstdBytes: number) => number;
  /** Sees exactly the raw bytes handed to zstd, in order: what the part holds. */
  onRaw: (chunk: Buffer) => void;
}

/**
 * zstd that ends its stream before the stored bytes could pass `maxStored`.
 * Far from the budget it compresses as usual; near it, it flushes so that
 * what it has emitted is exact, and feeds only as much as the compress bound
 * allows, in ever smaller steps, until less than MIN_STEP of room is left.
 * Then it ends the frame, emits 'cut' and drops all further input (the
 * caller stops the source). Without a cut it ends like ZstdCompress.
 */
export class BudgetCompress extends ZstdCompress {
  /** Compressed bytes emitted so far. */
  emitted = 0;
  /** The stream was ended at the budget, before its source ended. */
  cut = false;
  /** Raw bytes fed since the last flush: their output may still be inside zstd. */
  private sinceFlush = 0;
  private readonly maxStored: number;
  private readonly stored: (n: number) => number;
  private readonly onRaw: (chunk: Buffer) => void;

  constructor(opts: BudgetOptions) {
    super(opts);
    this.maxStored = opts.maxStored;
    this.stored = opts.stored ?? ((n) => n);
    this.onRaw = opts.onRaw;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.cut) return done();
    this.feed(chunk).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    if (this.cut) return done();
    super._flush(done);
  }

  protected override async pushPaced(chunk: Buffer): Promise<boolean> {
    this.emitted += chunk.length;
    return super.pushPaced(chunk);
  }

  private fits(raw: number): boolean {
    return this.stored(this.emitted + compressedBound(raw)) <= this.maxStored;
  }

  /** The most raw bytes (up to `max`) that fit for sure. */
  private room(max: number): number {
    let lo = 0;
    let hi = max;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.fits(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private async feed(chunk: Buffer): Promise<void> {
    while (chunk.length > 0 && !this.destroyed) {
      if (this.fits(this.sinceFlush + chunk.length)) {
        this.onRaw(chunk);
        this.sinceFlush += chunk.length;
        await this.run(chunk, binding.EndDirective.continue);
        return;
      }
      if (this.sinceFlush > 0) {
        // Near the budget: make `emitted` exact before deciding more.
        await this.run(EMPTY, binding.EndDirective.flush);
        this.sinceFlush = 0;
        continue;
      }
      const n = this.room(chunk.length);
      if (n < MIN_STEP) {
        await this.run(EMPTY, binding.EndDirective.end);
        this.cut = true;
        this.release();
        this.push(null);
        this.emit('cut');
        return;
      }
      const piece = chunk.subarray(0, n);
      this.onRaw(piece);
      await this.run(piece, binding.EndDirective.flush);
      chunk = chunk.subarray(n);
    }
  }
}

/**
 * Drops the first `bytes` of the raw stream, which earlier parts hold,
 * hashing them into `hash` and refusing, at that byte, a stream whose
 * prefix is not the one those parts were cut from (`sha256`).
 */
export class SkipPrefix extends Transform {
  private left: number;

  constructor(bytes: number, private readonly sha256: string, private readonly hash: Hash, private readonly label: string) {
    super();
    this.left = bytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.left > 0) {
      const n = Math.min(this.left, chunk.length);
      this.hash.update(chunk.subarray(0, n));
      this.left -= n;
      chunk = chunk.subarray(n);
      if (this.left === 0) {
        const got = this.hash.copy().digest('hex');
        if (got !== this.sha256) {
          return done(new ZferryError(`${this.label}: zfs send no longer gives the bytes the earlier parts were cut from (sha256 of the first part(s) is ${got}, recorded ${this.sha256}): this stream cannot be continued; export again with --no-journal to start it over`));
        }
      }
    }
    if (chunk.length > 0) this.push(chunk);
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.left > 0) return done(new ZferryError(`${this.label}: zfs send ended ${this.left} bytes short of what the earlier parts hold: this stream cannot be continued; export again with --no-journal to start it over`));
    done();
  }
}
