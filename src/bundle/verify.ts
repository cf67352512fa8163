/**
 * Full check of a bundle at rest: manifest schema, RESTORE.txt as the manifest
 * lists it (format 2), SHA256SUMS agreeing with the manifest, every volume
 * present with the right size and sha256, and no stray file under streams/
 * that `cat streams/NNNN-*.zst.*` would pick up.
 */
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ZferryError } from '../errors.js';
import { assertRealFolders, readRegular, regularFileSize } from '../fs/safe.js';
import { VolumeReader } from './volume-reader.js';
import { MAX_MANIFEST_BYTES, readManifest, type Manifest } from './manifest.js';
import { SUMS_FILE, sha256sumsText } from './sums.js';
import { hashFile } from '../parity/par2.js';
import { isS3Url } from '../store/s3.js';
import { checkBundleAtRestInBucket } from './bucket.js';

export interface VerifyReport {
  bundleDir: string;
  manifest: Manifest;
  streams: number;
  volumes: number;
  storedBytes: number;
  /** False for a format-1 bundle: nothing checks its RESTORE.txt (read it before running it). */
  restoreCovered: boolean;
}

export interface VerifyOptions {
  onBytes?: (n: number) => void;
  /** The manifest as already read (and perhaps signature-checked); read from bundleDir otherwise. */
  manifest?: Manifest;
}

export async function verifyBundle(bundleDir: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const manifest = opts.manifest ?? (await readManifest(bundleDir));
  if (isS3Url(bundleDir)) {
    await checkBundleAtRestInBucket(bundleDir, manifest);
  } else {
    await checkRestore(bundleDir, manifest);
    await checkSums(bundleDir, manifest);
    await checkNoStrays(bundleDir, manifest);
  }
  let volumes = 0;
  let storedBytes = 0;
  for (const s of manifest.streams) {
    if (s.volumes.length === 0) continue;
    const sink = new Writable({ highWaterMark: 1 << 20, write: (_c, _e, done) => done() });
    await pipeline(new VolumeReader(bundleDir, s.volumes, { onBytes: opts.onBytes }), sink);
    volumes += s.volumes.length;
    storedBytes += s.storedBytes;
  }
  if (!isS3Url(bundleDir)) await checkParityFiles(bundleDir, manifest, true);
  return report(bundleDir, manifest, volumes, storedBytes);
}

/**
 * The parity files the manifest lists (format 2, export --parity): present,
 * their size, and with `hash` their sha256, as every other file on the disk.
 */
export async function checkParityFiles(bundleDir: string, m: Manifest, hash: boolean): Promise<void> {
  for (const [i, f] of (m.parity?.files ?? []).entries()) {
    const path = join(bundleDir, f.file);
    const ctx = { file: path, field: `/parity/files/${i}` };
    const size = await regularFileSize(path, bundleDir);
    if (size === null) throw new ZferryError(`missing parity file ${path}`, ctx);
    if (size !== f.bytes) throw new ZferryError(`${path}: size is ${size} bytes, manifest says ${f.bytes}`, { ...ctx, offset: Math.min(size, f.bytes) });
    if (!hash) continue;
    const got = await hashFile(bundleDir, f.file);
    if (got.sha256 !== f.sha256) throw new ZferryError(`${path}: sha256 is ${got.sha256}, manifest says ${f.sha256}`, ctx);
  }
}

function report(bundleDir: string, manifest: Manifest, volumes: number, storedBytes: number): VerifyReport {
  return { bundleDir, manifest, streams: manifest.streams.length, volumes, storedBytes, restoreCovered: manifest.restore !== undefined };
}

/** A volume's size and sha256 as computed while it was being written. */
export interface ArrivedVolume {
  bytes: number;
  sha256: string;
}

/**
 * The check of a bundle just written by a stage that hashed every volume as it
 * arrived (the relay receiver): the same verdict as verifyBundle without a
 * second full read. Every volume the manifest lists must have arrived with
 * its manifest size and sha256 and be that size on disk; SHA256SUMS must match
 * the manifest; no stray file may sit under streams/. The manifest is the one
 * the hashes were checked against (parsed from the bytes written to disk).
 */
export async function verifyArrived(bundleDir: string, manifest: Manifest, arrived: ReadonlyMap<string, ArrivedVolume>): Promise<VerifyReport> {
  await checkRestore(bundleDir, manifest);
  await checkSums(bundleDir, manifest);
  await checkNoStrays(bundleDir, manifest);
  let volumes = 0;
  let storedBytes = 0;
  for (const s of manifest.streams) {
    for (const v of s.volumes) {
      const path = join(bundleDir, v.file);
      const got = arrived.get(v.file);
      if (!got) throw new ZferryError(`missing volume ${path}`, { file: path });
      if (got.bytes !== v.bytes || got.sha256 !== v.sha256) {
        throw new ZferryError(`${path}: arrived with sha256 ${got.sha256} (${got.bytes} bytes), manifest says ${v.sha256} (${v.bytes} bytes)`, { file: path });
      }
      const size = await regularFileSize(path, bundleDir);
      if (size === null) throw new ZferryError(`missing volume ${path}`, { file: path });
      if (size !== v.bytes) throw new ZferryError(`${path}: size is ${size} bytes, manifest says ${v.bytes}`, { file: path, offset: Math.min(size, v.bytes) });
    }
    volumes += s.volumes.length;
    storedBytes += s.storedBytes;
  }
  // Parity files are not hashed on arrival: read them once here.
  await checkParityFiles(bundleDir, manifest, true);
  return report(bundleDir, manifest, volumes, storedBytes);
}

/**
 * Format 2: RESTORE.txt is the file the manifest lists, by size and sha256,
 * so that a signature over the manifest covers the commands people run.
 * Format 1 lists nothing to check it against.
 */
async function checkRestore(bundleDir: string, m: Manifest): Promise<void> {
  if (m.restore === undefined) return;
  const file = join(bundleDir, m.restore.file);
  const ctx = { file, field: '/restore' };
  let data: Buffer;
  try {
    // A link, FIFO or folder at its name is refused by name; it is never followed or waited on.
    data = await readRegular(file, { within: bundleDir, maxBytes: MAX_MANIFEST_BYTES, what: m.restore.file });
  } catch (err) {
    if (err instanceof ZferryError) throw new ZferryError(err.message, { ...err.context, ...ctx });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ZferryError(`${file}: missing (manifest.json lists its size and sha256)`, ctx);
    throw new ZferryError(`${file}: cannot read (${code ?? (err as Error).message})`, ctx);
  }
  if (data.length !== m.restore.bytes) {
    throw new ZferryError(`${file}: size is ${data.length} bytes, manifest.json says ${m.restore.bytes}: not the RESTORE.txt this bundle was exported with; do not run it`, ctx);
  }
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (data.length !== m.restore.bytes || sha256 !== m.restore.sha256) {
    throw new ZferryError(`${file}: sha256 is ${sha256}, manifest.json says ${m.restore.sha256}: not the RESTORE.txt this bundle was exported with; do not run it`, ctx);
  }
}

async function checkSums(bundleDir: string, m: Manifest): Promise<void> {
  const file = join(bundleDir, SUMS_FILE);
  let text: string;
  try {
    text = (await readRegular(file, { maxBytes: MAX_MANIFEST_BYTES, what: SUMS_FILE })).toString('utf8');
  } catch (err) {
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`${file}: missing (every bundle carries one for sha256sum -c)`, { file });
  }
  const got = text.split('\n').filter((l) => l !== '');
  const want = sha256sumsText(m).split('\n').filter((l) => l !== '');
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] === want[i]) continue;
    const detail = got[i] === undefined ? `lacks "${want[i]}"` : want[i] === undefined ? `has an extra line "${got[i]}"` : `line ${i + 1} is "${got[i]}", manifest.json says "${want[i]}"`;
    throw new ZferryError(`${file}: does not match manifest.json: ${detail}`, { file });
  }
}

async function checkNoStrays(bundleDir: string, m: Manifest): Promise<void> {
  const listed = new Set(m.streams.flatMap((s) => s.volumes.map((v) => v.file)));
  let names: string[];
  try {
    await assertRealFolders(bundleDir, join(bundleDir, 'streams'));
    names = await readdir(join(bundleDir, 'streams'));
  } catch (err) {
    if (err instanceof ZferryError) throw err;
    names = [];
  }
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    if (!listed.has(`streams/${name}`)) {
      const file = join(bundleDir, 'streams', name);
      throw new ZferryError(`${file}: not listed in manifest.json (a stray volume would corrupt a restore by cat)`, { file });
    }
  }
}

/**
 * The checks of a bundle that read no volume byte: RESTORE.txt as the
 * manifest lists it (format 2), SHA256SUMS agrees with the manifest, no stray
 * file under streams/, every volume present with its manifest size. Import
 * runs it before anything is received when it verifies volumes as it streams
 * them (one read pass), so a missing or cut volume is found before the first
 * receive rather than part way through.
 */
export async function checkBundleAtRest(
  bundleDir: string, manifest: Manifest,
  /** A staged part (import --stage) holds only its own stream's volumes and no parity: `streams` names that stream. */
  only: { streams: ReadonlySet<number> } | null = null,
): Promise<void> {
  if (isS3Url(bundleDir)) return checkBundleAtRestInBucket(bundleDir, manifest);
  await checkRestore(bundleDir, manifest);
  await checkSums(bundleDir, manifest);
  await checkNoStrays(bundleDir, manifest);
  for (const s of manifest.streams) {
    if (only && !only.streams.has(s.index)) continue;
    for (const v of s.volumes) {
      const path = join(bundleDir, v.file);
      const size = await regularFileSize(path, bundleDir);
      if (size === null) throw new ZferryError(`missing volume ${path}`, { file: path });
      if (size !== v.bytes) {
        throw new ZferryError(`${path}: size is ${size} bytes, manifest says ${v.bytes} (${size < v.bytes ? 'truncated' : 'too long'})`, { file: path, offset: Math.min(size, v.bytes) });
      }
    }
  }
  if (!only) await checkParityFiles(bundleDir, manifest, false);
}
