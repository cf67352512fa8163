/** A pass-through stage that hashes and counts what flows through it. */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export class HashTap extends Transform {
  private readonly hash: Hash;
  private hex: string | null = null;
  /** Bytes seen so far (final after 'end'). */
  bytes = 0;

  constructor(algorithm = 'sha256', private readonly onBytes?: (n: number) => void) {
    super();
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.hex = this.hash.digest('hex');
    done();
  }

  /** Hex digest of everything that passed; only valid once the stream has ended. */
  digest(): string {
    if (this.hex === null) throw new Error('hashTap.digest() called before the stream ended');
    return this.hex;
  }
}

export function hashTap(algorithm = 'sha256', onBytes?: (n: number) => void): HashTap {
  return new HashTap(algorithm, onBytes);
}
