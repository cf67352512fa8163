/**
 * A Transform whose one input chunk may produce many output buffers (zstd),
 * and which honours backpressure while producing them: `pushPaced` waits
 * until the consumer reads again whenever the readable side is full. Plain
 * Transform.push would buffer everything one chunk expands to.
 */
import { Transform } from 'node:stream';

export class PacedTransform extends Transform {
  private wakeUp: (() => void) | null = null;

  override _read(size: number): void {
    const wake = this.wakeUp;
    this.wakeUp = null;
    wake?.();
    super._read(size);
  }

  /** Pushes `chunk`; resolves false when the stream was destroyed meanwhile (stop producing). */
  protected async pushPaced(chunk: Buffer): Promise<boolean> {
    if (chunk.length > 0 && !this.push(chunk)) await new Promise<void>((resolve) => (this.wakeUp = resolve));
    return !this.destroyed;
  }
}
