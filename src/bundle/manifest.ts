/**
 * The bundle manifest: its types, parsing (schema + semantic checks) and the
 * atomic write. The manifest is the one file a reader trusts; every other
 * file in a bundle is checked against it.
 */
import { join } from 'node:path';
import type { DatasetType, Guid, Inventory, SnapshotRef, Step, StepFrom } from '../model.js';
import type { Scope } from '../plan/scope.js';
import type { ParityEntry } from '../parity/par2.js';
import { ZferryError } from '../errors.js';
import { readRegular, writeFileAtomic } from '../fs/safe.js';
import { validateManifestSchema } from './schema.js';
import { ZFERRY_VERSION } from '../version.js';
import { isS3Url } from '../store/s3.js';
import { readManifestInBucket } from './bucket.js';

/**
 * Bundle format versions this zferry reads. 2 adds `restore` (RESTORE.txt's
 * size and sha256, also a SHA256SUMS line) and `rename` streams; a version-1
 * reader would refuse them, so they carry a new number. Export writes FORMAT_VERSION unless asked
 * for 1 (`--bundle-format 1`, for a remote with an older zferry).
 */
export const FORMAT_VERSIONS = [1, 2] as const;
export type FormatVersion = (typeof FORMAT_VERSIONS)[number];
export const FORMAT_VERSION: FormatVersion = 2;
export const MANIFEST_FILE = 'manifest.json';
/**
 * A manifest larger than this is refused before it is read: a million
 * snapshots fit in well under it, and a hostile or damaged file cannot make
 * the reader allocate without bound.
 */
export const MAX_MANIFEST_BYTES = 128 * 1024 * 1024;

export type BasisOrigin = 'empty' | 'state-file' | 'receipt' | 'journal';

/** The target state the bundle was planned against. */
export interface Basis {
  origin: BasisOrigin;
  file: string | null;
  target: string | null;
  takenAt: string | null;
  inventory: Inventory | null;
  /** With origin 'journal': the bundle this one was planned on top of (it must be applied first). */
  bundleId?: string;
}

/** A stream's incremental base (see StepFrom). */
export type StreamFrom = StepFrom;

export type StreamKind = Step['kind'];

export interface VolumeEntry {
  /** `streams/NNNN-full.zst.VVV` or `streams/NNNN-incr.zst.VVV`. */
  file: string;
  bytes: number;
  sha256: string;
}

/** Format 2: RESTORE.txt covered like a volume, so a signature or `sha256sum -c` vouches for it. */
export interface RestoreEntry {
  file: 'RESTORE.txt';
  bytes: number;
  sha256: string;
}

/**
 * Format 2: this entry holds one segment of a send stream too large for one
 * disk (export --max-size/--fill). The segment is its own zstd (and age)
 * stream of raw bytes [offset, offset + rawBytes) of the whole send stream;
 * `rawBytes`/`rawSha256` of the entry are the segment's. Parts are numbered
 * from 1, one bundle each, each bundle planned on top of the previous one.
 */
export interface StreamPart {
  /** 1-based part number. */
  number: number;
  /** Raw byte offset of this segment in the whole send stream (0 for part 1). */
  offset: number;
  /** bundleId of the bundle holding part number - 1; null for part 1. */
  previous: string | null;
  /** true: the stream goes on in the next part (this entry is the bundle's last stream). */
  continues: boolean;
  /** The whole send stream's size and sha256: on the last part only (continues false), null otherwise. */
  streamRawBytes: number | null;
  streamRawSha256: string | null;
}

/** What a manifest adds to a step: its place in the bundle and its bytes. */
export interface StreamData {
  /** 1-based apply order. */
  index: number;
  /** The exact `zfs send` options used, e.g. ["-I"] or ["-p", "-c"]: letters on disk, data in code (sendOptionsOf). */
  sendFlags: string[];
  rawBytes: number;
  storedBytes: number;
  rawSha256: string | null;
  volumes: VolumeEntry[];
  /** Format 2, only on a stream split across bundles (see StreamPart). */
  part?: StreamPart;
}

/** One stream of a bundle: the planner's step as it was sent. */
export type StreamEntry = Step & StreamData;

export interface Manifest {
  format: 'zferry-bundle';
  formatVersion: FormatVersion;
  bundleId: string;
  createdAt: string;
  zferryVersion: string;
  source: { host: string; pool: string; root: string; poolGuid: Guid };
  basis: Basis;
  inventory: Inventory;
  /** What the export covered; absent in bundles written before filters existed (= everything). */
  scope?: Scope;
  compression: { algorithm: 'zstd'; level: number };
  /** Present when the compressed streams are encrypted with age; absent otherwise. */
  encryption?: { algorithm: 'age'; recipients: string[] };
  /** Required in format 2, absent in format 1 (whose RESTORE.txt nothing checks). */
  restore?: RestoreEntry;
  /** Format 2, optional (export --parity): par2 recovery files over every volume, in parity/. */
  parity?: ParityEntry;
  /** Format 2 only: the site exported for (export --site); absent for the default site. */
  site?: string;
  streams: StreamEntry[];
}

/** `streams/0003-incr.zst.002` for stream 3 (incremental), volume 2; `.zst.age.002` when encrypted. */
export function volumeFileName(index: number, kind: 'full' | 'incremental', volume: number, encrypted = false): string {
  const tag = kind === 'full' ? 'full' : 'incr';
  return `streams/${String(index).padStart(4, '0')}-${tag}.zst${encrypted ? '.age' : ''}.${String(volume).padStart(3, '0')}`;
}

/**
 * Parses and checks manifest text. The version is read before the schema runs
 * so that a newer bundle is refused by its version, not by a field the schema
 * does not know.
 */
export function parseManifest(text: string, file: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ZferryError(`${file}: not valid JSON: ${(err as Error).message}`, { file });
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ZferryError(`${file}: not a zferry manifest (expected a JSON object)`, { file });
  }
  const head = data as Record<string, unknown>;
  if (head.format !== 'zferry-bundle') {
    throw new ZferryError(`${file}: not a zferry manifest (format is ${JSON.stringify(head.format)}, expected "zferry-bundle")`, { file, field: '/format' });
  }
  if (!(FORMAT_VERSIONS as readonly unknown[]).includes(head.formatVersion)) {
    throw new ZferryError(
      `${file}: bundle format version ${JSON.stringify(head.formatVersion)} is not supported by zferry ${ZFERRY_VERSION} (supports ${FORMAT_VERSIONS.join(', ')})`,
      { file, field: '/formatVersion' },
    );
  }
  // The schema says the same; this says it in words rather than as a failed if/then.
  const pairing = checkRestoreForVersion(head);
  if (pairing) throw new ZferryError(`${file}: ${pairing.path} ${pairing.message}`, { file, field: pairing.path });
  const schemaError = validateManifestSchema(data);
  if (schemaError) {
    throw new ZferryError(`${file}: ${schemaError.path || '/'} ${schemaError.message}`, { file, field: schemaError.path });
  }
  const m = data as Manifest;
  const problem = checkSemantics(m);
  if (problem) {
    throw new ZferryError(`${file}: ${problem.path} ${problem.message}`, { file, field: problem.path });
  }
  return m;
}

export interface Problem {
  path: string;
  message: string;
}

function checkRestoreForVersion(head: Record<string, unknown>): Problem | null {
  if (head.formatVersion === 1 && head.restore !== undefined) {
    return { path: '/restore', message: 'is not part of bundle format version 1 (it came with version 2)' };
  }
  if (head.formatVersion === 1 && head.parity !== undefined) {
    return { path: '/parity', message: 'is not part of bundle format version 1 (it came with version 2)' };
  }
  if (head.formatVersion === 1 && Array.isArray(head.streams)) {
    const i = (head.streams as unknown[]).findIndex((x) => x !== null && typeof x === 'object' && 'part' in x);
    if (i >= 0) return { path: `/streams/${i}/part`, message: 'is not part of bundle format version 1 (streams split across disks came with version 2)' };
  }
  if (head.formatVersion !== 1 && head.restore === undefined) {
    return { path: '/restore', message: `is required in bundle format version ${String(head.formatVersion)} (RESTORE.txt's size and sha256)` };
  }
  return null;
}

function checkSemantics(m: Manifest): Problem | null {
  // The inventory is the source's word for --delete; a stream it does not
  // account for means one of the two is not the source's.
  if (m.inventory.root !== m.source.root) return { path: '/inventory/root', message: `must be the source root ${m.source.root}, got ${m.inventory.root}` };
  const inventory = new Map(m.inventory.datasets.map((d) => [d.path, d]));
  if (inventory.size !== m.inventory.datasets.length) return { path: '/inventory/datasets', message: 'lists a dataset path twice' };
  if (!inventory.has('')) return { path: '/inventory/datasets', message: `lacks the root dataset ${m.inventory.root} (path "")` };
  for (let i = 0; i < m.streams.length; i++) {
    const s = m.streams[i];
    const at = `/streams/${i}`;
    const d = inventory.get(s.dataset);
    if (!d) return { path: `${at}/dataset`, message: `${JSON.stringify(s.dataset)} is not in the manifest's own inventory` };
    if (s.kind !== 'create' && d.type !== s.type) return { path: `${at}/type`, message: `is ${s.type}, but the inventory lists ${JSON.stringify(s.dataset)} as a ${d.type}` };
    const guids = new Set(d.snapshots.map((x) => x.guid));
    const missing = s.creates.find((c) => !guids.has(c.guid));
    if (missing) return { path: `${at}/creates`, message: `@${missing.name} (guid ${missing.guid}) is not in the inventory of ${JSON.stringify(s.dataset)}` };
  }
  for (let i = 0; i < m.streams.length; i++) {
    const s = m.streams[i];
    const at = `/streams/${i}`;
    if (s.index !== i + 1) return { path: `${at}/index`, message: `must be ${i + 1} (streams are numbered 1..n in apply order), got ${s.index}` };
    if (s.kind !== 'rename' && ['renamedFrom', 'match', 'snapshots'].some((k) => k in s)) {
      return { path: at, message: `a ${s.kind} stream has no renamedFrom, match or snapshots (only a rename step has)` };
    }
    if ((s.kind === 'rename' || s.kind === 'create') && 'part' in s) return { path: `${at}/part`, message: `a ${s.kind} step carries no data, so it is never split into parts` };
    if (s.kind === 'rename') {
      const problem = checkRename(s, m.formatVersion, inventory.get(s.dataset)!.snapshots);
      if (problem) return { path: `${at}${problem.path}`, message: problem.message };
      continue;
    }
    if (s.kind === 'create') {
      if (s.from !== null || s.to !== null) return { path: at, message: 'a create step has no from/to snapshot' };
      if (s.volumes.length !== 0 || s.rawBytes !== 0 || s.storedBytes !== 0 || s.rawSha256 !== null || s.creates.length !== 0) {
        return { path: at, message: 'a create step carries no data (no volumes, no creates, bytes 0, rawSha256 null)' };
      }
      continue;
    }
    // Typed non-null for a send, but this is a stranger's JSON being checked.
    if ((s.to as SnapshotRef | null) === null) return { path: `${at}/to`, message: `a ${s.kind} stream needs a "to" snapshot` };
    if (s.kind === 'full' && s.from !== null) return { path: `${at}/from`, message: 'a full stream has no "from" snapshot' };
    if (s.kind === 'incremental' && s.from === null) return { path: `${at}/from`, message: 'an incremental stream needs a "from" snapshot' };
    if (s.from?.dataset !== undefined) {
      if (s.from.bookmark) return { path: `${at}/from`, message: "a clone's origin is a snapshot, not a bookmark" };
      if (s.from.dataset === s.dataset) return { path: `${at}/from/dataset`, message: 'names the stream\'s own dataset: a clone\'s origin lies in another dataset' };
      if (s.intermediates) return { path: `${at}/intermediates`, message: "a clone's first stream is sent with -i, not -I" };
    }
    if (s.rawSha256 === null) return { path: `${at}/rawSha256`, message: `a ${s.kind} stream needs rawSha256` };
    if (s.volumes.length === 0) return { path: `${at}/volumes`, message: `a ${s.kind} stream needs at least one volume` };
    const to = s.to;
    if (!s.creates.some((c) => c.guid === to.guid)) return { path: `${at}/creates`, message: `must include the "to" snapshot ${to.name} (guid ${to.guid})` };
    let stored = 0;
    for (let v = 0; v < s.volumes.length; v++) {
      const expected = volumeFileName(s.index, s.kind, v, m.encryption !== undefined);
      if (s.volumes[v].file !== expected) {
        return { path: `${at}/volumes/${v}/file`, message: `must be ${expected} (volumes are named after their stream and numbered from 000), got ${s.volumes[v].file}` };
      }
      stored += s.volumes[v].bytes;
    }
    if (!Number.isSafeInteger(stored)) return { path: `${at}/volumes`, message: 'volume sizes add up to more than 2^53-1 bytes' };
    if (stored !== s.storedBytes) return { path: `${at}/storedBytes`, message: `must equal the sum of its volume sizes (${stored}), got ${s.storedBytes}` };
    if (s.part) {
      const problem = checkPart(s.part, s.rawBytes, i, m.streams.length);
      if (problem) return { path: `${at}/part${problem.path}`, message: problem.message };
    }
  }
  return null;
}

/**
 * A segment of a split stream: numbered from 1, part 1 at offset 0 with no
 * previous bundle; a continuing part ends its bundle, a later part begins
 * one; only the last part carries the whole stream's size and sha256.
 */
export function checkPart(p: StreamPart, rawBytes: number, position: number, count: number): Problem | null {
  const first = p.number === 1;
  if (first !== (p.offset === 0)) return { path: '/offset', message: first ? 'must be 0 on part 1' : `must be above 0 on part ${p.number}` };
  if (first !== (p.previous === null)) return { path: '/previous', message: first ? 'must be null on part 1' : `must name the bundle holding part ${p.number - 1}` };
  if (rawBytes < 1) return { path: '', message: 'a part carries at least one byte of its stream (rawBytes 0)' };
  if (p.continues) {
    if (position !== count - 1) return { path: '/continues', message: `a part that continues on the next disk must be the bundle's last stream (it is ${position + 1} of ${count})` };
    if (p.streamRawBytes !== null || p.streamRawSha256 !== null) return { path: '', message: 'a part that continues has streamRawBytes and streamRawSha256 null (the stream is not whole yet)' };
  } else {
    if (first) return { path: '/continues', message: 'part 1 that does not continue is no part: a whole stream has no "part"' };
    if (p.streamRawBytes === null || p.streamRawSha256 === null) return { path: '', message: 'the last part needs the whole stream\'s streamRawBytes and streamRawSha256' };
    if (p.streamRawBytes !== p.offset + rawBytes) return { path: '/streamRawBytes', message: `must be offset + rawBytes (${p.offset + rawBytes}), got ${p.streamRawBytes}` };
  }
  if (!first && position !== 0) return { path: '/number', message: `part ${p.number} continues a stream from the previous bundle: it must be the bundle's first stream` };
  return null;
}

/** A rename stream: format 2, no data, fields only a rename has, snapshot renames to the inventory's snapshots. */
function checkRename(s: StreamEntry & { kind: 'rename' }, version: FormatVersion, snapshots: readonly SnapshotRef[]): Problem | null {
  if (version < 2) return { path: '/kind', message: 'rename is not part of bundle format version 1 (it came with version 2)' };
  if (typeof s.renamedFrom !== 'string' || !s.match || !Array.isArray(s.snapshots)) return { path: '', message: 'a rename step needs renamedFrom, match and snapshots' };
  if (s.renamedFrom === s.dataset && s.snapshots.length === 0) return { path: '/snapshots', message: 'a rename step that keeps its path must rename snapshots' };
  if (s.renamedFrom !== s.dataset && (s.renamedFrom === '' || s.dataset === '')) return { path: '/renamedFrom', message: 'the root is never renamed' };
  if (s.dataset.startsWith(s.renamedFrom + '/')) return { path: '/dataset', message: `lies below ${JSON.stringify(s.renamedFrom)}: a dataset cannot be moved below itself` };
  if (s.from !== null || s.to !== null) return { path: '', message: 'a rename step has no from/to snapshot' };
  if (s.volumes.length !== 0 || s.rawBytes !== 0 || s.storedBytes !== 0 || s.rawSha256 !== null || s.creates.length !== 0 || s.sendFlags.length !== 0) {
    return { path: '', message: 'a rename step carries no data (no volumes, no creates, no sendFlags, bytes 0, rawSha256 null)' };
  }
  const nameOf = new Map(snapshots.map((x) => [x.guid, x.name]));
  const bad = s.snapshots.findIndex((r) => nameOf.get(r.guid) !== r.to);
  if (bad >= 0) {
    return { path: `/snapshots/${bad}`, message: `@${s.snapshots[bad].to} (guid ${s.snapshots[bad].guid}) is not a snapshot of ${JSON.stringify(s.dataset)} in the inventory` };
  }
  return null;
}

export async function readManifest(bundleDir: string): Promise<Manifest> {
  if (isS3Url(bundleDir)) return readManifestInBucket(bundleDir);
  const file = join(bundleDir, MANIFEST_FILE);
  return parseManifest((await readManifestBytes(file)).toString('utf8'), file);
}

/** The manifest's exact bytes (what a signature covers), refused when absurdly large or not a regular file. */
export async function readManifestBytes(file: string): Promise<Buffer> {
  try {
    return await readRegular(file, { maxBytes: MAX_MANIFEST_BYTES, what: 'manifest' });
  } catch (err) {
    if (err instanceof ZferryError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file (not a zferry bundle, or its export did not finish)' : (err as Error).message;
    throw new ZferryError(`${file}: ${why}`, { file });
  }
}

/** The exact text zferry writes as manifest.json (and signs). */
export function manifestText(m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}

/**
 * Writes manifest.json so that a reader sees either no manifest or the whole
 * one (writeFileAtomic: temp file in the same folder, fsync, rename, fsync
 * the folder). The manifest is written last, so its presence marks a
 * finished bundle.
 */
export async function writeManifestAtomic(bundleDir: string, m: Manifest): Promise<void> {
  await writeFileAtomic(bundleDir, MANIFEST_FILE, manifestText(m));
}
