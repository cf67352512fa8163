/**
 * The sender's spool: bundles exported by `relay run` wait here until a
 * receipt from the receiver lists them. Pure choices (what is pending, what
 * may go) are separate from the file operations.
 */
import { lstat, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { findBundles, readManifest, type Manifest } from '../bundle/index.js';
import type { TargetState } from '../state/receipt.js';
import { readPartial } from '../bundle/partial.js';
import { bundleNameProblem } from './names.js';

export interface SpoolBundle {
  dir: string;
  manifest: Manifest;
}

/** Bundles in the spool, oldest first (by manifest createdAt, then name). */
export async function spoolBundles(spool: string): Promise<SpoolBundle[]> {
  const dirs = (await findBundles(spool)).filter((d) => d !== spool);
  const out = await Promise.all(dirs.map(async (dir) => ({ dir, manifest: await readManifest(dir) })));
  return out.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt) || a.dir.localeCompare(b.dir));
}

/** Splits bundles into those the receipt confirms and those still to push. */
export function partitionByReceipt<T extends { manifest: { bundleId: string } }>(bundles: T[], receipt: TargetState | null): { confirmed: T[]; pending: T[] } {
  const applied = new Set(receipt?.bundles ?? []);
  return {
    confirmed: bundles.filter((b) => applied.has(b.manifest.bundleId)),
    pending: bundles.filter((b) => !applied.has(b.manifest.bundleId)),
  };
}

/**
 * Export folders without manifest.json are exports that died; under the lock
 * nobody is writing them. One with an export marker is kept: the next export
 * resumes it (reusing its finished streams) or removes it.
 */
export async function removeUnfinishedExports(spool: string): Promise<string[]> {
  const removed: string[] = [];
  let entries;
  try {
    entries = await readdir(spool, { withFileTypes: true });
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!e.isDirectory() || !e.name.startsWith('zferry-')) continue;
    const dir = join(spool, e.name);
    if (await lstat(join(dir, 'manifest.json')).catch(() => null)) continue;
    if (await readPartial(dir)) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

/**
 * The receiving side's pruning: removes these bundles' folders, each only
 * where it lies directly in the spool under the name export gives that very
 * bundle (names.ts); returns the folders removed.
 */
export async function removeSpoolBundles(spool: string, bundles: ReadonlyArray<{ dir: string; bundleId: string }>): Promise<string[]> {
  const root = resolve(spool);
  const removed: string[] = [];
  for (const b of bundles) {
    const full = resolve(b.dir);
    if (dirname(full) !== root || bundleNameProblem(basename(full), b.bundleId) !== null) continue;
    await rm(full, { recursive: true, force: true });
    removed.push(full);
  }
  return removed;
}

export async function pruneBundles(bundles: SpoolBundle[]): Promise<void> {
  for (const b of bundles) await rm(b.dir, { recursive: true, force: true });
}
