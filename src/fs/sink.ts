/**
 * Writes a byte stream into a new file while hashing it, for the relay
 * receiver, where the file is the only copy in flight and throughput is the
 * point. Unlike `pipeline(source, hashTap, createWriteStream)`, which settles
 * every 64 KiB pipe read through three stream stages:
 *
 * - chunks are gathered into batches of BATCH bytes and written with one
 *   positioned `writev`, and up to IN_FLIGHT batches are with the kernel
 *   while the next one is read and hashed (backpressure: the source is not
 *   read further while that many writes are pending);
 * - the fsync is started as soon as the last byte is written and handed back
 *   as a promise, so the next file arrives while the disk catches up; the
 *   caller awaits every `durable` before it calls the files complete.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { createExclusive, openToContinue } from './safe.js';

const BATCH = 1024 * 1024;
const IN_FLIGHT = 4;

export interface SunkFile {
  bytes: number;
  /** Hex sha256 of every byte written. */
  sha256: string;
  /** Resolves when the file's data is on disk (fsync) and its handle closed. */
  durable: Promise<void>;
}

/** A kept first part of the file: its length and the sha256 state over it (the source brings the rest). */
export interface KeptPrefix {
  bytes: number;
  hash: Hash;
  /** The folder the file must lie in without a link between. */
  within: string;
}

export async function sinkToFile(source: AsyncIterable<Buffer>, path: string, onBytes?: (n: number) => void, kept?: KeptPrefix): Promise<SunkFile> {
  const fh: FileHandle = kept ? await openToContinue(path, kept.bytes, kept.within) : await createExclusive(path);
  const hash = kept ? kept.hash.copy() : createHash('sha256');
  const pending: Array<Promise<unknown>> = [];
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let position = kept?.bytes ?? 0;
  const flush = (): void => {
    if (batchBytes === 0) return;
    const w = fh.writev(batch, position);
    // Errors surface where the promise is awaited; never as unhandled.
    w.catch(() => undefined);
    pending.push(w);
    position += batchBytes;
    batch = [];
    batchBytes = 0;
  };
  try {
    for await (const chunk of source) {
      hash.update(chunk);
      batch.push(chunk);
      batchBytes += chunk.length;
      onBytes?.(chunk.length);
      if (batchBytes >= BATCH) {
        flush();
        if (pending.length >= IN_FLIGHT) {
          const w = pending.shift()!;
          await checkedWrite(w).catch((e: unknown) => {
            pending.push(w);
            throw e;
          });
        }
      }
    }
    flush();
    for (const w of [...pending]) {
      await checkedWrite(w);
      pending.shift();
    }
  } catch (err) {
    // Every byte that arrived is written out: a resumed push goes on after the last of them.
    flush();
    const writes = await Promise.allSettled(pending);
    // A failed write may have left a hole: nothing of such a file is worth keeping.
    if (writes.some((w) => w.status === 'rejected' || (w.value as { bytesWritten: number; buffers: Buffer[] }).bytesWritten !== (w.value as { buffers: Buffer[] }).buffers.reduce((n, x) => n + x.length, 0))) {
      await fh.truncate(0).catch(() => undefined);
    }
    // What arrived is kept for the next connection (relay resume): make it durable before letting go.
    await fh.sync().catch(() => undefined);
    await fh.close().catch(() => undefined);
    throw err;
  }
  const durable = fh.sync().finally(() => fh.close());
  durable.catch(() => undefined);
  return { bytes: position, sha256: hash.digest('hex'), durable };
}

/** A short write to a regular file means the disk is full or failing: say so. */
async function checkedWrite(w: Promise<unknown>): Promise<void> {
  const r = (await w) as { bytesWritten: number; buffers: Buffer[] };
  const want = r.buffers.reduce((n, b) => n + b.length, 0);
  if (r.bytesWritten !== want) throw new Error(`short write: ${r.bytesWritten} of ${want} bytes (is the disk full?)`);
}
