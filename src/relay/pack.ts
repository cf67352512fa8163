/**
 * The sender's stage: bundles as one tar stream. The first entry is a small
 * header naming every bundle and the byte total (so the receiver can tell a
 * cut stream from a finished one and show an ETA); then, per bundle,
 * manifest.json first (the receiver checks each later file against it as it
 * arrives), SHA256SUMS, RESTORE.txt and the volumes in apply order.
 */
import { lstat } from 'node:fs/promises';
import { ZferryError } from '../errors.js';
import { basename, join } from 'node:path';
import tar from 'tar-stream';
import { MANIFEST_FILE, RESTORE_FILE, SUMS_FILE, readManifest, type Manifest } from '../bundle/index.js';
import { SIGNATURE_FILE } from '../trust/minisign.js';
import { BufferPool, waitFor } from '../pipeline/buffer-pool.js';
import { openRegular, readRegular, regularFileSize } from '../fs/safe.js';

export const RELAY_HEADER = '.zferry-relay.json';

/**
 * Version 2 adds resume: a push may be an `offer` (the header alone; the
 * receiver answers on the reply port with what it holds, see holdings.ts)
 * and a `data` push then leaves out what the receiver holds.
 */
export const RELAY_WIRE_VERSION = 2;

export interface RelayHeader {
  format: 'zferry-relay';
  formatVersion: 1 | 2;
  /** v2: `offer` carries no files and asks for the receiver's holdings; `data` (also when absent) carries the bundles. */
  phase?: 'offer' | 'data';
  /** `bytes`: what this push carries of the bundle. */
  bundles: Array<{ name: string; bundleId: string; bytes: number }>;
  totalBytes: number;
  /** v2 data: bundle name → volume file → bytes the receiver holds and this push leaves out (the entry carries the rest). */
  resume?: Record<string, Record<string, number>>;
  /** v2 data: bundles complete in the receiver's spool: nothing of them is carried. */
  held?: string[];
}

/** What the receiver said it holds, as the sender uses it: per bundle name. */
export interface Resume {
  held: Set<string>;
  offsets: Map<string, Map<string, number>>;
}

/** The receiver's holdings, as far as they fit the bundles: a count past a volume's size, or for a file not in it, is ignored. */
export function resumeFrom(bundles: PackedBundle[], held: Array<{ name: string; bundleId: string; complete: boolean; files: Record<string, number> }>): Resume {
  const r: Resume = { held: new Set(), offsets: new Map() };
  for (const b of bundles) {
    const name = basename(b.dir);
    const h = held.find((x) => x.name === name && x.bundleId === b.manifest.bundleId);
    if (!h) continue;
    if (h.complete) {
      r.held.add(name);
      continue;
    }
    const offs = new Map<string, number>();
    for (const s of b.manifest.streams) for (const v of s.volumes) {
      const n = h.files[v.file];
      if (typeof n === 'number' && n > 0 && n <= v.bytes) offs.set(v.file, n);
    }
    r.offsets.set(name, offs);
  }
  return r;
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
 * Volume bodies are read into a pool of reused buffers (see BufferPool): a
 * fresh buffer per read made V8 collect garbage every 64 MiB sent, which
 * measured as much CPU as the copying itself. tar-stream passes body chunks
 * through its pack unchanged, so the pack's consumer releases each chunk once
 * written out (drainInto). 8 x 1 MiB keeps mbuffer's pipe full while the
 * disk reads ahead.
 */
export const SEND_POOL = { count: 8, size: 1024 * 1024 };

/** Exactly `bytes` bytes of the file at `path` into a tar entry of that size. */
async function writeBody(dir: string, path: string, bytes: number, entry: NodeJS.WritableStream, pool: BufferPool | null, onBytes?: (n: number) => void, from = 0): Promise<void> {
  const { fh, size } = await openRegular(path, dir);
  try {
    if (size !== bytes) throw new Error(`${path}: is ${size} bytes, manifest.json says ${bytes}`);
    let at = from;
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
      if (!entry.write(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead))) await waitFor(entry, 'drain');
    }
    const finished = waitFor(entry, 'finish');
    entry.end();
    await finished;
  } finally {
    await fh.close();
  }
}

const SMALL_FILES = [MANIFEST_FILE, SUMS_FILE, RESTORE_FILE];

/** The small files a bundle has: the signature travels where there is one. */
async function smallFiles(dir: string): Promise<string[]> {
  const signed = await lstat(join(dir, SIGNATURE_FILE)).then(() => true, () => false);
  return signed ? [...SMALL_FILES, SIGNATURE_FILE] : SMALL_FILES;
}

export async function describeBundles(dirs: string[]): Promise<PackedBundle[]> {
  const out: PackedBundle[] = [];
  for (const dir of dirs) {
    const manifest = await readManifest(dir);
    const files = await smallFiles(dir);
    let bytes = 0;
    for (const f of files) {
      const file = join(dir, f);
      const size = await regularFileSize(file, dir);
      if (size === null) throw new ZferryError(`${file}: missing`, { file });
      bytes += size;
    }
    for (const s of manifest.streams) for (const v of s.volumes) bytes += v.bytes;
    for (const f of manifest.parity?.files ?? []) bytes += f.bytes;
    out.push({ dir, manifest, files, bytes });
  }
  return out;
}

/** Bytes a push carries of `b`, leaving out what the receiver holds. */
function carried(b: PackedBundle, resume: Resume | null): number {
  const name = basename(b.dir);
  if (resume?.held.has(name)) return 0;
  const offs = resume?.offsets.get(name);
  if (!offs) return b.bytes;
  let skip = 0;
  for (const n of offs.values()) skip += n;
  return b.bytes - skip;
}

export function relayHeader(bundles: PackedBundle[], phase: 'offer' | 'data' = 'data', resume: Resume | null = null): RelayHeader {
  const list = bundles.map((b) => ({ name: basename(b.dir), bundleId: b.manifest.bundleId, bytes: phase === 'offer' ? 0 : carried(b, resume) }));
  const totalBytes = list.reduce((n, b) => n + b.bytes, 0);
  // A whole push is version 1 exactly, which every receiver reads; an offer or a resumed push needs version 2.
  if (phase === 'data' && !resume) return { format: 'zferry-relay', formatVersion: 1, bundles: list, totalBytes };
  const h: RelayHeader = { format: 'zferry-relay', formatVersion: 2, phase, bundles: list, totalBytes };
  if (phase === 'data' && resume) {
    h.held = [...resume.held];
    h.resume = Object.fromEntries([...resume.offsets].map(([name, offs]) => [name, Object.fromEntries(offs)]));
  }
  return h;
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
export function packBundles(bundles: PackedBundle[], opts: { onBytes?: (n: number) => void; pool?: BufferPool; phase?: 'offer' | 'data'; resume?: Resume | null } = {}): tar.Pack {
  const { onBytes, pool = null, phase = 'data', resume = null } = opts;
  const pack = tar.pack();
  pack.once('close', () => pool?.close());
  (async () => {
    const newest = bundles.reduce((t, b) => Math.max(t, bundleTime(b).getTime()), 0);
    await addBuffer(pack, RELAY_HEADER, Buffer.from(JSON.stringify(relayHeader(bundles, phase, resume)) + '\n'), new Date(newest));
    for (const b of phase === 'offer' ? [] : bundles) {
      const name = basename(b.dir);
      if (resume?.held.has(name)) continue;
      const offs = resume?.offsets.get(name);
      for (const f of b.files) {
        if (pack.destroyed) throw new Error('tar pack destroyed');
        const data = await readRegular(join(b.dir, f), { within: b.dir });
        await addBuffer(pack, `${name}/${f}`, data, bundleTime(b));
        onBytes?.(data.length);
      }
      for (const s of b.manifest.streams) {
        for (const v of s.volumes) {
          if (pack.destroyed) throw new Error('tar pack destroyed');
          // The receiver holds the first `from` bytes: the entry carries the rest (none: no entry).
          const from = offs?.get(v.file) ?? 0;
          if (from === v.bytes) continue;
          const entry = pack.entry({ name: `${name}/${v.file}`, size: v.bytes - from, mode: 0o644, mtime: bundleTime(b) });
          // When the pack is destroyed its open entry is too; the pack carries that error to the consumer.
          entry.on('error', () => undefined);
          await writeBody(b.dir, join(b.dir, v.file), v.bytes, entry as unknown as NodeJS.WritableStream, pool, onBytes, from);
        }
      }
      // Parity files (export --parity) travel after the volumes, as volumes do: checked against the manifest on arrival.
      for (const f of b.manifest.parity?.files ?? []) {
        if (pack.destroyed) throw new Error('tar pack destroyed');
        const entry = pack.entry({ name: `${name}/${f.file}`, size: f.bytes, mode: 0o644, mtime: bundleTime(b) });
        entry.on('error', () => undefined);
        await writeBody(b.dir, join(b.dir, f.file), f.bytes, entry as unknown as NodeJS.WritableStream, pool, onBytes);
      }
    }
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return pack;
}
