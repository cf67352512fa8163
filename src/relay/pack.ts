/**
 * The sender's stage: bundles as one tar stream. The first entry is a small
 * header naming every bundle and the byte total (so the receiver can tell a
 * cut stream from a finished one and show an ETA); then, per bundle,
 * manifest.json first (the receiver checks each later file against it as it
 * arrives), SHA256SUMS, RESTORE.txt and the volumes in apply order.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Writable } from 'node:stream';
import tar from 'tar-stream';
import { MANIFEST_FILE, RESTORE_FILE, SUMS_FILE, readManifest, type Manifest } from '../bundle/index.js';
import { SIGNATURE_FILE } from '../trust/minisign.js';

export const RELAY_HEADER = '.zferry-relay.json';

export interface RelayHeader {
  format: 'zferry-relay';
  formatVersion: 1;
  bundles: Array<{ name: string; bundleId: string; bytes: number }>;
  totalBytes: number;
}

export interface PackedBundle {
  dir: string;
  manifest: Manifest;
  /** Manifest first (the receiver checks it before any volume), then sums, restore recipe, signature. */
  files: string[];
  /** Bytes of every file sent for this bundle. */
  bytes: number;
}

/**
 * Volume bodies are read into a small set of buffers that are reused, not
 * into a fresh buffer per read: a fresh 1 GiB of buffers per GiB sent makes
 * V8 collect garbage every 64 MiB, which measured as much CPU as the copying
 * itself. tar-stream passes body chunks through its pack unchanged, so the
 * consumer of the pack, once a chunk has left the process (its socket write
 * completed), hands it back with `release`; chunks not from the pool (tar
 * headers, padding, small files) are ignored there.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: Array<{ resolve: (b: Buffer) => void; reject: (err: Error) => void }> = [];
  private readonly owners = new Map<ArrayBufferLike, Buffer>();
  private closed = false;

  constructor(count: number, readonly size: number) {
    for (let i = 0; i < count; i++) {
      const b = Buffer.allocUnsafeSlow(size);
      this.free.push(b);
      this.owners.set(b.buffer, b);
    }
  }

  take(): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('buffer pool closed'));
    const b = this.free.pop();
    return b ? Promise.resolve(b) : new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** The consumer is gone: whoever waits for a buffer stops waiting. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(new Error('buffer pool closed'));
  }

  /** The consumer is done with `chunk`; if it came from this pool its buffer is free again. */
  release(chunk: Buffer): void {
    const b = this.owners.get(chunk.buffer);
    if (!b) return;
    const next = this.waiting.shift();
    if (next) next.resolve(b);
    else this.free.push(b);
  }
}

/** 8 x 1 MiB: enough to keep mbuffer's pipe full while the disk reads ahead. */
export const SEND_POOL = { count: 8, size: 1024 * 1024 };

/** Resolves on `event`, rejects if the stream errors or closes first. */
function settled(stream: NodeJS.EventEmitter & { destroyed?: boolean }, event: 'drain' | 'finish'): Promise<void> {
  return new Promise((resolve, reject) => {
    // Destroyed already: nothing more will be emitted.
    if (stream.destroyed) return reject(new Error('tar pack destroyed'));
    const done = (err?: unknown) => {
      stream.off(event, ok);
      stream.off('error', fail);
      stream.off('close', closed);
      if (err) reject(err);
      else resolve();
    };
    const ok = () => done();
    const fail = (err: unknown) => done(err ?? new Error('tar entry failed'));
    const closed = () => done(new Error('tar entry closed before it was written'));
    stream.once(event, ok);
    stream.once('error', fail);
    stream.once('close', closed);
  });
}

/** Exactly `bytes` bytes of the file at `path` into a tar entry of that size. */
async function writeBody(path: string, bytes: number, entry: NodeJS.WritableStream, pool: BufferPool | null, onBytes?: (n: number) => void): Promise<void> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size !== bytes) throw new Error(`${path}: is ${size} bytes, manifest.json says ${bytes}`);
    let at = 0;
    while (at < bytes) {
      if ((entry as { destroyed?: boolean }).destroyed) throw new Error('tar pack destroyed');
      const buf = pool ? await pool.take() : Buffer.allocUnsafeSlow(SEND_POOL.size);
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, bytes - at), at).catch((err: unknown) => {
        pool?.release(buf);
        throw err;
      });
      if (bytesRead === 0) {
        pool?.release(buf);
        throw new Error(`${path}: ended after ${at} of ${bytes} bytes`);
      }
      at += bytesRead;
      onBytes?.(bytesRead);
      if (!entry.write(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead))) await settled(entry, 'drain');
    }
    const finished = settled(entry, 'finish');
    entry.end();
    await finished;
  } finally {
    await fh.close();
  }
}

const SMALL_FILES = [MANIFEST_FILE, SUMS_FILE, RESTORE_FILE];

/** The small files a bundle has: the signature travels where there is one. */
async function smallFiles(dir: string): Promise<string[]> {
  const signed = await stat(join(dir, SIGNATURE_FILE)).then(() => true, () => false);
  return signed ? [...SMALL_FILES, SIGNATURE_FILE] : SMALL_FILES;
}

export async function describeBundles(dirs: string[]): Promise<PackedBundle[]> {
  const out: PackedBundle[] = [];
  for (const dir of dirs) {
    const manifest = await readManifest(dir);
    const files = await smallFiles(dir);
    let bytes = 0;
    for (const f of files) bytes += (await stat(join(dir, f))).size;
    for (const s of manifest.streams) for (const v of s.volumes) bytes += v.bytes;
    out.push({ dir, manifest, files, bytes });
  }
  return out;
}

export function relayHeader(bundles: PackedBundle[]): RelayHeader {
  return {
    format: 'zferry-relay',
    formatVersion: 1,
    bundles: bundles.map((b) => ({ name: basename(b.dir), bundleId: b.manifest.bundleId, bytes: b.bytes })),
    totalBytes: bundles.reduce((n, b) => n + b.bytes, 0),
  };
}

function addBuffer(pack: tar.Pack, name: string, data: Buffer, mtime: Date): Promise<void> {
  return new Promise((resolve, reject) => pack.entry({ name, size: data.length, mode: 0o644, mtime }, data, (err) => (err ? reject(err) : resolve())));
}

/** Entries are dated by their bundle's createdAt, so the same bundles always make the same bytes. */
function bundleTime(b: PackedBundle): Date {
  return new Date(b.manifest.createdAt);
}

/**
 * A tar stream of the bundles; it errors (and ends) if any file cannot be read
 * whole. With a pool, volume bodies are read into its buffers and the consumer
 * must `pool.release` every chunk once written out, or the pack stalls when
 * the pool runs dry.
 */
export function packBundles(bundles: PackedBundle[], opts: { onBytes?: (n: number) => void; pool?: BufferPool } = {}): tar.Pack {
  const { onBytes, pool = null } = opts;
  const pack = tar.pack();
  pack.once('close', () => pool?.close());
  (async () => {
    const newest = bundles.reduce((t, b) => Math.max(t, bundleTime(b).getTime()), 0);
    await addBuffer(pack, RELAY_HEADER, Buffer.from(JSON.stringify(relayHeader(bundles)) + '\n'), new Date(newest));
    for (const b of bundles) {
      const name = basename(b.dir);
      for (const f of b.files) {
        if (pack.destroyed) throw new Error('tar pack destroyed');
        const data = await readFile(join(b.dir, f));
        await addBuffer(pack, `${name}/${f}`, data, bundleTime(b));
        onBytes?.(data.length);
      }
      for (const s of b.manifest.streams) {
        for (const v of s.volumes) {
          if (pack.destroyed) throw new Error('tar pack destroyed');
          const entry = pack.entry({ name: `${name}/${v.file}`, size: v.bytes, mode: 0o644, mtime: bundleTime(b) });
          // When the pack is destroyed its open entry is too; the pack carries that error to the consumer.
          entry.on('error', () => undefined);
          await writeBody(join(b.dir, v.file), v.bytes, entry as unknown as NodeJS.WritableStream, pool, onBytes);
        }
      }
    }
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return pack;
}

/**
 * Copies `source` into `dest` with backpressure, like pipeline(), and calls
 * `written(chunk)` when each chunk has left for the kernel (its write
 * completed), which is when a pooled buffer may be reused. Ends `dest` when
 * `source` ends; rejects on either side's error.
 */
export async function drainInto(source: AsyncIterable<unknown> & { destroy(err?: Error): void }, dest: Writable, written: (chunk: Buffer) => void): Promise<void> {
  let failed: unknown = null;
  const onError = (err: unknown) => {
    failed ??= err;
    source.destroy(err as Error);
  };
  dest.on('error', onError);
  try {
    for await (const chunk of source) {
      if (failed) throw failed;
      // A destination already gone (the child exited before our first write)
      // emits nothing more: waiting for 'drain' would wait for ever.
      if (dest.destroyed || dest.writableEnded) throw failed ?? new Error('the receiving side closed early');
      const buf = chunk as Buffer;
      const ok = dest.write(buf, (err) => {
        if (err) onError(err);
        else written(buf);
      });
      if (!ok) await drained(dest);
    }
    if (failed) throw failed;
    await new Promise<void>((resolve, reject) => {
      if (dest.destroyed) return reject(failed ?? new Error('the receiving side closed early'));
      dest.once('error', reject);
      dest.end(() => resolve());
    });
  } catch (err) {
    // As pipeline() would: both ends are torn down, so nothing (execa waiting
    // for a child's stdin to close, a pack waiting for a buffer) waits on them.
    source.destroy(err as Error);
    dest.destroy();
    throw err;
  } finally {
    dest.off('error', onError);
    // A late error (EPIPE once the peer is gone) has nobody left to tell; the caller already has the outcome.
    dest.on('error', () => undefined);
  }
}

/** 'drain' for a Node writable; rejects on error or close first, or at once if it is already destroyed. */
function drained(dest: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (dest.destroyed) return reject(dest.errored ?? new Error('the receiving side closed early'));
    const done = (err?: unknown) => {
      dest.off('drain', ok);
      dest.off('error', fail);
      dest.off('close', closed);
      if (err) reject(err);
      else resolve();
    };
    const ok = () => done();
    const fail = (err: unknown) => done(err);
    const closed = () => done(dest.errored ?? new Error('the receiving side closed early'));
    dest.once('drain', ok);
    dest.once('error', fail);
    dest.once('close', closed);
  });
}
