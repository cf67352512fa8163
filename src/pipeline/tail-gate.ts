/**
 * Holds back the last bytes of a stream until the whole stream's sha256 is
 * known to match. A consumer such as `zfs recv` therefore never sees the end
 * record of a stream that is corrupt anywhere, and aborts instead of
 * committing a snapshot.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { ZferryError } from '../errors.js';
import { streamSha256, type StreamHash } from '../hash/sha256.js';

export interface TailGateOptions {
  /** Names the stream in the error, e.g. `stream 3 (tank/a)`. */
  label?: string;
  /** Also require this many bytes in total. */
  expectedBytes?: number;
}

export class TailGate extends Transform {
  /** null: the caller proves the bytes upstream (every volume's sha256 before its last chunk leaves), and the gate only withholds the end. */
  private readonly hash: StreamHash | null;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private total = 0;

  constructor(
    private readonly expectedSha256: string | null,
    private readonly holdBytes = 1 << 20,
    private readonly opts: TailGateOptions = {},
  ) {
    super();
    this.hash = expectedSha256 === null ? null : streamSha256(opts.expectedBytes ?? 0);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    // The chunk moves on only once the hash has taken its bytes: downstream
    // may hand its buffer back to a pool to be filled again.
    const taken = this.hash?.update(chunk);
    if (taken) taken.then(() => this.hold(chunk, done), done);
    else this.hold(chunk, done);
  }

  private hold(chunk: Buffer, done: TransformCallback): void {
    this.total += chunk.length;
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    // Release whole chunks while at least holdBytes stay behind. Never a part
    // of one: a chunk may be a pooled buffer (import's decompressor), whose
    // halves would go back to the pool at different times.
    while (this.held.length > 0 && this.heldBytes - this.held[0].length >= this.holdBytes) {
      const first = this.held.shift()!;
      this.heldBytes -= first.length;
      this.push(first);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (!this.hash) this.finish(null, done);
    else this.hash.digest().then((hex) => this.finish(hex, done), done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.hash?.discard();
    done(err);
  }

  private finish(actual: string | null, done: TransformCallback): void {
    const label = this.opts.label ?? 'stream';
    if (this.opts.expectedBytes !== undefined && this.total !== this.opts.expectedBytes) {
      done(new ZferryError(`${label}: decompressed to ${this.total} bytes, manifest says ${this.opts.expectedBytes}; its end was withheld`));
      return;
    }
    if (actual !== this.expectedSha256) {
      // Both null when the gate does not hash.
      done(new ZferryError(`${label}: sha256 of the decompressed stream is ${actual}, manifest says ${this.expectedSha256}; its end was withheld`));
      return;
    }
    for (const b of this.held) this.push(b);
    this.held = [];
    done();
  }
}

export function tailGate(expectedSha256: string | null, holdBytes = 1 << 20, opts: TailGateOptions = {}): TailGate {
  return new TailGate(expectedSha256, holdBytes, opts);
}
