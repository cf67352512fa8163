/**
 * Splits one byte stream into volume files of `volumeSize` bytes (the last
 * one smaller), hashing each, fsyncing each on close (or handing it to a
 * SyncBatch, which syncs many together later). Volumes are byte ranges,
 * not frame-aligned: `cat` of them in name order restores the stream.
 */
import { mkdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fileError } from '../fs/errors.js';
import { createExclusive, ensureFolder } from '../fs/safe.js';
import type { SyncBatch } from '../fs/sync-batch.js';
import { VolumeSplitter, type SplitOptions } from './volume-splitter.js';

export { MAX_VOLUMES } from './volume-splitter.js';

export interface VolumeWriterOptions extends SplitOptions {
  /** Bundle folder; files go to `dir/streams/`. */
  dir: string;
  /** Closed volumes are synced by this batch, not one by one: the caller flushes it before anything says they are complete. */
  syncBatch?: SyncBatch;
}

export class VolumeWriter extends VolumeSplitter<FileHandle> {
  constructor(private readonly opts: VolumeWriterOptions) {
    super(opts);
  }

  protected async openVolume(file: string, n: number): Promise<FileHandle> {
    const path = join(this.opts.dir, file);
    try {
      if (n === 0) {
        // The bundle folder is its maker's (export makes it fresh); streams/ in it must be a real folder.
        await mkdir(this.opts.dir, { recursive: true });
        await ensureFolder(join(this.opts.dir, 'streams'));
      }
      return await createExclusive(path);
    } catch (err) {
      throw fileError(err, 'creating', path);
    }
  }

  protected async writeVolume(fh: FileHandle, buf: Buffer, file: string, offset: number): Promise<void> {
    let off = 0;
    try {
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        off += bytesWritten;
      }
    } catch (err) {
      throw fileError(err, 'writing', join(this.opts.dir, file), offset + off);
    }
  }

  protected async finishVolume(fh: FileHandle, file: string): Promise<void> {
    const path = join(this.opts.dir, file);
    if (this.opts.syncBatch) return this.opts.syncBatch.add(fh, path);
    try {
      await fh.sync();
    } catch (err) {
      throw fileError(err, 'flushing', path);
    }
    try {
      await fh.close();
    } catch (err) {
      throw fileError(err, 'closing', path);
    }
  }

  protected async discardVolume(fh: FileHandle): Promise<void> {
    // Already closed when closing itself failed: that second close's refusal means nothing.
    await fh.close().catch(() => undefined);
  }
}
