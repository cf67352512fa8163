/**
 * Measures zstd on this machine: the same sample of a real stream compressed
 * at each level through export's zstd stage, timed. For `--level auto`.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compress } from './compress.js';
import { zstdMemoryEstimate, type LevelSample } from '../plan/level.js';

export const PROBE_LEVELS = [1, 3, 6, 9, 12, 15, 19];
/** Enough of a stream to time zstd on, small enough to take seconds at level 19. */
export const LEVEL_SAMPLE_BYTES = 16 * 1024 * 1024;

/** One setting to time: a level, with or without --long. */
export interface ProbeSetting {
  level: number;
  long?: boolean;
}

export async function probeLevels(sample: Buffer, levels: ReadonlyArray<number | ProbeSetting> = PROBE_LEVELS, workers = 2): Promise<LevelSample[]> {
  const out: LevelSample[] = [];
  for (const item of levels) {
    const { level, long = false } = typeof item === 'number' ? { level: item } : item;
    let stored = 0;
    const started = process.hrtime.bigint();
    const sink = new Writable({ write: (c: Buffer, _e, done) => { stored += c.length; done(); } });
    const chunks = [];
    for (let at = 0; at < sample.length; at += 1 << 20) chunks.push(sample.subarray(at, at + (1 << 20)));
    await pipeline(Readable.from(chunks), compress({ level, workers, long }), sink);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    out.push({
      level, ...(long ? { long } : {}),
      rawPerSecond: sample.length / Math.max(seconds, 1e-6), ratio: sample.length === 0 ? 1 : stored / sample.length, memoryBytes: zstdMemoryEstimate(level, workers, long),
    });
  }
  return out;
}

/** Reads up to `bytes` of a stream into one buffer, then stops reading (the caller stops the producer). */
export async function takeSample(src: Readable, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of src as AsyncIterable<Buffer>) {
    parts.push(chunk.subarray(0, bytes - n));
    n += Math.min(chunk.length, bytes - n);
    if (n >= bytes) break;
  }
  return Buffer.concat(parts);
}
