/** Export data path: raw send stream -> sha256 -> zstd -> volume files. */
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { VolumeEntry } from '../bundle/manifest.js';
import { fsyncDir } from '../fs/safe.js';
import type { SyncBatch } from '../fs/sync-batch.js';
import { COMPRESS_OUT_SIZE, compress } from './compress.js';
import { BufferPool } from './buffer-pool.js';
import { hashTap } from './hash-tap.js';
import { VolumeWriter } from '../bundle/volume-writer.js';
import { VolumeUploader } from '../bundle/volume-uploader.js';
import type { S3Place } from '../store/s3.js';
import { fileError } from '../fs/errors.js';
import { encryptStream } from '../trust/age.js';
import { createHash } from 'node:crypto';
import { ageBound, BudgetCompress, SkipPrefix } from './segment.js';

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
  /** Volume files are synced by this batch, which the caller flushes (a folder's bundle; see fs/sync-batch.ts). */
  syncBatch?: SyncBatch;
  /** The bundle is in a bucket (`dir` is then its s3:// URL): volumes are uploaded, not written. */
  place?: S3Place;
  /** A later part: the raw bytes earlier parts hold, skipped after their sha256 is checked. */
  skip?: { bytes: number; sha256: string };
  /** The most bytes the volumes may take: the stream is ended there and continues in a next part. */
  maxStored?: number;
  /** Names the stream in errors. */
  label?: string;
}

export interface WrittenStream {
  /** Raw bytes and sha256 of what the volumes hold (a part's segment, when `skip` or a cut made one). */
  rawBytes: number;
  rawSha256: string;
  storedBytes: number;
  volumes: VolumeEntry[];
  /** With skip or maxStored: where the segment starts, whether it was cut, and the sha256 of the whole stream up to its end. */
  segment?: {
    offset: number;
    cut: boolean;
    /** Raw bytes from the stream's start to the segment's end, and their sha256 (the whole stream's when not cut). */
    endBytes: number;
    endSha256: string;
  };
}

/** zstd output buffers per stream: the volume writer's 1 MiB queue of them, one being written, and zstd's own. */
const OUT_POOL = 12;

export async function writeStream(src: Readable, opts: WriteStreamOptions): Promise<WrittenStream> {
  if (opts.skip || opts.maxStored !== undefined) return writeSegment(src, opts);
  const raw = hashTap('sha256', opts.onBytes);
  const encrypted = (opts.encryptTo?.length ?? 0) > 0;
  // zstd's output buffers are reused once written to a volume file; age and an upload keep what they are given.
  const pool = encrypted || opts.place ? undefined : new BufferPool(OUT_POOL, COMPRESS_OUT_SIZE);
  const shape = { index: opts.index, kind: opts.kind, volumeSize: opts.volumeSize, encrypted, ...(pool ? { pool } : {}) };
  const writer = opts.place ? new VolumeUploader({ place: opts.place, ...shape }) : new VolumeWriter({ dir: opts.dir, ...shape, ...(opts.syncBatch ? { syncBatch: opts.syncBatch } : {}) });
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

/**
 * A stream written as a part: the raw bytes earlier parts hold skipped (and
 * checked), the rest compressed until the stored bytes reach `maxStored`.
 * At that point the compressor ends its stream, the volumes are closed, and
 * the source is let go (the caller stops zfs send).
 */
async function writeSegment(src: Readable, opts: WriteStreamOptions): Promise<WrittenStream> {
  const encrypted = (opts.encryptTo?.length ?? 0) > 0;
  const shape = { index: opts.index, kind: opts.kind, volumeSize: opts.volumeSize, encrypted };
  const writer = opts.place ? new VolumeUploader({ place: opts.place, ...shape }) : new VolumeWriter({ dir: opts.dir, ...shape, ...(opts.syncBatch ? { syncBatch: opts.syncBatch } : {}) });
  const whole = createHash('sha256');
  const part = createHash('sha256');
  const offset = opts.skip?.bytes ?? 0;
  let rawBytes = 0;
  const label = opts.label ?? `stream ${opts.index}`;
  const skip = new SkipPrefix(offset, opts.skip?.sha256 ?? '', whole, label);
  const recipients = opts.encryptTo?.length ?? 0;
  const zstd = new BudgetCompress({
    level: opts.level, workers: opts.workers, maxStored: opts.maxStored ?? Number.MAX_SAFE_INTEGER,
    ...(encrypted ? { stored: (n: number) => ageBound(n, recipients) } : {}),
    onRaw: (chunk) => {
      whole.update(chunk);
      part.update(chunk);
      rawBytes += chunk.length;
      opts.onBytes?.(chunk.length);
    },
  });
  // Once the last volume is closed, the rest of the send is not wanted.
  writer.once('finish', () => {
    if (zstd.cut) src.destroy();
  });
  try {
    if (encrypted) await pipeline(src, skip, zstd, encryptStream(opts.encryptTo ?? []), writer);
    else await pipeline(src, skip, zstd, writer);
  } catch (err) {
    if (!(zstd.cut && writer.writableFinished)) throw err;
  }
  if (opts.syncFolder !== false && !opts.place) await syncStreamsFolder(opts.dir);
  const storedBytes = writer.volumes.reduce((sum, v) => sum + v.bytes, 0);
  return {
    rawBytes, rawSha256: part.digest('hex'), storedBytes, volumes: writer.volumes,
    segment: { offset, cut: zstd.cut, endBytes: offset + rawBytes, endSha256: whole.digest('hex') },
  };
}
