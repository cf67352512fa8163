/**
 * An export's unfinished folder (or prefix in a bucket): a bundle without
 * manifest.json (so no reader takes it for a bundle, see find.ts) that holds
 * PARTIAL_FILE, the list of streams already written whole. A later export of
 * the same source re-hashes those volumes where they are and keeps the ones
 * its own plan still needs (src/plan/reuse.ts); the marker goes once
 * manifest.json is written.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { hostname } from 'node:os';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ZferryError } from '../errors.js';
import { assertRealFolders, fsyncDir, hashRegular, readRegular, removeEntry, renameOwnFile, writeFileAtomic } from '../fs/safe.js';
import { fileError } from '../fs/errors.js';
import { MANIFEST_FILE, volumeFileName, type StreamEntry, type VolumeEntry } from './manifest.js';
import type { ReusedStream, StreamSettings } from '../plan/reuse.js';
import { DEFAULT_SITE } from '../state/site.js';
import { carriesData } from '../model.js';

export const PARTIAL_FILE = '.zferry-export.json';
export const MAX_PARTIAL = 64 * 1024 * 1024;

export interface PartialExport {
  format: 'zferry-export-partial';
  formatVersion: 1;
  bundleId: string;
  createdAt: string;
  /** sourceTag of the source exported (`poolGuid:root`). */
  source: string;
  /** Who is writing it: a live export on this host is never adopted by another. */
  host: string;
  pid: number;
  /** The site exported for (absent in markers written before sites: the default site). */
  site?: string;
  settings: StreamSettings;
  /** Streams written whole (volumes closed and fsynced), in the order written. */
  streams: StreamEntry[];
  /**
   * HMAC-SHA256, in hex, of the marker's JSON without this field, under this
   * host's marker key (src/state/marker-key.ts): only a marker this host
   * wrote is resumed. Absent in markers written before it was added (never
   * resumed now) and when the state folder could not hold a key.
   */
  seal?: string;
}

/**
 * Where an unfinished export lives: a folder on disk or a prefix in a bucket
 * (bucket.ts). The resume flow (src/commands/export.ts) is one, whatever the
 * place; only these few acts differ.
 */
export interface PartialPlace {
  /** The folder's path or the prefix's s3:// URL, as messages and --json name it. */
  readonly where: string;
  /** The marker, or null when there is none or it is not one zferry wrote (the place is then left alone). */
  readMarker(): Promise<PartialExport | null>;
  /**
   * Replaces the marker whole (an atomic file write, one PUT). `durable:
   * false` (between streams) leaves out a file's fsyncs: a kill still finds
   * it, a power cut may find the one before, and either way the next run
   * re-checks every volume it lists.
   */
  writeMarker(p: PartialExport, opts?: { durable?: boolean }): Promise<void>;
  removeMarker(): Promise<void>;
  /** Why the volume as stored now is not the one recorded (size, then sha256 of all its bytes), or null when it is. */
  checkVolume(v: VolumeEntry): Promise<string | null>;
  /**
   * Leaves only the marker and, under streams/, exactly the reused volumes,
   * under their new names; everything else (streams not reused, the cut one,
   * the last run's closing files, its unfinished uploads) goes.
   */
  arrange(reused: ReusedStream[]): Promise<void>;
  /** After a failure: only the streams written whole stay, with the marker; nothing of the half-written one. */
  dropUnlisted(finished: StreamEntry[]): Promise<void>;
  /** The whole unfinished export goes (superseded, or nothing in it finished). */
  remove(): Promise<void>;
}

export interface FoundPartial {
  place: PartialPlace;
  marker: PartialExport;
}

/**
 * The marker's text as zferry wrote it, or null (not JSON, another shape). In
 * a shared bucket anyone may have written it: every volume it lists must
 * carry the name zferry gives that stream's volume (`streams/0002-full.zst.000`),
 * so no name in it reaches outside the place, or into another stream's.
 */
export function parsePartial(text: string): PartialExport | null {
  let p: PartialExport;
  try {
    p = JSON.parse(text) as PartialExport;
  } catch {
    return null;
  }
  const ok = p?.format === 'zferry-export-partial' && p.formatVersion === 1 && typeof p.bundleId === 'string' && /^[0-9a-f-]{36}$/.test(p.bundleId)
    && typeof p.source === 'string' && typeof p.createdAt === 'string' && Array.isArray(p.streams)
    && Number.isInteger(p.settings?.level) && p.settings.level >= 1 && p.settings.level <= 19
    && Number.isSafeInteger(p.settings?.volumeSize) && p.settings.volumeSize > 0
    && Array.isArray(p.settings?.recipients) && p.settings.recipients.every((r) => typeof r === 'string')
    && p.streams.every((s) => wellFormedStream(s, p.settings.recipients.length > 0));
  return ok ? p : null;
}

/** A marker's stream entry has what the resume reads before it re-checks the volumes, named as zferry names them. */
function wellFormedStream(s: StreamEntry, encrypted: boolean): boolean {
  if (s === null || typeof s !== 'object' || !Number.isSafeInteger(s.index) || s.index < 1 || typeof s.dataset !== 'string'
    || !Array.isArray(s.sendFlags) || !s.sendFlags.every((f) => typeof f === 'string') || !Array.isArray(s.volumes)) return false;
  if (s.part !== undefined && (s.part === null || typeof s.part !== 'object' || !Number.isSafeInteger(s.part.number) || s.part.number < 1
    || !Number.isSafeInteger(s.part.offset) || s.part.offset < 0 || typeof s.part.continues !== 'boolean')) return false;
  if (!carriesData(s)) return s.volumes.length === 0;
  return s.volumes.every((v, n) => v !== null && typeof v === 'object' && v.file === volumeFileName(s.index, s.kind, n, encrypted)
    && Number.isSafeInteger(v.bytes) && v.bytes >= 0 && typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256));
}

export function partialText(p: PartialExport): string {
  return JSON.stringify(p) + '\n';
}

function sealOf(p: PartialExport, key: Buffer): string {
  const { seal: _, ...rest } = p;
  return createHmac('sha256', key).update(JSON.stringify(rest)).digest('hex');
}

/** `p` sealed with `key` (unsealed when there is no key: it is then never resumed). */
export function sealPartial(p: PartialExport, key: Buffer | null): PartialExport {
  const { seal: _, ...rest } = p;
  return key ? { ...rest, seal: sealOf(rest, key) } : rest;
}

/** Whether `p`, as read back, carries the seal `key` gives it: written by this host, and not changed since. */
export function sealedBy(p: PartialExport, key: Buffer | null): boolean {
  if (!key || typeof p.seal !== 'string' || !/^[0-9a-f]{64}$/.test(p.seal)) return false;
  return timingSafeEqual(Buffer.from(p.seal, 'hex'), Buffer.from(sealOf(p, key), 'hex'));
}

export async function writePartial(dir: string, p: PartialExport, opts: { durable?: boolean } = {}): Promise<void> {
  await writeFileAtomic(dir, PARTIAL_FILE, partialText(p), 0o644, opts);
}

/** The marker of `dir`, or null when there is none or it is not one zferry wrote (that folder is then left alone). */
export async function readPartial(dir: string): Promise<PartialExport | null> {
  try {
    return parsePartial((await readRegular(join(dir, PARTIAL_FILE), { within: dir, maxBytes: MAX_PARTIAL, what: 'export marker' })).toString('utf8'));
  } catch {
    return null;
  }
}

function isLive(p: PartialExport): boolean {
  if (p.host !== hostname() || p.pid === process.pid) return false;
  try {
    process.kill(p.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Of the unfinished exports `candidates` (places without manifest.json), those
 * of `source` for `site` whose marker this host sealed with `key`, newest
 * first (`found`); one that a running export on this host is still writing is
 * left out. Those of `source` and `site` without this host's seal are
 * `unsealed`: a stranger's (its streams would ride into a manifest this export
 * signs), another host's, or one from before markers were sealed. They are
 * neither resumed nor removed.
 */
export async function findPartials(candidates: PartialPlace[], source: string, site: string, key: Buffer | null): Promise<{ found: FoundPartial[]; unsealed: PartialPlace[] }> {
  const found: FoundPartial[] = [];
  const unsealed: PartialPlace[] = [];
  for (const place of candidates) {
    const marker = await place.readMarker();
    if (!marker || marker.source !== source || (marker.site ?? DEFAULT_SITE) !== site) continue;
    if (!sealedBy(marker, key)) unsealed.push(place);
    else if (!isLive(marker)) found.push({ place, marker });
  }
  found.sort((a, b) => b.marker.createdAt.localeCompare(a.marker.createdAt) || b.place.where.localeCompare(a.place.where));
  return { found, unsealed };
}

/** The bundle folders under `dest` without manifest.json: the candidates for findPartials. */
export async function unfinishedFolders(dest: string): Promise<PartialPlace[]> {
  let entries;
  try {
    entries = await readdir(dest, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: PartialPlace[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || !e.name.startsWith('zferry-')) continue;
    const dir = join(dest, e.name);
    const names = await readdir(dir).catch(() => [] as string[]);
    if (!names.includes(MANIFEST_FILE)) out.push(folderPartial(dir));
  }
  return out;
}

/** An unfinished export in a folder on disk: every file through src/fs/safe.ts. */
export function folderPartial(dir: string): PartialPlace {
  return {
    where: dir,
    readMarker: () => readPartial(dir),
    writeMarker: (p, opts) => writePartial(dir, p, opts),
    removeMarker: () => removeEntry(join(dir, PARTIAL_FILE)),
    checkVolume: async (v) => {
      const got = await hashRegular(join(dir, v.file), dir).catch((err: unknown) => ({ error: (err as Error).message }));
      return 'error' in got ? `${v.file}: ${got.error}` : volumeMismatch(v, got);
    },
    arrange: (reused) => arrangeStreams(dir, reused),
    dropUnlisted: (finished) => dropUnlisted(dir, finished),
    remove: () => removeEntry(dir),
  };
}

/** A kept stream that may not be reused, and why. */
export interface DroppedStream {
  index: number;
  dataset: string;
  reason: string;
}

/** The streams whose every volume is there with its recorded size and sha256, re-read now: nothing is taken on the marker's word. */
export async function checkKept(place: PartialPlace, streams: StreamEntry[]): Promise<{ kept: StreamEntry[]; dropped: DroppedStream[] }> {
  const kept: StreamEntry[] = [];
  const dropped: DroppedStream[] = [];
  for (const s of streams) {
    if (!carriesData(s)) continue;
    let reason: string | null = null;
    for (const v of s.volumes) {
      reason = await place.checkVolume(v).catch((err: unknown) => `${v.file}: ${(err as Error).message}`);
      if (reason) break;
    }
    if (reason) dropped.push({ index: s.index, dataset: s.dataset, reason });
    else kept.push(s);
  }
  return { kept, dropped };
}

/** Why a volume read now (`got`) is not the one the marker recorded, or null. */
export function volumeMismatch(v: VolumeEntry, got: { bytes: number; sha256?: string }): string | null {
  if (got.bytes !== v.bytes) return `${v.file} is ${got.bytes} bytes, recorded ${v.bytes}`;
  if (got.sha256 !== v.sha256) return `${v.file} has sha256 ${got.sha256}, recorded ${v.sha256}`;
  return null;
}

/** The order of renames that never lets a moving volume meet another's old name: each goes through `<new name>.moving`. */
export function stagedName(to: string): string {
  return `${to}.moving`;
}

/**
 * Leaves in `dir` only the marker and, under `dir/streams`, exactly the reused volumes, under their new
 * names: every other file there (streams not reused, the half-written one)
 * is removed. Renames go through temporary names first, so a stream moving
 * onto another's old name never meets it. A crash part way leaves names the
 * marker does not list: the next run finds those streams missing and redoes them.
 */
async function arrangeStreams(dir: string, reused: ReusedStream[]): Promise<void> {
  const streams = join(dir, 'streams');
  const moving = reused.flatMap((r) => r.renames);
  try {
    await assertRealFolders(dir, streams);
    // The last run's closing files (sums, recipe, a signature this run may not make) are written afresh.
    for (const name of await readdir(dir)) if (name !== 'streams' && name !== PARTIAL_FILE) await removeEntry(join(dir, name));
    for (const m of moving) await renameOwnFile(join(dir, m.from), join(dir, stagedName(m.to)));
    const keep = new Set(reused.flatMap((r) => r.entry.volumes.map((v) => v.file.slice('streams/'.length))));
    const staged = new Set(moving.map((m) => stagedName(m.to).slice('streams/'.length)));
    for (const name of await readdir(streams)) {
      if (staged.has(name)) continue;
      if (!keep.has(name) || moving.some((m) => m.to === `streams/${name}`)) await removeEntry(join(streams, name));
    }
    for (const m of moving) await renameOwnFile(join(dir, stagedName(m.to)), join(dir, m.to));
    await fsyncDir(streams);
  } catch (err) {
    throw err instanceof ZferryError ? err : fileError(err, 'arranging', streams);
  }
}

/** After a failure: only the streams written whole stay, with the marker; nothing of the half-written one. */
async function dropUnlisted(dir: string, finished: StreamEntry[]): Promise<void> {
  const keep = new Set(finished.flatMap((s) => s.volumes.map((v) => v.file.slice('streams/'.length))));
  const streams = join(dir, 'streams');
  for (const name of await readdir(streams).catch(() => [] as string[])) {
    if (!keep.has(name)) await removeEntry(join(streams, name));
  }
}
