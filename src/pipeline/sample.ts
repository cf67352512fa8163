/**
 * Measuring a stream without storing it: counts its bytes and compresses a
 * bounded prefix through the same zstd stage export uses, so the ratio is
 * the one a bundle would get. Nothing is buffered beyond one chunk.
 */
import type { Readable } from 'node:stream';
import { once } from 'node:events';
import { compress } from './compress.js';

export interface MeasureOptions {
  level: number;
  /** Compress at most this many bytes of the stream (0: count only). */
  sampleBytes: number;
  /** ...and stop compressing after this many seconds. */
  sampleSeconds: number;
  /** Read the stream to its end (to count it); otherwise stop once the sample is taken. */
  readAll: boolean;
  workers?: number;
  /** Called with the size of every chunk read. */
  onBytes?: (raw: number) => void;
}

export interface StreamMeasure {
  /** Bytes read; the stream's size when `complete`. */
  rawBytes: number;
  /** The stream was read to its end. */
  complete: boolean;
  /** Raw bytes compressed, and what zstd made of them. */
  sampleRawBytes: number;
  sampleStoredBytes: number;
  /** The sample is the whole stream (its stored size is exact, not extrapolated). */
  sampleIsWhole: boolean;
}

export async function measureStream(src: Readable, opts: MeasureOptions): Promise<StreamMeasure> {
  const deadline = Date.now() + opts.sampleSeconds * 1000;
  const z = opts.sampleBytes > 0 ? compress({ level: opts.level, workers: opts.workers }) : null;
  let stored = 0;
  const zEnded = z ? new Promise<void>((resolve, reject) => {
    z.on('data', (b: Buffer) => (stored += b.length));
    z.on('end', resolve);
    z.on('error', reject);
  }) : Promise.resolve();
  let sampling = z !== null;
  let raw = 0;
  let sampled = 0;
  let complete = true;
  try {
    for await (const chunk of src as AsyncIterable<Buffer>) {
      raw += chunk.length;
      opts.onBytes?.(chunk.length);
      if (sampling && z) {
        const take = chunk.subarray(0, Math.min(chunk.length, opts.sampleBytes - sampled));
        sampled += take.length;
        if (!z.write(take)) await once(z, 'drain');
        if (sampled >= opts.sampleBytes || Date.now() > deadline) {
          sampling = false;
          z.end();
          if (!opts.readAll) {
            // Leaving the loop destroys `src`; the caller stops the producer.
            complete = false;
            break;
          }
        }
      }
    }
  } catch (err) {
    z?.destroy();
    throw err;
  }
  if (sampling && z) z.end();
  await zEnded;
  return {
    rawBytes: raw,
    complete,
    sampleRawBytes: sampled,
    sampleStoredBytes: stored,
    sampleIsWhole: complete && sampled === raw,
  };
}
