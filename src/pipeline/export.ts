/** Export data path: raw send stream -> sha256 -> zstd -> volume files. */
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { VolumeEntry } from '../bundle/manifest.js';
import { fsyncDir } from '../fs/safe.js';
import { COMPRESS_OUT_SIZE, compress } from './compress.js';
import { BufferPool } from './buffer-pool.js';
import { hashTap } from './hash-tap.js';
import { VolumeWriter } from '../bundle/volume-writer.js';
import { VolumeUploader } from '../bundle/volume-uploader.js';
import type { S3Place } from '../store/s3.js';
import { fileError } from '../fs/errors.js';
import { encryptStream } from '../trust/age.js';

export interface WriteStreamOptions {
  /** Bundle folder. */
  dir: string;
  index: number;
  kind: 'full' | 'incremental';
  volumeSize: number;
  level: number;
  /** zstd worker threads (default 2). */
  workers?: number;
  /** age recipients: the compressed stream is encrypted to them before it is cut into volumes. */
  encryptTo?: string[];
  /** Called with the raw (uncompressed) bytes of every chunk. */
  onBytes?: (raw: number) => void;
  /**
   * fsync the streams folder after this stream (default true). A caller
   * writing many streams passes false and syncs the folder once, after the
   * last stream and before anything that says the streams are complete.
   */
  syncFolder?: boolean;
  /** The bundle is in a bucket (`dir` is then its s3:// URL): volumes are uploaded, not written. */
  place?: S3Place;
}

export interface WrittenStream {
  rawBytes: number;
  rawSha256: string;
  storedBytes: number;
  volumes: VolumeEntry[];
}

/** zstd output buffers per stream: the volume writer's 1 MiB queue of them, one being written, and zstd's own. */
const OUT_POOL = 12;

export async function writeStream(src: Readable, opts: WriteStreamOptions): Promise<WrittenStream> {
  const raw = hashTap('sha256', opts.onBytes);
  const encrypted = (opts.encryptTo?.length ?? 0) > 0;
  // zstd's output buffers are reused once written to a volume file; age and an upload keep what they are given.
  const pool = encrypted || opts.place ? undefined : new BufferPool(OUT_POOL, COMPRESS_OUT_SIZE);
  const shape = { index: opts.index, kind: opts.kind, volumeSize: opts.volumeSize, encrypted, ...(pool ? { pool } : {}) };
  const writer = opts.place ? new VolumeUploader({ place: opts.place, ...shape }) : new VolumeWriter({ dir: opts.dir, ...shape });
  const zstd = compress({ level: opts.level, workers: opts.workers, ...(pool ? { pool } : {}) });
  if (encrypted) await pipeline(src, raw, zstd, encryptStream(opts.encryptTo ?? []), writer);
  else await pipeline(src, raw, zstd, writer);
  if (opts.syncFolder !== false && !opts.place) await syncStreamsFolder(opts.dir);
  const storedBytes = writer.volumes.reduce((sum, v) => sum + v.bytes, 0);
  return { rawBytes: raw.bytes, rawSha256: raw.digest(), storedBytes, volumes: writer.volumes };
}

/** Makes the volume files' names in `dir/streams` durable (their data is, once each volume is closed). */
export async function syncStreamsFolder(dir: string): Promise<void> {
  const streamsDir = join(dir, 'streams');
  try {
    await fsyncDir(streamsDir);
  } catch (err) {
    throw fileError(err, 'flushing', streamsDir);
  }
}
