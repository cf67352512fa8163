/**
 * The sender's stage: bundles as one tar stream. The first entry is a small
 * header naming every bundle and the byte total (so the receiver can tell a
 * cut stream from a finished one and show an ETA); then, per bundle,
 * manifest.json first (the receiver checks each later file against it as it
 * arrives), SHA256SUMS, RESTORE.txt and the volumes in apply order.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
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

/** Fewer, larger reads: every read is a fresh buffer for the garbage collector to track. */
const READ_CHUNK = 4 * 1024 * 1024;

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

function addBuffer(pack: tar.Pack, name: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => pack.entry({ name, size: data.length, mode: 0o644 }, data, (err) => (err ? reject(err) : resolve())));
}

/** A tar stream of the bundles; it errors (and ends) if any file cannot be read whole. */
export function packBundles(bundles: PackedBundle[], onBytes?: (n: number) => void): tar.Pack {
  const pack = tar.pack();
  (async () => {
    await addBuffer(pack, RELAY_HEADER, Buffer.from(JSON.stringify(relayHeader(bundles)) + '\n'));
    for (const b of bundles) {
      const name = basename(b.dir);
      for (const f of b.files) {
        const data = await readFile(join(b.dir, f));
        await addBuffer(pack, `${name}/${f}`, data);
        onBytes?.(data.length);
      }
      for (const s of b.manifest.streams) {
        for (const v of s.volumes) {
          const entry = pack.entry({ name: `${name}/${v.file}`, size: v.bytes, mode: 0o644 });
          const file = createReadStream(join(b.dir, v.file), { highWaterMark: READ_CHUNK });
          if (onBytes) file.on('data', (c) => onBytes(c.length));
          await pipeline(file, entry);
        }
      }
    }
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return pack;
}
