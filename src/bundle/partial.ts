/**
 * An export's unfinished folder: a bundle folder without manifest.json (so no
 * reader takes it for a bundle, see find.ts) that holds PARTIAL_FILE, the
 * list of streams already written whole. A later export of the same source
 * re-hashes those volumes from disk and keeps the ones its own plan still
 * needs (src/plan/reuse.ts); the marker goes once manifest.json is written.
 */
import { hostname } from 'node:os';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ZferryError } from '../errors.js';
import { assertRealFolders, fsyncDir, hashRegular, readRegular, removeEntry, renameOwnFile, writeFileAtomic } from '../fs/safe.js';
import { fileError } from '../fs/errors.js';
import { MANIFEST_FILE, type StreamEntry } from './manifest.js';
import type { ReusedStream, StreamSettings } from '../plan/reuse.js';
import { DEFAULT_SITE } from '../state/site.js';
import { carriesData } from '../model.js';

export const PARTIAL_FILE = '.zferry-export.json';
const MAX_PARTIAL = 64 * 1024 * 1024;

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
}

export interface FoundPartial {
  dir: string;
  marker: PartialExport;
}

export async function writePartial(dir: string, p: PartialExport): Promise<void> {
  await writeFileAtomic(dir, PARTIAL_FILE, JSON.stringify(p) + '\n');
}

/** The marker of `dir`, or null when there is none or it is not one zferry wrote (that folder is then left alone). */
export async function readPartial(dir: string): Promise<PartialExport | null> {
  let p: PartialExport;
  try {
    p = JSON.parse((await readRegular(join(dir, PARTIAL_FILE), { within: dir, maxBytes: MAX_PARTIAL, what: 'export marker' })).toString('utf8')) as PartialExport;
  } catch {
    return null;
  }
  const ok = p?.format === 'zferry-export-partial' && p.formatVersion === 1 && typeof p.bundleId === 'string' && typeof p.source === 'string'
    && typeof p.createdAt === 'string' && Array.isArray(p.streams) && typeof p.settings?.level === 'number' && typeof p.settings?.volumeSize === 'number'
    && Array.isArray(p.settings?.recipients);
  return ok ? p : null;
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
 * Unfinished exports of `source` for `site` under `dest`, newest first; one that a
 * running export on this host is still writing is left out.
 */
export async function findPartials(dest: string, source: string, site: string): Promise<FoundPartial[]> {
  let entries;
  try {
    entries = await readdir(dest, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: FoundPartial[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || !e.name.startsWith('zferry-')) continue;
    const dir = join(dest, e.name);
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.includes(MANIFEST_FILE)) continue;
    const marker = await readPartial(dir);
    if (marker && marker.source === source && (marker.site ?? DEFAULT_SITE) === site && !isLive(marker)) out.push({ dir, marker });
  }
  return out.sort((a, b) => b.marker.createdAt.localeCompare(a.marker.createdAt) || b.dir.localeCompare(a.dir));
}

/** A kept stream that may not be reused, and why. */
export interface DroppedStream {
  index: number;
  dataset: string;
  reason: string;
}

/** The streams whose every volume is on disk with its recorded size and sha256, re-hashed now: nothing is taken on the marker's word. */
export async function checkKept(dir: string, streams: StreamEntry[]): Promise<{ kept: StreamEntry[]; dropped: DroppedStream[] }> {
  const kept: StreamEntry[] = [];
  const dropped: DroppedStream[] = [];
  for (const s of streams) {
    if (!carriesData(s)) continue;
    let reason: string | null = null;
    for (const v of s.volumes) {
      const got = await hashRegular(join(dir, v.file), dir).catch((err: unknown) => ({ error: (err as Error).message }));
      if ('error' in got) reason = `${v.file}: ${got.error}`;
      else if (got.bytes !== v.bytes || got.sha256 !== v.sha256) reason = `${v.file} is ${got.bytes} bytes with sha256 ${got.sha256}, recorded ${v.bytes} bytes ${v.sha256}`;
      if (reason) break;
    }
    if (reason) dropped.push({ index: s.index, dataset: s.dataset, reason });
    else kept.push(s);
  }
  return { kept, dropped };
}

/**
 * Leaves in `dir` only the marker and, under `dir/streams`, exactly the reused volumes, under their new
 * names: every other file there (streams not reused, the half-written one)
 * is removed. Renames go through temporary names first, so a stream moving
 * onto another's old name never meets it. A crash part way leaves names the
 * marker does not list: the next run finds those streams missing and redoes them.
 */
export async function arrangeStreams(dir: string, reused: ReusedStream[]): Promise<void> {
  const streams = join(dir, 'streams');
  const moving = reused.flatMap((r) => r.renames);
  try {
    await assertRealFolders(dir, streams);
    // The last run's closing files (sums, recipe, a signature this run may not make) are written afresh.
    for (const name of await readdir(dir)) if (name !== 'streams' && name !== PARTIAL_FILE) await removeEntry(join(dir, name));
    for (const m of moving) await renameOwnFile(join(dir, m.from), join(dir, `${m.to}.moving`));
    const keep = new Set(reused.flatMap((r) => r.entry.volumes.map((v) => v.file.slice('streams/'.length))));
    const staged = new Set(moving.map((m) => `${m.to.slice('streams/'.length)}.moving`));
    for (const name of await readdir(streams)) {
      if (staged.has(name)) continue;
      if (!keep.has(name) || moving.some((m) => m.to === `streams/${name}`)) await removeEntry(join(streams, name));
    }
    for (const m of moving) await renameOwnFile(join(dir, `${m.to}.moving`), join(dir, m.to));
    await fsyncDir(streams);
  } catch (err) {
    throw err instanceof ZferryError ? err : fileError(err, 'arranging', streams);
  }
}

/** After a failure: only the streams written whole stay, with the marker; nothing of the half-written one. */
export async function dropUnlisted(dir: string, finished: StreamEntry[]): Promise<void> {
  const keep = new Set(finished.flatMap((s) => s.volumes.map((v) => v.file.slice('streams/'.length))));
  const streams = join(dir, 'streams');
  for (const name of await readdir(streams).catch(() => [] as string[])) {
    if (!keep.has(name)) await removeEntry(join(streams, name));
  }
}
